/*
 * bbolt file access by pread/pwrite (layout: docs/format.md "The revision of an etcd snapshot").
 *
 *   page header (16 B): id u64, flags u16, count u16, overflow u32
 *   meta (at +16):      magic u32, version u32, page size u32, flags u32, root bucket {pgid u64,
 *                       sequence u64}, freelist u64, high-water pgid u64, txid u64, fnv64a u64
 *   leaf element:       flags u32, pos u32, ksize u32, vsize u32 (pos from the element itself)
 *   branch element:     pos u32, ksize u32, pgid u64
 *   bucket value:       root pgid u64, sequence u64, then (root == 0) an inline page
 * All little-endian. Every offset read from the file is checked against what was read.
 * The walk down a tree is a loop, not recursion, holding one page (at most MAX_NODE bytes) at a
 * time and at most MAX_DEPTH levels: a hostile file costs neither stack nor memory in its depth.
 */
#include "drd/lib/boltfile/boltfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    HDR = 16,
    ELEM = 16,
    F_BRANCH = 0x01,
    F_LEAF = 0x02,
    F_META = 0x04,
    F_FREELIST = 0x10,
    E_BUCKET = 0x01,
    META_SUM_LEN = 56,
    MIN_PAGE = 512,
    MAX_PAGE = 64 * 1024,
    MAX_DEPTH = 64,
};
#define MAX_NODE (64u << 20)
#define BOLT_MAGIC 0xED0CDAEDu

uint16_t dr_bolt_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
uint32_t dr_bolt_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
uint64_t dr_bolt_le64(const uint8_t *p)
{
    return (uint64_t)dr_bolt_le32(p) | (uint64_t)dr_bolt_le32(p + 4) << 32;
}
uint64_t dr_bolt_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}
#define le16 dr_bolt_le16
#define le32 dr_bolt_le32
#define le64 dr_bolt_le64

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t dr_bolt_meta_sum(const uint8_t *meta)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */
    for (size_t i = 0; i < META_SUM_LEN; i++) {
        h ^= meta[i];
        h *= 1099511628211ull;
    }
    return h;
}

typedef struct bf {
    int fd;
    const char *path;
    uint64_t size;
    uint32_t ps;
    uint64_t root, hwm, txid;
} bf;

static int bad(const bf *b, const char *what, uint64_t pgid)
{
    return dr_error_set(DR_EPROTO, "'%s' is not a valid bbolt database: %s (page %llu)", b->path,
                        what, (unsigned long long)pgid);
}

static int pread_all(const bf *b, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(b->fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dr_error_set(DR_EIO, "cannot read '%s': %s", b->path, strerror(errno));
        if (r == 0)
            return dr_error_set(DR_EPROTO, "'%s' is truncated at byte %llu", b->path,
                                (unsigned long long)(off + done));
        done += (size_t)r;
    }
    return 0;
}

/* A meta page at off: 1 and fills b's fields when valid and newer than what b holds. */
static int try_meta(bf *b, uint64_t off, uint64_t id)
{
    uint8_t p[HDR + 64];
    if (off + sizeof p > b->size || pread_all(b, p, sizeof p, off) < 0) {
        dr_error_clear();
        return 0;
    }
    const uint8_t *m = p + HDR;
    if (le64(p) != id || !(le16(p + 8) & F_META) || le32(m) != BOLT_MAGIC || le32(m + 4) != 2 ||
        le64(m + META_SUM_LEN) != dr_bolt_meta_sum(m))
        return 0;
    uint32_t ps = le32(m + 8);
    uint64_t root = le64(m + 16), hwm = le64(m + 40), txid = le64(m + 48);
    if (ps < MIN_PAGE || ps > MAX_PAGE || (ps & (ps - 1)) || hwm < 3 || root < 2 || root >= hwm ||
        hwm > b->size / ps)
        return 0;
    if (b->ps && txid <= b->txid)
        return 0;
    b->ps = ps;
    b->root = root;
    b->hwm = hwm;
    b->txid = txid;
    return 1;
}

