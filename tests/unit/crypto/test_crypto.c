/*
 * Unit tests for drd/lib/crypto: SHA-256, HMAC (RFC 4231), random bytes, the hash tap, the
 * keyring file (generate, load, rotate, mode and syntax checks) and the encrypted object format
 * (round trips at the chunk edges, and every kind of tampering the format claims to catch).
 * Real OpenSSL, real files in a mkdtemp directory; nothing is mocked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/core/core.h"
#include "drd/lib/crypto/crypto.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define C DR_CRYPT_CHUNK

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/drd-crypto-test.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void path_in_tmp(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
    unlink(out);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void unhex(const char *hex, uint8_t *out)
{
    for (size_t i = 0; hex[2 * i]; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void write_file(const char *path, const char *text, unsigned mode)
{
    assert_int_equal(dr_fs_write_atomic(path, text, strlen(text), mode), 0);
}

/* A keyring with one key "name" made of a repeated byte. */
static dr_keyring *ring_with(const char *file, const char *name, uint8_t byte)
{
    char path[128], text[256], hex[65];
    uint8_t key[32];
    memset(key, byte, sizeof key);
    dr_hex(key, 32, hex);
    path_in_tmp(path, sizeof path, file);
    snprintf(text, sizeof text, "key %s %s\ncurrent %s\n", name, hex, name);
    write_file(path, text, 0600);
    dr_keyring *k = NULL;
    assert_int_equal(dr_keyring_load(path, &k), 0);
    return k;
}

/* Encrypts data with writes of random sizes (some larger than a chunk). */
static void encrypt_buf(const dr_keyring *k, const void *data, size_t len, char **ct, size_t *ctlen)
{
    dr_sink *mem = NULL, *enc = NULL;
    assert_int_equal(dr_buf_sink_new(SIZE_MAX, &mem), 0);
    assert_int_equal(dr_encrypt_sink_new(mem, k, &enc), 0);
    const char *p = data;
    size_t left = len;
    while (left) {
        size_t w = next_rand() % 4 == 0 ? 1 + next_rand() % (3 * C) : 1 + next_rand() % 5000;
        if (w > left)
            w = left;
        assert_int_equal(dr_sink_write(enc, p, w), 0);
        p += w;
        left -= w;
    }
    assert_int_equal(dr_sink_finish(enc), 0);
    dr_buf_sink_take(mem, ct, ctlen);
    dr_sink_free(enc);
    dr_sink_free(mem);
}

/* Decrypts with reads of random sizes; returns the code, *got the plaintext released before
 * any error (caller frees *pt). */
static int decrypt_buf(const dr_keyring *k, const void *ct, size_t ctlen, char **pt, size_t *got)
{
    dr_source *mem = NULL, *dec = NULL;
    dr_buf out = {0};
    int rc = 0;
    assert_int_equal(dr_mem_source_new(ct, ctlen, &mem), 0);
    if ((rc = dr_decrypt_source_new(mem, k, &dec)) < 0)
        goto out;
    char buf[3 * C];
    for (;;) {
        size_t cap = 1 + next_rand() % (next_rand() % 2 ? sizeof buf : 100), n = 0;
        if ((rc = dr_source_read(dec, buf, cap, &n)) < 0 || !n)
            break;
        assert_true(n <= cap);
        assert_int_equal(dr_buf_append(&out, buf, n), 0);
    }
out:
    dr_source_free(dec);
    dr_source_free(mem);
    assert_int_equal(dr_buf_append(&out, "", 0), 0);
    *pt = out.data;
    *got = out.len;
    return rc;
}

static char *random_data(size_t n)
{
    char *d = malloc(n ? n : 1);
    assert_non_null(d);
    assert_int_equal(dr_random_bytes(d, n), 0);
    return d;
}

/* ---- hashes, HMAC, random ---- */

