/*
 * The keyring: named 256-bit master keys in a text file (format in crypto.h and
 * docs/format.md "Encryption"). Loading checks the file's mode and every line; generate and rotate
 * write the whole file durably with mode 0600.
 * Must never print, log or put key material (or a line that may hold it) into an error message,
 * and never leave a copy of a key in memory it frees: every buffer that held one is cleansed.
 */
#include "drd/lib/crypto/crypto.h"
#include "crypto_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEYRING_MAX (1024 * 1024) /* a keyring is a few lines; refuse anything absurd */

typedef struct key_entry {
    char name[DR_KEY_NAME_MAX + 1];
    uint8_t key[DR_CRYPT_KEY_LEN];
} key_entry;

struct dr_keyring {
    key_entry *keys;
    size_t n, cap;
    size_t current;
};

int dr_crypto_name_ok(const char *s, size_t n)
{
    if (n < 1 || n > DR_KEY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void dr_keyring_free(dr_keyring *k)
{
    if (!k)
        return;
    if (k->keys) {
        OPENSSL_cleanse(k->keys, k->cap * sizeof *k->keys);
        free(k->keys);
    }
    free(k);
}

const char *dr_keyring_current(const dr_keyring *k)
{
    return k->keys[k->current].name;
}

const uint8_t *dr_keyring_key(const dr_keyring *k, const char *name)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->keys[i].name, name) == 0)
            return k->keys[i].key;
    return NULL;
}

int dr_keyring_has(const dr_keyring *k, const char *name)
{
    return dr_keyring_key(k, name) != NULL;
}

/* Grows without realloc: realloc could leave a copy of the keys in freed memory. */
static int ring_add(dr_keyring *k, key_entry **e)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 4;
        key_entry *keys = calloc(cap, sizeof *keys);
        if (!keys)
            return dr_error_set(DR_ENOMEM, "out of memory");
        if (k->keys) {
            memcpy(keys, k->keys, k->n * sizeof *keys);
            OPENSSL_cleanse(k->keys, k->cap * sizeof *k->keys);
            free(k->keys);
        }
        k->keys = keys;
        k->cap = cap;
    }
    *e = &k->keys[k->n++];
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A name as messages show it: a valid name may be 64 hex digits, and such a name could be a key
 * pasted into the wrong place, so it is not shown. */
static const char *shown(const char *name)
{
    size_t n = strlen(name);
    if (n != 2 * DR_CRYPT_KEY_LEN)
        return name;
    for (size_t i = 0; i < n; i++)
        if (hexval(name[i]) < 0)
            return name;
    return "(64 hex digits, not shown)";
}

/* Reads the keyring whole, refusing a file that group or others may access or that another
 * user owns (dr_fs_read_secret). The caller cleanses and frees *out (it holds key material). */
static int read_keyring_file(const char *path, char **out, size_t *out_len)
{
    return dr_fs_read_secret(path, "keyring", KEYRING_MAX, out, out_len);
}

typedef struct token {
    const char *p;
    size_t n;
} token;

static int tok_is(const token *t, const char *s)
{
    return t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

/* Splits line [p, end) at blanks into at most max tokens; returns how many (max + 1 when there
 * are more). */
static size_t tokenize(const char *p, const char *end, token *t, size_t max)
{
    size_t n = 0;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (p == end)
            return n;
        if (n == max)
            return max + 1;
        t[n].p = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            p++;
        t[n].n = (size_t)(p - t[n].p);
        n++;
    }
}

/* Parses keyring text (not modified). Errors name path and line, never the line's content
 * beyond a validated key name. */