static int bf_open(bf *b, const char *path, int writable)
{
    memset(b, 0, sizeof *b);
    b->path = path;
    b->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (b->fd < 0)
        return dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO, "cannot open '%s': %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(b->fd, &st) != 0) {
        int e = errno;
        close(b->fd);
        return dr_error_set(DR_EIO, "cannot stat '%s': %s", path, strerror(e));
    }
    b->size = (uint64_t)st.st_size;
    try_meta(b, 0, 0);
    /* meta 1 sits one page further: the page size of meta 0, or bbolt's default when meta 0 is
     * damaged */
    uint32_t ps0 = b->ps;
    try_meta(b, ps0 ? ps0 : 4096, 1);
    if (!b->ps) {
        close(b->fd);
        return dr_error_set(DR_EPROTO, "'%s' is not a valid bbolt database: no valid meta page",
                            path);
    }
    return 0;
}

/* Reads page pgid with its overflow pages into *buf (caller frees). */
static int read_page(const bf *b, uint64_t pgid, uint8_t **buf, size_t *len)
{
    uint8_t h[HDR];
    int rc;
    if (pgid < 2 || pgid >= b->hwm)
        return bad(b, "page id outside the database", pgid);
    if ((rc = pread_all(b, h, HDR, pgid * b->ps)) < 0)
        return rc;
    uint64_t over = le32(h + 12);
    if (le64(h) != pgid)
        return bad(b, "page header names another page", pgid);
    if (pgid + 1 + over > b->hwm || (1 + over) * b->ps > MAX_NODE)
        return bad(b, "page overflow past the database end", pgid);
    size_t n = (size_t)((1 + over) * b->ps);
    uint8_t *p = malloc(n);
    if (!p)
        return dr_error_set(DR_ENOMEM, "out of memory");
    if ((rc = pread_all(b, p, n, pgid * b->ps)) < 0) {
        free(p);
        return rc;
    }
    *buf = p;
    *len = n;
    return 0;
}

static int keycmp(const uint8_t *a, size_t al, const char *k, size_t kl)
{
    size_t m = al < kl ? al : kl;
    int c = memcmp(a, k, m);
    return c ? c : al < kl ? -1 : al > kl ? 1 : 0;
}

typedef struct found {
    uint64_t off; /* file offset of the value */
    uint32_t len; /* value length */
    uint32_t flags;
    uint8_t *val; /* copy of the value (caller frees) */
} found;

/* Looks key up in a tree, walking down iteratively: from the inline node p (n bytes, borrowed,
 * byte 0 at file offset base) or, p NULL, from page pgid read from the file. Holds one page at
 * a time: a branch's page is freed before its child is read, so the bytes held are one node
 * (at most MAX_NODE) and the value found, whatever the depth (at most MAX_DEPTH levels: a cycle
 * of pages ends there). DR_ENOTFOUND (message-less: the caller names it) when absent. key NULL:
 * the greatest key instead, copied into out->val (out->off is then 0). */