static void test_sha256(void **state)
{
    (void)state;
    uint8_t d[32];
    char hex[65];
    assert_int_equal(dr_sha256_buf("abc", 3, d), 0);
    dr_hex(d, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(dr_sha256_buf(NULL, 0, d), 0);
    dr_hex(d, 32, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    /* streaming in odd pieces equals one-shot */
    size_t n = 1000003;
    char *data = random_data(n);
    uint8_t a[32], b[32];
    dr_sha256 *h = NULL;
    assert_int_equal(dr_sha256_new(&h), 0);
    for (size_t off = 0; off < n;) {
        size_t k = 1 + next_rand() % 70000;
        k = k > n - off ? n - off : k;
        assert_int_equal(dr_sha256_update(h, data + off, k), 0);
        off += k;
    }
    assert_int_equal(dr_sha256_final(h, a), 0);
    dr_sha256_free(h);
    assert_int_equal(dr_sha256_buf(data, n, b), 0);
    assert_memory_equal(a, b, 32);
    data[n / 2] ^= 1;
    assert_int_equal(dr_sha256_buf(data, n, b), 0);
    assert_memory_not_equal(a, b, 32);
    free(data);
}

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t k4[25], kbig[131], k20[20], d50[50], out[32], want[32];
    /* cases 1 and 2 */
    memset(k20, 0x0b, 20);
    unhex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", want);
    assert_int_equal(dr_hmac_sha256(k20, 20, "Hi There", 8, out), 0);
    assert_memory_equal(out, want, 32);
    unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want);
    assert_int_equal(dr_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out), 0);
    assert_memory_equal(out, want, 32);
    /* case 3: key 0xaa x20, data 0xdd x50 */
    uint8_t kaa[20];
    memset(kaa, 0xaa, 20);
    memset(d50, 0xdd, 50);
    unhex("773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", want);
    assert_int_equal(dr_hmac_sha256(kaa, 20, d50, 50, out), 0);
    assert_memory_equal(out, want, 32);
    /* case 4: key 0x01..0x19, data 0xcd x50 */
    for (int i = 0; i < 25; i++)
        k4[i] = (uint8_t)(i + 1);
    memset(d50, 0xcd, 50);
    unhex("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", want);
    assert_int_equal(dr_hmac_sha256(k4, 25, d50, 50, out), 0);
    assert_memory_equal(out, want, 32);
    /* case 5: truncated to 128 bits */
    memset(k20, 0x0c, 20);
    unhex("a3b6167473100ee06e0c796c2955552b", want);
    assert_int_equal(dr_hmac_sha256(k20, 20, "Test With Truncation", 20, out), 0);
    assert_memory_equal(out, want, 16);
    /* cases 6 and 7: a key larger than the block size */
    memset(kbig, 0xaa, sizeof kbig);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    unhex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", want);
    assert_int_equal(dr_hmac_sha256(kbig, sizeof kbig, m6, strlen(m6), out), 0);
    assert_memory_equal(out, want, 32);
    const char *m7 = "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the HMAC "
                     "algorithm.";
    unhex("9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", want);
    assert_int_equal(dr_hmac_sha256(kbig, sizeof kbig, m7, strlen(m7), out), 0);
    assert_memory_equal(out, want, 32);
    /* empty key and message are valid HMAC inputs */
    unhex("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad", want);
    assert_int_equal(dr_hmac_sha256(NULL, 0, NULL, 0, out), 0);
    assert_memory_equal(out, want, 32);
}

/* RFC 4648 section 10's vectors, and a length past the encoder's 768-byte blocks (the pieces
 * must join into one valid encoding: every block but the last is a multiple of 3). */
static void test_base64(void **state)
{
    (void)state;
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        dr_buf b = {0};
        assert_int_equal(dr_base64_append(&b, in[i], strlen(in[i])), 0);
        assert_int_equal(b.len, strlen(out[i]));
        assert_memory_equal(b.len ? b.data : "", out[i], b.len);
        dr_buf_free(&b);
    }
    unsigned char big[2000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    dr_buf b = {0};
    assert_int_equal(dr_base64_append(&b, big, sizeof big), 0);
    assert_int_equal(b.len, 4 * ((sizeof big + 2) / 3));
    for (size_t i = 0; i + 1 < b.len - 4; i++) /* padding only at the very end */
        assert_true(b.data[i] != '=');
    /* decoded here, independently of OpenSSL */
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char back[2000 + 3];
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < b.len && b.data[i] != '='; i++) {
        const char *c = strchr(abc, b.data[i]);
        assert_non_null(c);
        acc = acc << 6 | (uint32_t)(c - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            back[n++] = (unsigned char)(acc >> bits);
        }
    }
    assert_int_equal(n, sizeof big);
    assert_memory_equal(back, big, sizeof big);
    dr_buf_free(&b);
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[64], b[64], zero[64] = {0};
    assert_int_equal(dr_random_bytes(a, sizeof a), 0);
    assert_int_equal(dr_random_bytes(b, sizeof b), 0);
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_int_equal(dr_random_bytes(a, 0), 0);
}

/* The GMAC of msg (n bytes) under key, in one update. */
static void gmac_of(const uint8_t key[16], const void *msg, size_t n, uint8_t tag[16])
{
    dr_gmac *g = NULL;
    assert_int_equal(dr_gmac_new(key, &g), 0);
    assert_int_equal(dr_gmac_update(g, msg, n), 0);
    assert_int_equal(dr_gmac_final(g, tag), 0);
    dr_gmac_free(g);
}

/* GMAC: GCM's test case 1 (zero key, nothing hashed), a vector of `openssl mac ... GMAC`, the
 * same tag for the input in pieces and after a final (the context is reused), another input or
 * another key another tag. */