static int parse_keyring(const char *path, const char *text, size_t len, dr_keyring **out)
{
    int rc = 0, line = 0, cur_line = 0;
    char cur[DR_KEY_NAME_MAX + 1] = "";
    dr_keyring *k = calloc(1, sizeof *k);
    if (!k)
        return dr_error_set(DR_ENOMEM, "out of memory");
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        line++;
        token t[3];
        size_t nt = tokenize(p, eol, t, 3);
        p = eol + (eol < end);
        if (nt == 0 || t[0].p[0] == '#')
            continue;
        if (!(tok_is(&t[0], "key") && nt == 3) && !(tok_is(&t[0], "current") && nt == 2)) {
            rc = dr_error_set(DR_EINVAL,
                              "keyring '%s' line %d: malformed (expected 'key <name> <64 hex "
                              "digits>' or 'current <name>')",
                              path, line);
            goto out;
        }
        if (!dr_crypto_name_ok(t[1].p, t[1].n)) {
            rc = dr_error_set(DR_EINVAL,
                              "keyring '%s' line %d: invalid key name (1 to %d characters of "
                              "A-Z a-z 0-9 . _ -)",
                              path, line, DR_KEY_NAME_MAX);
            goto out;
        }
        char name[DR_KEY_NAME_MAX + 1];
        memcpy(name, t[1].p, t[1].n);
        name[t[1].n] = 0;
        if (nt == 2) {
            if (cur_line) {
                rc = dr_error_set(DR_EINVAL,
                                  "keyring '%s' line %d: a second 'current' line (the first is "
                                  "line %d)",
                                  path, line, cur_line);
                goto out;
            }
            cur_line = line;
            memcpy(cur, name, sizeof name);
            continue;
        }
        if (dr_keyring_key(k, name)) {
            rc = dr_error_set(DR_EINVAL, "keyring '%s' line %d: duplicate key name '%s'", path,
                              line, shown(name));
            goto out;
        }
        if (t[2].n != 2 * DR_CRYPT_KEY_LEN) {
            rc = dr_error_set(DR_EINVAL,
                              "keyring '%s' line %d: key '%s' must be %d hex digits, it has %zu "
                              "characters",
                              path, line, shown(name), 2 * DR_CRYPT_KEY_LEN, t[2].n);
            goto out;
        }
        key_entry *e = NULL;
        if ((rc = ring_add(k, &e)) < 0)
            goto out;
        memcpy(e->name, name, sizeof name);
        for (size_t i = 0; i < DR_CRYPT_KEY_LEN; i++) {
            int hi = hexval(t[2].p[2 * i]), lo = hexval(t[2].p[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                rc = dr_error_set(DR_EINVAL, "keyring '%s' line %d: key '%s' is not hex digits",
                                  path, line, shown(name));
                goto out;
            }
            e->key[i] = (uint8_t)(hi << 4 | lo);
        }
    }
    if (!cur_line) {
        rc = dr_error_set(DR_EINVAL, "keyring '%s' has no 'current <name>' line", path);
        goto out;
    }
    size_t i;
    for (i = 0; i < k->n && strcmp(k->keys[i].name, cur) != 0; i++)
        ;
    if (i == k->n) {
        rc = dr_error_set(DR_EINVAL, "keyring '%s' line %d: current key '%s' is not in the ring",
                          path, cur_line, shown(cur));
        goto out;
    }
    k->current = i;
    *out = k;
    k = NULL;
out:
    dr_keyring_free(k);
    return rc;
}