static int lookup(const bf *b, const uint8_t *p, size_t n, uint64_t base, uint64_t pgid,
                  const char *key, found *out)
{
    size_t kl = key ? strlen(key) : 0;
    uint8_t *page = NULL; /* the node being looked at when it came from the file */
    int rc = 0;
    for (int depth = 0;; depth++) {
        if (depth > MAX_DEPTH) {
            rc = bad(b, "tree deeper than 64 levels", pgid);
            goto out;
        }
        if (!p) {
            if ((rc = read_page(b, pgid, &page, &n)) < 0)
                goto out;
            p = page;
            base = pgid * b->ps;
        }
        if (n < HDR) {
            rc = bad(b, "node shorter than its header", pgid);
            goto out;
        }
        uint16_t flags = le16(p + 8), count = le16(p + 10);
        if ((size_t)HDR + (size_t)count * ELEM > n) {
            rc = bad(b, "elements past the end of the page", pgid);
            goto out;
        }
        if (flags & F_LEAF) {
            rc = DR_ENOTFOUND;
            for (uint16_t i = 0; i < count; i++) {
                const uint8_t *e = p + HDR + (size_t)i * ELEM;
                uint64_t at = (uint64_t)(HDR + (size_t)i * ELEM) + le32(e + 4);
                uint64_t ks = le32(e + 8), vs = le32(e + 12);
                if (at + ks + vs > n) {
                    rc = bad(b, "leaf element past the end of the page", pgid);
                    goto out;
                }
                if (key ? keycmp(p + at, ks, key, kl) != 0 : i + 1 < count)
                    continue;
                /* key NULL: the last key itself; else the key's value */
                const uint8_t *v = key ? p + at + ks : p + at;
                size_t vl = key ? vs : ks;
                if (!(out->val = malloc(vl ? vl : 1))) {
                    rc = dr_error_set(DR_ENOMEM, "out of memory");
                    goto out;
                }
                memcpy(out->val, v, vl);
                out->off = key ? base + at + ks : 0;
                out->len = (uint32_t)vl;
                out->flags = le32(e);
                rc = 0;
                break;
            }
            goto out;
        }
        if (!(flags & F_BRANCH)) {
            rc = bad(b, "a tree points at a page that is neither branch nor leaf", pgid);
            goto out;
        }
        if (count == 0) {
            rc = bad(b, "empty branch page", pgid);
            goto out;
        }
        /* the last element whose key is <= key (bbolt's search) */
        uint16_t pick = 0;
        for (uint16_t i = 0; i < count; i++) {
            const uint8_t *e = p + HDR + (size_t)i * ELEM;
            uint64_t at = (uint64_t)(HDR + (size_t)i * ELEM) + le32(e);
            uint64_t ks = le32(e + 4);
            if (at + ks > n) {
                rc = bad(b, "branch element past the end of the page", pgid);
                goto out;
            }
            if (key && keycmp(p + at, ks, key, kl) > 0)
                break;
            pick = i;
        }
        pgid = le64(p + HDR + (size_t)pick * ELEM + 8);
        free(page); /* before the child is read: one node held at a time */
        page = NULL;
        p = NULL;
    }
out:
    free(page);
    return rc;
}

/* The greatest key of the top level (names of the top-level buckets) into *out. */
static int last_top(const bf *b, found *out)
{
    memset(out, 0, sizeof *out);
    int rc = lookup(b, NULL, 0, 0, b->root, NULL, out);
    if (rc == DR_ENOTFOUND)
        return dr_error_set(DR_ENOTFOUND, "'%s' has no buckets", b->path);
    return rc;
}

/* Finds bucket/key (key NULL: the bucket's greatest key); fills *out (caller frees out->val). */
static int find(const bf *b, const char *bucket, const char *key, found *out)
{
    found bk = {0};
    memset(out, 0, sizeof *out);
    int rc = lookup(b, NULL, 0, 0, b->root, bucket, &bk);
    if (rc == DR_ENOTFOUND)
        return dr_error_set(DR_ENOTFOUND, "'%s' has no bucket '%s'", b->path, bucket);
    if (rc < 0)
        return rc;
    if (!(bk.flags & E_BUCKET) || bk.len < 16) {
        free(bk.val);
        return dr_error_set(DR_EPROTO, "'%s': '%s' is not a bucket", b->path, bucket);
    }
    uint64_t root = le64(bk.val);
    if (root == 0) /* inline bucket: its page follows the bucket header inside the value */
        rc = lookup(b, bk.val + 16, bk.len - 16, bk.off + 16, 0, key, out);
    else {
        free(bk.val); /* only its root page id was needed */
        bk.val = NULL;
        rc = lookup(b, NULL, 0, 0, root, key, out);
    }
    free(bk.val);
    if (rc == DR_ENOTFOUND && !key)
        return dr_error_set(DR_ENOTFOUND, "'%s': bucket '%s' is empty", b->path, bucket);
    if (rc == DR_ENOTFOUND)
        return dr_error_set(DR_ENOTFOUND, "'%s' has no key '%s' in bucket '%s'", b->path, key,
                            bucket);
    if (rc == 0 && key && (out->flags & E_BUCKET)) {
        free(out->val);
        out->val = NULL;
        return dr_error_set(DR_EPROTO, "'%s': '%s/%s' is a bucket, not a value", b->path, bucket,
                            key);
    }
    return rc;
}