static void test_gmac(void **state)
{
    (void)state;
    static const uint8_t zero[16], tc1[16] = {0x58, 0xe2, 0xfc, 0xce, 0xfa, 0x7e, 0x30, 0x61,
                                              0x36, 0x7f, 0x1d, 0x57, 0xa4, 0xe7, 0x45, 0x5a};
    static const uint8_t key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const uint8_t want[16] = {0x17, 0xc3, 0x1f, 0x00, 0x22, 0xa2, 0x81, 0x2f,
                                     0x10, 0x0d, 0x0f, 0x3c, 0xe2, 0xdd, 0xc5, 0xfe};
    const char msg[] = "drd volume chunk";
    uint8_t tag[16];
    gmac_of(zero, "", 0, tag);
    assert_memory_equal(tag, tc1, 16);
    gmac_of(key, msg, 16, tag);
    assert_memory_equal(tag, want, 16);
    gmac_of(key, msg, 15, tag);
    assert_memory_not_equal(tag, want, 16);
    gmac_of(zero, msg, 16, tag);
    assert_memory_not_equal(tag, want, 16);
    dr_gmac *g = NULL;
    assert_int_equal(dr_gmac_new(key, &g), 0);
    for (int i = 0; i < 2; i++) { /* twice: final readies the context for the next input */
        assert_int_equal(dr_gmac_update(g, msg, 5), 0);
        assert_int_equal(dr_gmac_update(g, msg + 5, 11), 0);
        assert_int_equal(dr_gmac_final(g, tag), 0);
        assert_memory_equal(tag, want, 16);
    }
    dr_gmac_free(g);
    dr_gmac_free(NULL);
}

static void test_hash_tap(void **state)
{
    (void)state;
    size_t n = 300001;
    char *data = random_data(n);
    dr_sink *mem = NULL, *tap = NULL;
    assert_int_equal(dr_buf_sink_new(SIZE_MAX, &mem), 0);
    assert_int_equal(dr_hash_sink_new(mem, &tap), 0);
    for (size_t off = 0; off < n;) {
        size_t k = 1 + next_rand() % 9000;
        k = k > n - off ? n - off : k;
        assert_int_equal(dr_sink_write(tap, data + off, k), 0);
        off += k;
    }
    assert_int_equal(dr_sink_finish(tap), 0);
    uint8_t got[32], want[32];
    uint64_t bytes = 0;
    dr_hash_sink_result(tap, got, &bytes);
    assert_int_equal(dr_sha256_buf(data, n, want), 0);
    assert_memory_equal(got, want, 32);
    assert_int_equal(bytes, n);
    char *passed;
    size_t plen;
    dr_buf_sink_take(mem, &passed, &plen);
    assert_int_equal(plen, n);
    assert_memory_equal(passed, data, n);
    free(passed);
    dr_sink_free(tap);
    dr_sink_free(mem);

    /* terminal tap: no next sink */
    assert_int_equal(dr_hash_sink_new(NULL, &tap), 0);
    assert_int_equal(dr_sink_write(tap, "abc", 3), 0);
    assert_int_equal(dr_sink_finish(tap), 0);
    dr_hash_sink_result(tap, got, &bytes);
    assert_int_equal(bytes, 3);
    assert_int_equal(dr_sha256_buf("abc", 3, want), 0);
    assert_memory_equal(got, want, 32);
    dr_sink_free(tap);

    /* finishing the tap finishes the sink it wraps: a file appears only then */
    char path[128];
    dr_sink *f = NULL;
    path_in_tmp(path, sizeof path, "tapped");
    assert_int_equal(dr_fs_sink_new(path, 0600, 0, &f), 0);
    assert_int_equal(dr_hash_sink_new(f, &tap), 0);
    assert_int_equal(dr_sink_write(tap, "xyz", 3), 0);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(dr_sink_finish(tap), 0);
    assert_int_equal(access(path, F_OK), 0);
    dr_sink_free(tap);
    dr_sink_free(f);
    free(data);
}

/* ---- keyring ---- */

static void test_keyring_generate_load(void **state)
{
    (void)state;
    char path[128], name[DR_KEY_NAME_MAX + 1];
    struct stat st;
    dr_keyring *k = NULL;
    path_in_tmp(path, sizeof path, "ring-gen");
    assert_int_equal(dr_keyring_generate(path, "alpha", name), 0);
    assert_string_equal(name, "alpha");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(dr_keyring_load(path, &k), 0);
    assert_string_equal(dr_keyring_current(k), "alpha");
    assert_true(dr_keyring_has(k, "alpha"));
    assert_false(dr_keyring_has(k, "beta"));
    dr_keyring_free(k);

    /* refuses an existing path, and leaves it untouched */
    char *before = NULL, *after = NULL;
    size_t bl, al;
    assert_int_equal(dr_fs_read_all(path, 4096, &before, &bl), 0);
    assert_int_equal(dr_keyring_generate(path, "other", name), DR_EIO);
    assert_non_null(strstr(dr_error_msg(), "already exists"));
    assert_int_equal(dr_fs_read_all(path, 4096, &after, &al), 0);
    assert_int_equal(bl, al);
    assert_memory_equal(before, after, bl);
    free(before);
    free(after);

    /* automatic name: key-<UTC date>-<4 hex> */
    path_in_tmp(path, sizeof path, "ring-auto");
    assert_int_equal(dr_keyring_generate(path, NULL, name), 0);
    assert_int_equal(strlen(name), strlen("key-20260101-abcd"));
    assert_memory_equal(name, "key-", 4);
    assert_int_equal(dr_keyring_load(path, &k), 0);
    assert_string_equal(dr_keyring_current(k), name);
    dr_keyring_free(k);

    /* two generated keys differ: same name, different rings cannot read each other */
    char p2[128];
    dr_keyring *k2 = NULL;
    path_in_tmp(path, sizeof path, "ring-same1");
    path_in_tmp(p2, sizeof p2, "ring-same2");
    assert_int_equal(dr_keyring_generate(path, "same", NULL), 0);
    assert_int_equal(dr_keyring_generate(p2, "same", NULL), 0);
    assert_int_equal(dr_keyring_load(path, &k), 0);
    assert_int_equal(dr_keyring_load(p2, &k2), 0);
    char *ct, *pt;
    size_t ctl, ptl;
    encrypt_buf(k, "hello", 5, &ct, &ctl);
    assert_int_equal(decrypt_buf(k2, ct, ctl, &pt, &ptl), DR_ECHECKSUM);
    free(pt);
    assert_int_equal(decrypt_buf(k, ct, ctl, &pt, &ptl), 0);
    assert_int_equal(ptl, 5);
    free(pt);
    free(ct);
    dr_keyring_free(k);
    dr_keyring_free(k2);

    /* bad names are refused; missing directory is an I/O error */
    path_in_tmp(path, sizeof path, "ring-bad");
    assert_int_equal(dr_keyring_generate(path, "has space", NULL), DR_EUSAGE);
    assert_int_equal(dr_keyring_generate(path, "", NULL), DR_EUSAGE);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/no/such/dir/ring", tmpdir);
    assert_int_equal(dr_keyring_generate(path, "x", NULL), DR_EIO);
    path_in_tmp(path, sizeof path, "missing");
    assert_int_equal(dr_keyring_load(path, &k), DR_ENOTFOUND);
}