int dr_keyring_load(const char *path, dr_keyring **out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_keyring_file(path, &text, &len);
    if (rc < 0)
        return rc;
    rc = parse_keyring(path, text, len, out);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

/* "key-<UTC date>-<4 hex>" */
static int auto_name(char name[DR_KEY_NAME_MAX + 1])
{
    uint8_t r[2];
    struct tm tm;
    time_t now = time(NULL);
    int rc = dr_random_bytes(r, sizeof r);
    if (rc < 0)
        return rc;
    gmtime_r(&now, &tm);
    snprintf(name, DR_KEY_NAME_MAX + 1, "key-%04d%02d%02d-%02x%02x", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, r[0], r[1]);
    return 0;
}

static int check_name(const char *name)
{
    if (!dr_crypto_name_ok(name, strlen(name)))
        return dr_error_set(DR_EUSAGE,
                            "invalid key name '%.64s': use 1 to %d characters of A-Z a-z 0-9 . _ -",
                            name, DR_KEY_NAME_MAX);
    return 0;
}

/* Appends "key <name> <hex>\ncurrent <name>\n" for a new random key at dst (room for
 * KEY_LINES_MAX bytes); returns the bytes written. */
#define KEY_LINES_MAX (2 * DR_KEY_NAME_MAX + 2 * DR_CRYPT_KEY_LEN + 32)
static int key_lines(const char *name, char *dst, size_t *n)
{
    uint8_t key[DR_CRYPT_KEY_LEN];
    char hex[2 * DR_CRYPT_KEY_LEN + 1];
    int rc = dr_random_bytes(key, sizeof key);
    if (rc < 0)
        return rc;
    dr_hex(key, sizeof key, hex);
    *n = (size_t)snprintf(dst, KEY_LINES_MAX, "key %s %s\ncurrent %s\n", name, hex, name);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(hex, sizeof hex);
    return 0;
}

int dr_keyring_generate(const char *path, const char *name, char name_out[DR_KEY_NAME_MAX + 1])
{
    static const char head[] =
        "# drd keyring: master keys that wrap the data keys of encrypted objects.\n"
        "# Keep it private (mode 0600) and back it up apart from the store: an object cannot be\n"
        "# read without the key named in its header. 'drd key rotate' adds keys; never delete one\n"
        "# that objects still use.\n";
    char buf[sizeof head + KEY_LINES_MAX];
    char nm[DR_KEY_NAME_MAX + 1];
    size_t n = 0;
    int rc = 0;
    dr_sink *f = NULL;
    struct stat st;
    if (name) {
        if ((rc = check_name(name)) < 0)
            goto out;
        snprintf(nm, sizeof nm, "%s", name);
    } else if ((rc = auto_name(nm)) < 0) {
        goto out;
    }
    if (lstat(path, &st) == 0) {
        rc = dr_error_set(DR_EIO, "keyring '%s' already exists: refusing to overwrite it", path);
        goto out;
    }
    memcpy(buf, head, sizeof head - 1);
    if ((rc = key_lines(nm, buf + sizeof head - 1, &n)) < 0)
        goto out;
    /* exclusive: the final link() refuses a path created meanwhile */
    if ((rc = dr_fs_sink_new(path, 0600, DR_FS_EXCLUSIVE, &f)) < 0 ||
        (rc = dr_sink_write(f, buf, sizeof head - 1 + n)) < 0 || (rc = dr_sink_finish(f)) < 0)
        goto out;
    if (name_out)
        memcpy(name_out, nm, sizeof nm);
out:
    dr_sink_free(f);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int dr_keyring_rotate(const char *path, const char *name, char name_out[DR_KEY_NAME_MAX + 1])
{
    int rc = 0;
    char *text = NULL, *nt = NULL;
    size_t len = 0, cap = 0, n = 0;
    dr_keyring *k = NULL;
    char nm[DR_KEY_NAME_MAX + 1];
    if ((rc = read_keyring_file(path, &text, &len)) < 0 ||
        (rc = parse_keyring(path, text, len, &k)) < 0)
        goto out;
    if (name) {
        if ((rc = check_name(name)) < 0)
            goto out;
        if (dr_keyring_has(k, name)) {
            rc = dr_error_set(DR_EINVAL, "key name '%s' is already in keyring '%s'", shown(name),
                              path);
            goto out;
        }
        snprintf(nm, sizeof nm, "%s", name);
    } else {
        int tries = 0;
        do {
            if ((rc = auto_name(nm)) < 0)
                goto out;
        } while (dr_keyring_has(k, nm) && ++tries < 16);
        if (dr_keyring_has(k, nm)) {
            rc = dr_error_set(DR_EINVAL, "cannot find a free key name in keyring '%s'", path);
            goto out;
        }
    }
    /* the old text minus its 'current' line, then the new key and current: one allocation of
     * the final size (no realloc leaving copies of keys behind) */
    cap = len + 1 + 128 + KEY_LINES_MAX;
    if (!(nt = malloc(cap))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        eol = eol ? eol + 1 : end;
        token t[2];
        if (!(tokenize(p, eol, t, 2) >= 1 && tok_is(&t[0], "current"))) {
            memcpy(nt + n, p, (size_t)(eol - p));
            n += (size_t)(eol - p);
        }
        p = eol;
    }
    if (n && nt[n - 1] != '\n')
        nt[n++] = '\n';
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    n += (size_t)snprintf(nt + n, cap - n,
                          "# rotated %04d-%02d-%02dT%02d:%02d:%02dZ (previous current: %s)\n",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, dr_keyring_current(k));
    size_t kn = 0;
    if ((rc = key_lines(nm, nt + n, &kn)) < 0)
        goto out;
    n += kn;
    if ((rc = dr_fs_write_atomic(path, nt, n, 0600)) < 0)
        goto out;
    if (name_out)
        memcpy(name_out, nm, sizeof nm);
out:
    if (text) {
        OPENSSL_cleanse(text, len);
        free(text);
    }
    if (nt) {
        OPENSSL_cleanse(nt, cap);
        free(nt);
    }
    dr_keyring_free(k);
    return rc;
}