/* The value of bucket/key, or (key NULL) the greatest key of bucket (NULL: of the top level),
 * copied into out (up to cap bytes), its length in *len. */
static int read_one(const char *path, const char *bucket, const char *key, void *out, size_t cap,
                    size_t *len)
{
    bf b;
    found f;
    int rc = bf_open(&b, path, 0);
    if (rc < 0)
        return rc;
    rc = bucket ? find(&b, bucket, key, &f) : last_top(&b, &f);
    close(b.fd);
    if (rc < 0)
        return rc;
    memcpy(out, f.val, f.len < cap ? f.len : cap);
    *len = f.len;
    free(f.val);
    return 0;
}

int dr_boltfile_get(const char *path, const char *bucket, const char *key, void *val, size_t cap,
                    size_t *len)
{
    if (!bucket || !key)
        return dr_error_set(DR_EUSAGE, "internal: dr_boltfile_get needs a bucket and a key");
    return read_one(path, bucket, key, val, cap, len);
}

int dr_boltfile_last_key(const char *path, const char *bucket, void *key, size_t cap, size_t *len)
{
    return read_one(path, bucket, NULL, key, cap, len);
}

int dr_boltfile_set_same_size(const char *path, const char *bucket, const char *key,
                              const void *val, size_t len)
{
    bf b;
    found f = {0};
    int rc = bf_open(&b, path, 1);
    if (rc < 0)
        return rc;
    rc = find(&b, bucket, key, &f);
    if (rc == 0 && f.len != len)
        rc = dr_error_set(DR_EUSAGE,
                          "'%s': %s/%s holds %u bytes, not %zu: cannot overwrite in place", path,
                          bucket, key, f.len, len);
    if (rc == 0) {
        size_t done = 0;
        while (done < len && rc == 0) {
            ssize_t w =
                pwrite(b.fd, (const uint8_t *)val + done, len - done, (off_t)(f.off + done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                rc = dr_error_set(DR_EIO, "cannot write '%s': %s", path, strerror(errno));
            else
                done += (size_t)w;
        }
        if (rc == 0 && fdatasync(b.fd) != 0)
            rc = dr_error_set(DR_EIO, "cannot sync '%s': %s", path, strerror(errno));
    }
    free(f.val);
    close(b.fd);
    return rc;
}

int dr_boltfile_empty(dr_buf *out)
{
    enum { PS = 4096 };
    uint8_t *db = calloc(4, PS);
    if (!db)
        return dr_error_set(DR_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < 2; i++) {
        uint8_t *p = db + i * PS, *m = p + HDR;
        put64(p, i);
        p[8] = F_META;
        put32(m, BOLT_MAGIC);
        put32(m + 4, 2);
        put32(m + 8, PS);
        put64(m + 16, 3); /* root bucket: the empty leaf */
        put64(m + 32, 2); /* freelist page */
        put64(m + 40, 4); /* high-water mark */
        put64(m + 48, i); /* txid */
        put64(m + META_SUM_LEN, dr_bolt_meta_sum(m));
    }
    put64(db + 2 * PS, 2);
    db[2 * PS + 8] = F_FREELIST;
    put64(db + 3 * PS, 3);
    db[3 * PS + 8] = F_LEAF;
    int rc = dr_buf_append(out, db, 4 * PS);
    free(db);
    return rc;
}