static void test_keyring_mode(void **state)
{
    (void)state;
    char path[128];
    dr_keyring *k = NULL;
    path_in_tmp(path, sizeof path, "ring-mode");
    assert_int_equal(dr_keyring_generate(path, "m", NULL), 0);
    static const unsigned bad[] = {0644, 0640, 0604, 0660, 0606, 0620, 0602};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(path, bad[i]), 0);
        assert_int_equal(dr_keyring_load(path, &k), DR_EAUTH);
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", bad[i]);
        assert_non_null(strstr(dr_error_msg(), mode));
        assert_non_null(strstr(dr_error_msg(), "chmod 600"));
        assert_int_equal(dr_keyring_rotate(path, "n", NULL), DR_EAUTH);
    }
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(dr_keyring_load(path, &k), 0);
    dr_keyring_free(k);
    assert_int_equal(chmod(path, 0600), 0);
    /* rotate keeps the mode at 0600 */
    assert_int_equal(dr_keyring_rotate(path, "n", NULL), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* a directory is not a keyring */
    assert_int_equal(dr_keyring_load(tmpdir, &k), DR_EIO);
}

#define HEX_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static void test_keyring_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        const char *want; /* in the message */
    } cases[] = {
        {"key a " HEX_A "\ncurrent a\n" HEX_B "\n", DR_EINVAL, "line 3: malformed"},
        {"key a " HEX_A "\nsecret a " HEX_B "\ncurrent a\n", DR_EINVAL, "line 2: malformed"},
        {"key a " HEX_A " extra\ncurrent a\n", DR_EINVAL, "line 1: malformed"},
        {"key a\ncurrent a\n", DR_EINVAL, "line 1: malformed"},
        {"key a " HEX_A "00\ncurrent a\n", DR_EINVAL, "line 1: key 'a' must be 64 hex digits"},
        {"key a 0011223344\ncurrent a\n", DR_EINVAL, "line 1: key 'a' must be 64 hex digits"},
        {"key a 0g112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\ncurrent a\n",
         DR_EINVAL, "line 1: key 'a' is not hex digits"},
        {"# two\n\nkey a " HEX_A "\nkey a " HEX_B "\ncurrent a\n", DR_EINVAL,
         "line 4: duplicate key name 'a'"},
        {"key a " HEX_A "\n", DR_EINVAL, "no 'current <name>' line"},
        {"", DR_EINVAL, "no 'current <name>' line"},
        {"key a " HEX_A "\ncurrent b\n", DR_EINVAL, "line 2: current key 'b' is not in the ring"},
        {"key a " HEX_A "\ncurrent a\ncurrent a\n", DR_EINVAL, "line 3: a second 'current'"},
        {"key a/b " HEX_A "\ncurrent a/b\n", DR_EINVAL, "line 1: invalid key name"},
        {"key " HEX_A HEX_A "x " HEX_A "\ncurrent a\n", DR_EINVAL, "line 1: invalid key name"},
        {"current " HEX_B "x\n", DR_EINVAL, "line 1: invalid key name"},
        /* a 64-hex-digit name is valid but never shown: it may be a misplaced key */
        {"key a " HEX_A "\ncurrent " HEX_B "\n", DR_EINVAL, "line 2: current key '(64 hex"},
        {"key " HEX_B " " HEX_A "\nkey " HEX_B " 00\ncurrent a\n", DR_EINVAL,
         "line 2: duplicate key name '(64 hex"},
        /* accepted: comments, blank lines, CRLF, tabs, current before the key, several keys */
        {"# c\n\r\n  # indented comment\ncurrent b\r\nkey a " HEX_A "\r\n\tkey\tb\t" HEX_B "\n", 0,
         NULL},
        {"key a " HEX_A "\ncurrent a", 0, NULL},
    };
    char path[128];
    path_in_tmp(path, sizeof path, "ring-bad");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dr_keyring *k = NULL;
        unlink(path);
        write_file(path, cases[i].text, 0600);
        int rc = dr_keyring_load(path, &k);
        if (rc != cases[i].rc || (cases[i].want && !strstr(dr_error_msg(), cases[i].want)))
            fail_msg("case %zu: rc %d, message '%s'", i, rc, dr_error_msg());
        if (rc < 0) {
            assert_null(k);
            assert_non_null(strstr(dr_error_msg(), path));
            /* never echoes key material, not even a fragment */
            assert_null(strstr(dr_error_msg(), "0011223344"));
            assert_null(strstr(dr_error_msg(), "ffeeddccbb"));
        } else {
            assert_string_equal(dr_keyring_current(k), i == 17 ? "b" : "a");
            assert_true(dr_keyring_has(k, "a"));
        }
        dr_keyring_free(k);
    }
}

