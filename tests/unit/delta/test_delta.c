/* drd/lib/delta: signature -> delta -> patch round trips on real files, block lengths, and the
 * checks on bytes from a peer (signature header, truncated delta, oversized output). */
#include "drd/lib/delta/delta.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

static int memfd_with(const void *data, size_t n)
{
    int fd = memfd_create("t", 0);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

/* Runs job over fd (or just finishes it when fd < 0) into a memory sink; returns the bytes. */
static char *run_job(dr_delta_job *j, int fd, size_t *len)
{
    dr_sink *out = NULL;
    char *data;
    assert_int_equal(dr_buf_sink_new(64 << 20, &out), 0);
    if (fd >= 0)
        assert_int_equal(dr_delta_job_feed_fd(j, fd, out, NULL), 0);
    assert_int_equal(dr_delta_job_finish(j, out), 0);
    dr_buf_sink_take(out, &data, len);
    dr_sink_free(out);
    return data;
}

/* Signature of fd's content (size bytes), loaded back in odd pieces as from the wire. */
static dr_delta_sig *sig_loaded(int fd, uint64_t size)
{
    dr_delta_job *j = NULL;
    dr_delta_sig *s = NULL;
    size_t sl;
    assert_int_equal(dr_delta_sig_job_new(size, &j), 0);
    char *sig = run_job(j, fd, &sl);
    dr_delta_job_free(j);
    assert_int_equal(dr_delta_load_job_new(&s, &j), 0);
    for (size_t off = 0; off < sl; off += 7) {
        size_t k = sl - off < 7 ? sl - off : 7;
        assert_int_equal(dr_delta_job_feed(j, sig + off, k, NULL), 0);
    }
    assert_int_equal(dr_delta_job_finish(j, NULL), 0);
    dr_delta_job_free(j);
    free(sig);
    return s;
}

/* Delta of fd's content against s (freed). */
static char *delta_of(dr_delta_sig *s, int fd, size_t *dl, uint64_t *lit, uint64_t *matched)
{
    dr_delta_job *j = NULL;
    assert_int_equal(dr_delta_delta_job_new(s, &j), 0);
    char *delta = run_job(j, fd, dl);
    dr_delta_job_stats(j, lit, matched);
    dr_delta_job_free(j);
    dr_delta_sig_free(s);
    return delta;
}

/* sig(old) -> load -> delta(new) -> patch(old): returns the patched bytes, and the delta size. */
static char *roundtrip(const unsigned char *old, size_t on, const unsigned char *nw, size_t nn,
                       size_t *delta_len, uint64_t *lit, uint64_t *matched)
{
    dr_delta_job *j = NULL;
    dr_sink *ps = NULL;
    int ofd = memfd_with(old, on), nfd = memfd_with(nw, nn);
    char *delta = delta_of(sig_loaded(ofd, on), nfd, delta_len, lit, matched);

    assert_int_equal(dr_buf_sink_new(64 << 20, &ps), 0);
    assert_int_equal(dr_delta_patch_job_new(ofd, nn, &j), 0);
    for (size_t off = 0; off < *delta_len; off += 4093) {
        size_t k = *delta_len - off < 4093 ? *delta_len - off : 4093;
        assert_int_equal(dr_delta_job_feed(j, delta + off, k, ps), 0);
    }
    assert_int_equal(dr_delta_job_finish(j, ps), 0);
    dr_delta_job_free(j);
    free(delta);
    char *res;
    size_t rl;
    dr_buf_sink_take(ps, &res, &rl);
    dr_sink_free(ps);
    assert_int_equal(rl, nn);
    close(ofd);
    close(nfd);
    return res;
}

static void test_small_change(void **st)
{
    (void)st;
    size_t n = 3 << 20;
    unsigned char *a = malloc(n), *b = malloc(n);
    fill(a, n, 1);
    memcpy(b, a, n);
    fill(b + 1000000, 30000, 2); /* 1% changed in the middle */
    size_t dl;
    uint64_t lit, matched;
    char *r = roundtrip(a, n, b, n, &dl, &lit, &matched);
    assert_memory_equal(r, b, n);
    /* only about the changed bytes (plus up to two blocks around them) cross */
    assert_true(lit >= 30000 && lit < 30000 + 3 * dr_delta_block_len(n));
    assert_true(dl < lit + 4096);
    assert_true(matched + lit == n);
    free(r);
    free(a);
    free(b);
}

static void test_insert_and_empty(void **st)
{
    (void)st;
    size_t n = 200000;
    unsigned char *a = malloc(n), *b = malloc(n + 10);
    fill(a, n, 3);
    memcpy(b, a, 5000);
    memcpy(b + 5000, "INSERTED!!", 10);
    memcpy(b + 5010, a + 5000, n - 5000);
    size_t dl;
    uint64_t lit, matched;
    char *r = roundtrip(a, n, b, n + 10, &dl, &lit, &matched);
    assert_memory_equal(r, b, n + 10);
    assert_true(matched > n - 4 * dr_delta_block_len(n));
    free(r);
    /* empty basis: everything literal; empty new file */
    r = roundtrip(a, 0, b, n, &dl, &lit, &matched);
    assert_memory_equal(r, b, n);
    assert_int_equal(lit, n);
    free(r);
    r = roundtrip(a, n, b, 0, &dl, &lit, &matched);
    free(r);
    free(a);
    free(b);
}

static void test_block_len(void **st)
{
    (void)st;
    assert_int_equal(dr_delta_block_len(0), DR_DELTA_MIN_BLOCK);
    assert_int_equal(dr_delta_block_len(100 << 20), 10240);
    assert_int_equal(dr_delta_block_len(20ull << 30), 163904);
    assert_int_equal(dr_delta_block_len(16ull << 30), 131072 + 64);
    assert_int_equal(dr_delta_block_len(1ull << 50), DR_DELTA_MAX_BLOCK);
    /* the block count of a 20 GiB or 1 TiB file stays under the bound */
    assert_true((20ull << 30) / dr_delta_block_len(20ull << 30) < DR_DELTA_MAX_BLOCKS);
    assert_true((1ull << 40) / dr_delta_block_len(1ull << 40) < DR_DELTA_MAX_BLOCKS);
}

static void test_bad_signature(void **st)
{
    (void)st;
    dr_delta_sig *s = NULL;
    dr_delta_job *j = NULL;
    static const unsigned char bad_magic[12] = {1, 2, 3, 4, 0, 0, 4, 0, 0, 0, 0, 8};
    assert_int_equal(dr_delta_load_job_new(&s, &j), 0);
    assert_int_equal(dr_delta_job_feed(j, bad_magic, 12, NULL), DR_EPROTO);
    dr_delta_job_free(j);
    dr_delta_sig_free(s);
    /* huge block length */
    static const unsigned char bad_bl[12] = {0x72, 0x73, 0x01, 0x47, 0x7f, 0, 0, 0, 0, 0, 0, 8};
    assert_int_equal(dr_delta_load_job_new(&s, &j), 0);
    assert_int_equal(dr_delta_job_feed(j, bad_bl, 12, NULL), DR_EPROTO);
    assert_non_null(strstr(dr_error_msg(), "block length"));
    dr_delta_job_free(j);
    dr_delta_sig_free(s);
    /* truncated header */
    assert_int_equal(dr_delta_load_job_new(&s, &j), 0);
    assert_int_equal(dr_delta_job_feed(j, bad_bl, 5, NULL), 0);
    assert_int_equal(dr_delta_job_finish(j, NULL), DR_EPROTO);
    dr_delta_job_free(j);
    dr_delta_sig_free(s);
}

static void test_bad_delta(void **st)
{
    (void)st;
    size_t n = 100000;
    unsigned char *a = malloc(n);
    fill(a, n, 5);
    int fd = memfd_with(a, n);
    dr_sink *out = NULL;
    dr_delta_job *j = NULL;
    /* a literal-only delta of the whole file (against an empty basis), then cut, and then
     * with a smaller max */
    int efd = memfd_with("", 0);
    size_t dl;
    uint64_t lit, matched;
    char *delta = delta_of(sig_loaded(efd, 0), fd, &dl, &lit, &matched);

    assert_int_equal(dr_buf_sink_new(1 << 20, &out), 0);
    assert_int_equal(dr_delta_patch_job_new(efd, n, &j), 0);
    assert_int_equal(dr_delta_job_feed(j, delta, dl - 10, out), 0);
    assert_int_equal(dr_delta_job_finish(j, out), DR_EPROTO);
    dr_delta_job_free(j);
    dr_sink_free(out);

    assert_int_equal(dr_buf_sink_new(1 << 20, &out), 0);
    assert_int_equal(dr_delta_patch_job_new(efd, n - 1, &j), 0);
    int rc = dr_delta_job_feed(j, delta, dl, out);
    if (rc == 0)
        rc = dr_delta_job_finish(j, out);
    assert_int_equal(rc, DR_EPROTO);
    assert_non_null(strstr(dr_error_msg(), "larger"));
    dr_delta_job_free(j);
    dr_sink_free(out);

    /* a copy command beyond an empty basis */
    static const unsigned char copy_cmd[] = {0x72, 0x73, 0x02, 0x36, 0x45, 0x00, 0x10, 0x00};
    assert_int_equal(dr_buf_sink_new(1 << 20, &out), 0);
    assert_int_equal(dr_delta_patch_job_new(efd, n, &j), 0);
    rc = dr_delta_job_feed(j, copy_cmd, sizeof copy_cmd, out);
    if (rc == 0)
        rc = dr_delta_job_finish(j, out);
    assert_int_equal(rc, DR_EPROTO);
    dr_delta_job_free(j);
    dr_sink_free(out);
    free(delta);
    free(a);
    close(fd);
    close(efd);
}

/* A basis read through a callback: short reads (at most 100 bytes), then a failing reader. */
typedef struct mem_basis {
    const unsigned char *p;
    size_t n;
    int fail;
} mem_basis;

static int mem_read(void *arg, uint64_t pos, void *buf, size_t *len)
{
    mem_basis *m = arg;
    if (m->fail)
        return dr_error_set(DR_EIO, "basis unreadable");
    size_t k = pos >= m->n ? 0 : m->n - (size_t)pos;
    if (k > *len)
        k = *len;
    if (k > 100)
        k = 100;
    memcpy(buf, m->p + pos, k);
    *len = k;
    return 0;
}

static void test_patch_reader(void **st)
{
    (void)st;
    size_t n = 200000;
    unsigned char *a = malloc(n), *b = malloc(n);
    fill(a, n, 7);
    memcpy(b, a, n);
    fill(b + 50000, 1000, 8);
    int afd = memfd_with(a, n), bfd = memfd_with(b, n);
    size_t dl, rl;
    uint64_t lit, matched;
    char *delta = delta_of(sig_loaded(afd, n), bfd, &dl, &lit, &matched), *res;
    mem_basis m = {.p = a, .n = n};
    dr_delta_job *j = NULL;
    dr_sink *out = NULL;
    assert_int_equal(dr_buf_sink_new(1 << 20, &out), 0);
    assert_int_equal(dr_delta_patch_job_new_read(mem_read, &m, n, &j), 0);
    assert_int_equal(dr_delta_job_feed(j, delta, dl, out), 0);
    assert_int_equal(dr_delta_job_finish(j, out), 0);
    dr_delta_job_free(j);
    dr_buf_sink_take(out, &res, &rl);
    dr_sink_free(out);
    assert_int_equal(rl, n);
    assert_memory_equal(res, b, n);
    free(res);

    m.fail = 1;
    assert_int_equal(dr_buf_sink_new(1 << 20, &out), 0);
    assert_int_equal(dr_delta_patch_job_new_read(mem_read, &m, n, &j), 0);
    int rc = dr_delta_job_feed(j, delta, dl, out);
    if (rc == 0)
        rc = dr_delta_job_finish(j, out);
    assert_int_equal(rc, DR_EIO);
    assert_non_null(strstr(dr_error_msg(), "basis unreadable"));
    dr_delta_job_free(j);
    dr_sink_free(out);
    free(delta);
    free(a);
    free(b);
    close(afd);
    close(bfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_change), cmocka_unit_test(test_insert_and_empty),
        cmocka_unit_test(test_block_len),    cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_bad_delta),    cmocka_unit_test(test_patch_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