static void test_keyring_rotate(void **state)
{
    (void)state;
    char path[128], name[DR_KEY_NAME_MAX + 1], kn[DR_KEY_NAME_MAX + 1];
    dr_keyring *k = NULL;
    path_in_tmp(path, sizeof path, "ring-rot");
    assert_int_equal(dr_keyring_generate(path, "k1", NULL), 0);
    assert_int_equal(dr_keyring_load(path, &k), 0);
    size_t n = 2 * C + 77;
    char *data = random_data(n), *old_ct, *new_ct, *pt;
    size_t old_len, new_len, ptl;
    encrypt_buf(k, data, n, &old_ct, &old_len);
    dr_keyring_free(k);

    assert_int_equal(dr_keyring_rotate(path, "k2", name), 0);
    assert_string_equal(name, "k2");
    assert_int_equal(dr_keyring_load(path, &k), 0);
    assert_string_equal(dr_keyring_current(k), "k2");
    assert_true(dr_keyring_has(k, "k1"));
    /* old objects stay readable; new ones use the new key */
    assert_int_equal(decrypt_buf(k, old_ct, old_len, &pt, &ptl), 0);
    assert_int_equal(ptl, n);
    assert_memory_equal(pt, data, n);
    free(pt);
    encrypt_buf(k, data, n, &new_ct, &new_len);
    assert_int_equal(dr_crypt_key_name(new_ct, new_len, kn), 0);
    assert_string_equal(kn, "k2");
    assert_int_equal(dr_crypt_key_name(old_ct, old_len, kn), 0);
    assert_string_equal(kn, "k1");
    dr_keyring_free(k);

    /* a taken name is refused and the file is unchanged */
    char *before, *after;
    size_t bl, al;
    assert_int_equal(dr_fs_read_all(path, 65536, &before, &bl), 0);
    assert_int_equal(dr_keyring_rotate(path, "k1", NULL), DR_EINVAL);
    assert_non_null(strstr(dr_error_msg(), "'k1'"));
    assert_int_equal(dr_fs_read_all(path, 65536, &after, &al), 0);
    assert_int_equal(bl, al);
    assert_memory_equal(before, after, bl);
    free(after);

    /* automatic name; the comments survive, exactly one current line remains */
    assert_int_equal(dr_keyring_rotate(path, NULL, name), 0);
    assert_memory_equal(name, "key-", 4);
    assert_int_equal(dr_fs_read_all(path, 65536, &after, &al), 0);
    assert_non_null(strstr(after, "# drd keyring"));
    assert_non_null(strstr(after, "previous current: k2"));
    int currents = 0;
    for (const char *p = after; (p = strstr(p, "\ncurrent ")); p++)
        currents++;
    assert_int_equal(currents, 1);
    /* the keys themselves are carried over byte for byte */
    const char *k1line = strstr(before, "key k1 ");
    assert_non_null(k1line);
    char k1copy[7 + 64 + 1];
    memcpy(k1copy, k1line, sizeof k1copy - 1);
    k1copy[sizeof k1copy - 1] = 0;
    assert_non_null(strstr(after, k1copy));
    free(before);
    free(after);
    assert_int_equal(dr_keyring_load(path, &k), 0);
    assert_string_equal(dr_keyring_current(k), name);
    assert_int_equal(decrypt_buf(k, old_ct, old_len, &pt, &ptl), 0);
    assert_memory_equal(pt, data, n);
    free(pt);
    assert_int_equal(decrypt_buf(k, new_ct, new_len, &pt, &ptl), 0);
    assert_memory_equal(pt, data, n);
    free(pt);
    dr_keyring_free(k);

    path_in_tmp(path, sizeof path, "ring-none");
    assert_int_equal(dr_keyring_rotate(path, "x", NULL), DR_ENOTFOUND);
    free(old_ct);
    free(new_ct);
    free(data);
}

/* ---- encrypted streams ---- */

static size_t header_len(const char *name)
{
    return 8 + 1 + 4 + 1 + strlen(name) + 12 + 48;
}

static void test_roundtrip(void **state)
{
    (void)state;
    dr_keyring *k = ring_with("ring-rt", "rt", 0x11);
    static const size_t sizes[] = {0, 1, C - 1, C, C + 1, 2 * C, 3 * C + 5, 1000 * 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *data = random_data(n), *ct, *pt;
        size_t ctl, ptl;
        encrypt_buf(k, data, n, &ct, &ctl);
        /* header, then n/C full chunks and one final chunk of n%C bytes, each with a tag */
        assert_int_equal(ctl, header_len("rt") + n + 16 * (n / C + 1));
        assert_true(dr_crypt_is_encrypted(ct, ctl));
        char kn[DR_KEY_NAME_MAX + 1];
        assert_int_equal(dr_crypt_key_name(ct, ctl < DR_CRYPT_HEADER_MAX ? ctl : 256, kn), 0);
        assert_string_equal(kn, "rt");
        for (int rep = 0; rep < 2; rep++) {
            assert_int_equal(decrypt_buf(k, ct, ctl, &pt, &ptl), 0);
            assert_int_equal(ptl, n);
            assert_memory_equal(pt, data, n);
            free(pt);
        }
        /* a second encryption of the same data differs (fresh data key and nonce) */
        char *ct2;
        size_t ctl2;
        encrypt_buf(k, data, n, &ct2, &ctl2);
        assert_int_equal(ctl2, ctl);
        assert_memory_not_equal(ct, ct2, ctl);
        free(ct2);
        free(ct);
        free(data);
    }
    /* the end of stream stays the end: reads after it return 0 */
    char *ct;
    size_t ctl, n;
    encrypt_buf(k, "abc", 3, &ct, &ctl);
    dr_source *mem, *dec;
    char buf[16];
    assert_int_equal(dr_mem_source_new(ct, ctl, &mem), 0);
    assert_int_equal(dr_decrypt_source_new(mem, k, &dec), 0);
    assert_int_equal(dr_source_read_full(dec, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(dr_source_read(dec, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 0);
    dr_source_free(dec);
    dr_source_free(mem);
    free(ct);
    dr_keyring_free(k);
}

static void test_encrypt_chain(void **state)
{
    (void)state;
    /* enc -> tap -> file, as the repository writes: finish propagates, the tap hashes the
     * ciphertext, the file appears only on finish */
    dr_keyring *k = ring_with("ring-chain", "chain", 0x22);
    char path[128];
    path_in_tmp(path, sizeof path, "object");
    dr_sink *f = NULL, *tap = NULL, *enc = NULL;
    assert_int_equal(dr_fs_sink_new(path, 0600, DR_FS_EXCLUSIVE, &f), 0);
    assert_int_equal(dr_hash_sink_new(f, &tap), 0);
    assert_int_equal(dr_encrypt_sink_new(tap, k, &enc), 0);
    size_t n = 5 * C + 3;
    char *data = random_data(n);
    assert_int_equal(dr_sink_write(enc, data, n), 0);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(dr_sink_finish(enc), 0);
    assert_int_equal(dr_sink_write(enc, "x", 1), DR_EGENERIC);
    uint8_t got[32], want[32];
    uint64_t bytes;
    dr_hash_sink_result(tap, got, &bytes);
    char *ct;
    size_t ctl;
    assert_int_equal(dr_fs_read_all(path, 1 << 30, &ct, &ctl), 0);
    assert_int_equal(bytes, ctl);
    assert_int_equal(dr_sha256_buf(ct, ctl, want), 0);
    assert_memory_equal(got, want, 32);
    dr_sink_free(enc);
    dr_sink_free(tap);
    dr_sink_free(f);

    dr_source *src, *dec;
    assert_int_equal(dr_fs_source_new(path, 0, &src), 0);
    assert_int_equal(dr_decrypt_source_new(src, k, &dec), 0);
    char *pt = malloc(n + 1);
    assert_int_equal(dr_source_read_full(dec, pt, n + 1, &ctl), 0);
    assert_int_equal(ctl, n);
    assert_memory_equal(pt, data, n);
    dr_source_free(dec);
    dr_source_free(src);
    free(pt);
    free(ct);
    free(data);
    dr_keyring_free(k);
}

static void test_marker_not_in_ciphertext(void **state)
{
    (void)state;
    dr_keyring *k = ring_with("ring-mark", "mark", 0x33);
    static const char marker[] = "DRD-PLAINTEXT-MARKER";
    size_t n = 2 * C + 1000;
    char *data = malloc(n), *ct;
    for (size_t i = 0; i < n; i++)
        data[i] = marker[i % (sizeof marker - 1)];
    size_t ctl;
    encrypt_buf(k, data, n, &ct, &ctl);
    assert_null(memmem(ct, ctl, marker, 8));
    assert_null(memmem(ct, ctl, "PLAINTEXT", 9));
    /* not even the repeated 20-byte pattern's period shows: no two chunks share a 16-byte block */
    assert_null(memmem(ct + header_len("mark") + 16, ctl - header_len("mark") - 16,
                       ct + header_len("mark"), 16));
    free(ct);
    free(data);
    dr_keyring_free(k);
}

/* Decrypt must fail with want; at most max_released plaintext bytes came out before. */
static void expect_fail(const dr_keyring *k, const char *ct, size_t ctl, int want,
                        size_t max_released, const char *msg)
{
    char *pt;
    size_t ptl;
    int rc = decrypt_buf(k, ct, ctl, &pt, &ptl);
    if (rc != want || ptl > max_released || (msg && !strstr(dr_error_msg(), msg)))
        fail_msg("want %s (released <= %zu, '%s'), got %s released %zu: %s", dr_error_name(want),
                 max_released, msg ? msg : "", dr_error_name(rc), ptl, dr_error_msg());
    free(pt);
}

static void test_tamper_header(void **state)
{
    (void)state;
    dr_keyring *k = ring_with("ring-th", "tamper", 0x44);
    char *ct;
    size_t ctl, hl = header_len("tamper");
    encrypt_buf(k, "some data", 9, &ct, &ctl);
    for (size_t i = 0; i < hl; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            ct[i] ^= (char)(1 << bit);
            char *pt;
            size_t ptl;
            int rc = decrypt_buf(k, ct, ctl, &pt, &ptl), ok;
            free(pt);
            if (i < 9) /* magic, version */
                ok = rc == DR_EPROTO;
            else if (i < 13) /* chunk size: out of range, or authenticated by the key wrap */
                ok = rc == DR_EPROTO || rc == DR_ECHECKSUM;
            else if (i < 20) /* name length and name: an invalid name or another key's */
                ok = rc == DR_EPROTO || rc == DR_EAUTH;
            else /* nonce, wrapped key, tag */
                ok = rc == DR_ECHECKSUM;
            if (!ok || ptl)
                fail_msg("byte %zu bit %d: got %s (%s), %zu bytes released", i, bit,
                         dr_error_name(rc), dr_error_msg(), ptl);
            if (rc == DR_EAUTH)
                assert_non_null(strstr(dr_error_msg(), "which is not in the keyring"));
            ct[i] ^= (char)(1 << bit);
        }
    }
    /* the header's own bytes, unchanged, still decrypt */
    char *pt;
    size_t ptl;
    assert_int_equal(decrypt_buf(k, ct, ctl, &pt, &ptl), 0);
    free(pt);
    /* another object's valid header in front of this object's chunks: the data key unwraps,
     * but the chunks were sealed under another key and header hash */
    char *ct2;
    size_t ctl2;
    encrypt_buf(k, "some data", 9, &ct2, &ctl2);
    memcpy(ct2, ct, hl);
    expect_fail(k, ct2, ctl2, DR_ECHECKSUM, 0, "chunk 0 fails authentication");
    free(ct2);
    free(ct);
    dr_keyring_free(k);
}

static void test_tamper_chunks(void **state)
{
    (void)state;
    dr_keyring *k = ring_with("ring-tc", "tc", 0x55);
    size_t n = 3 * C + 5, hl = header_len("tc"), cc = C + 16;
    char *data = random_data(n), *ct, *t;
    size_t ctl;
    encrypt_buf(k, data, n, &ct, &ctl);
    t = malloc(ctl + 2 * cc);

    /* a flipped byte in chunk 1's ciphertext: chunk 0 came out, nothing of chunk 1 */
    memcpy(t, ct, ctl);
    t[hl + cc + 100] ^= 0x01;
    expect_fail(k, t, ctl, DR_ECHECKSUM, C, "chunk 1 fails authentication");
    /* a flipped byte in the first chunk's first and last ciphertext bytes */
    memcpy(t, ct, ctl);
    t[hl] ^= 0x80;
    expect_fail(k, t, ctl, DR_ECHECKSUM, 0, "chunk 0");
    memcpy(t, ct, ctl);
    t[hl + C - 1] ^= 0x80;
    expect_fail(k, t, ctl, DR_ECHECKSUM, 0, "chunk 0");
    /* a flipped byte in a tag, and in the final chunk's data and tag */
    memcpy(t, ct, ctl);
    t[hl + 2 * cc + C + 3] ^= 0x10;
    expect_fail(k, t, ctl, DR_ECHECKSUM, 2 * C, "chunk 2");
    memcpy(t, ct, ctl);
    t[ctl - 17] ^= 0x10;
    expect_fail(k, t, ctl, DR_ECHECKSUM, 3 * C, "chunk 3");
    memcpy(t, ct, ctl);
    t[ctl - 1] ^= 0x10;
    expect_fail(k, t, ctl, DR_ECHECKSUM, 3 * C, "chunk 3");

    /* swapped chunks 0 and 1; chunk 1 repeated in place of 2 */
    memcpy(t, ct, ctl);
    memcpy(t + hl, ct + hl + cc, cc);
    memcpy(t + hl + cc, ct + hl, cc);
    expect_fail(k, t, ctl, DR_ECHECKSUM, 0, "chunk 0");
    memcpy(t, ct, ctl);
    memcpy(t + hl + 2 * cc, ct + hl + cc, cc);
    expect_fail(k, t, ctl, DR_ECHECKSUM, 2 * C, "chunk 2");
    /* chunk 1 dropped: chunk 2 arrives as index 1 */
    memcpy(t, ct, hl + cc);
    memcpy(t + hl + cc, ct + hl + 2 * cc, ctl - hl - 2 * cc);
    expect_fail(k, t, ctl - cc, DR_ECHECKSUM, C, "chunk 1");

    /* truncation at each chunk boundary: what came out is whole verified chunks, and the end
     * without a final chunk is reported as truncation */
    for (size_t c = 0; c <= 3; c++)
        expect_fail(k, ct, hl + c * cc, DR_ECHECKSUM, c * C, "truncated");
    /* truncation inside chunks */
    expect_fail(k, ct, hl + 5, DR_ECHECKSUM, 0, "truncated inside chunk 0");
    expect_fail(k, ct, hl + cc + 1000, DR_ECHECKSUM, C, "chunk 1");
    expect_fail(k, ct, ctl - 1, DR_ECHECKSUM, 3 * C, "chunk 3");
    expect_fail(k, ct, ctl - 16, DR_ECHECKSUM, 3 * C, "chunk 3");
    /* inside the header */
    for (size_t cut = 8; cut < hl; cut += 7)
        expect_fail(k, ct, cut, DR_ECHECKSUM, 0, "truncated inside its header");
    expect_fail(k, ct, 3, DR_EPROTO, 0, "not a drd encrypted object");
    expect_fail(k, ct, 0, DR_EPROTO, 0, "not a drd encrypted object");

    /* data after the final chunk: a byte, a tag's worth, a whole chunk's worth, a copy of the
     * final chunk */
    static const size_t extra[] = {1, 16, 17, C + 16, C + 17};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        memcpy(t, ct, ctl);
        memset(t + ctl, 0x5a, extra[i]);
        expect_fail(k, t, ctl + extra[i], DR_ECHECKSUM, 3 * C, "chunk 3");
    }
    memcpy(t, ct, ctl);
    memcpy(t + ctl, ct + hl + 3 * cc, 5 + 16);
    expect_fail(k, t, ctl + 21, DR_ECHECKSUM, 3 * C, "chunk 3");
    free(ct);

    /* a plaintext that is a multiple of the chunk size ends in an empty final chunk: dropping
     * it is truncation, appending after it is caught */
    encrypt_buf(k, data, 2 * C, &ct, &ctl);
    assert_int_equal(ctl, hl + 2 * cc + 16);
    expect_fail(k, ct, ctl - 16, DR_ECHECKSUM, 2 * C, "truncated: it ends after 2 chunks");
    memcpy(t, ct, ctl);
    t[ctl] = 0;
    expect_fail(k, t, ctl + 1, DR_ECHECKSUM, 2 * C, "chunk 2");
    /* the final empty chunk of one object does not finish another: keys and header differ */
    char *other;
    size_t ol;
    encrypt_buf(k, data, C, &other, &ol);
    memcpy(t, ct, hl + cc);
    memcpy(t + hl + cc, other + ol - 16, 16);
    expect_fail(k, t, hl + cc + 16, DR_ECHECKSUM, C, "chunk 1");
    free(other);

    free(t);
    free(ct);
    free(data);
    dr_keyring_free(k);
}

static void test_keys(void **state)
{
    (void)state;
    dr_keyring *k = ring_with("ring-k1", "k1", 0x66);
    dr_keyring *same_name = ring_with("ring-k1b", "k1", 0x67);
    dr_keyring *other = ring_with("ring-k2", "k2", 0x66);
    char *ct;
    size_t ctl;
    encrypt_buf(k, "payload", 7, &ct, &ctl);
    expect_fail(same_name, ct, ctl, DR_ECHECKSUM, 0, "wrong key or corrupt");
    assert_non_null(strstr(dr_error_msg(), "'k1'"));
    expect_fail(other, ct, ctl, DR_EAUTH, 0, "master key 'k1'");

    /* not encrypted at all */
    static const char plain[] = "just some plaintext that is long enough to hold a header";
    assert_false(dr_crypt_is_encrypted(plain, sizeof plain));
    assert_false(dr_crypt_is_encrypted(ct, 7));
    assert_true(dr_crypt_is_encrypted(ct, 8));
    expect_fail(k, plain, sizeof plain, DR_EPROTO, 0, "not a drd encrypted object");
    char kn[DR_KEY_NAME_MAX + 1];
    assert_int_equal(dr_crypt_key_name(plain, sizeof plain, kn), DR_EPROTO);
    assert_int_equal(dr_crypt_key_name(ct, 15, kn), DR_EPROTO);
    assert_int_equal(dr_crypt_key_name(ct, 16, kn), 0);
    assert_string_equal(kn, "k1");
    /* an unknown version is refused as such */
    ct[8] = 2;
    expect_fail(k, ct, ctl, DR_EPROTO, 0, "format version 2");
    assert_int_equal(dr_crypt_key_name(ct, ctl, kn), DR_EPROTO);
    free(ct);
    dr_keyring_free(k);
    dr_keyring_free(same_name);
    dr_keyring_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_gmac),
        cmocka_unit_test(test_hash_tap),
        cmocka_unit_test(test_keyring_generate_load),
        cmocka_unit_test(test_keyring_mode),
        cmocka_unit_test(test_keyring_malformed),
        cmocka_unit_test(test_keyring_rotate),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_encrypt_chain),
        cmocka_unit_test(test_marker_not_in_ciphertext),
        cmocka_unit_test(test_tamper_header),
        cmocka_unit_test(test_tamper_chunks),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
