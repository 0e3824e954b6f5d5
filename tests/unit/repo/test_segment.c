/*
 * The segment decoder on hostile input (drd/lib/repo/segment.c, issue 10 part 3): a record that
 * claims a field of 256 MiB (the cap) or 4 GiB costs memory only as its bytes arrive, never the
 * claimed size up front; a field longer than one read step comes back whole through a source
 * that hands out a few bytes at a time. The heap in use is sampled on every read of the source
 * (the sanitizer's count under ASan, glibc's mallinfo2 otherwise).
 */
#include "drd/lib/repo/repo.h"

#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
/* from the sanitizer runtime (gcc ships no header for it) */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd; /* large blocks are mmapped: hblkhd */
}
#endif

/* A source over memory that hands out at most piece bytes per read and records the most heap
 * in use seen at any read. */
typedef struct probe {
    dr_source base;
    const uint8_t *p;
    size_t left, piece;
    size_t heap_max;
} probe;

static int probe_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    probe *s = (probe *)base;
    size_t h = heap_in_use();
    if (h > s->heap_max)
        s->heap_max = h;
    size_t k = s->left < cap ? s->left : cap;
    if (k > s->piece)
        k = s->piece;
    memcpy(buf, s->p, k);
    s->p += k;
    s->left -= k;
    *n = k;
    return 0;
}

static void probe_free(dr_source *base)
{
    (void)base;
}

static const dr_source_ops probe_ops = {probe_read, probe_free};

static probe probe_over(const dr_buf *b, size_t piece)
{
    probe s = {
        .base.ops = &probe_ops, .p = (const uint8_t *)b->data, .left = b->len, .piece = piece};
    return s;
}

/* "R" rev 1 count 1, then a put whose key claims klen bytes, followed by have bytes of it */
static void claim(dr_buf *b, uint32_t klen, size_t have)
{
    uint8_t hdr[] = {'R',
                     0,
                     0,
                     0,
                     0,
                     0,
                     0,
                     0,
                     1,
                     0,
                     0,
                     0,
                     1,
                     'P',
                     (uint8_t)(klen >> 24),
                     (uint8_t)(klen >> 16),
                     (uint8_t)(klen >> 8),
                     (uint8_t)klen};
    assert_int_equal(dr_buf_append(b, hdr, sizeof hdr), 0);
    char *fill = calloc(1, have ? have : 1);
    assert_non_null(fill);
    assert_int_equal(dr_buf_append(b, fill, have), 0);
    free(fill);
}

/* The first event of the first revision; *r (caller frees) owns what e points to. */
static int decode_one(probe *src, dr_seg_reader **r, dr_seg_event *e)
{
    int64_t rev;
    uint32_t n;
    assert_int_equal(dr_seg_reader_new(&src->base, r), 0);
    assert_int_equal(dr_seg_next_rev(*r, &rev, &n), 0);
    return dr_seg_next_event(*r, e);
}

static void test_claimed_field_costs_only_what_arrived(void **state)
{
    (void)state;
    static const uint32_t claims[] = {256u << 20, 0xffffffffu, 100u << 20};
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        dr_buf b = {0};
        claim(&b, claims[i], 1 << 20); /* 1 MiB of the claimed bytes arrive, then the end */
        size_t base = heap_in_use();
        probe src = probe_over(&b, 4096);
        dr_seg_event e;
        dr_seg_reader *r = NULL;
        assert_int_equal(decode_one(&src, &r, &e), DR_EPROTO);
        dr_seg_reader_free(r);
        /* at most twice what arrived plus a step: far below any claim */
        assert_true(src.heap_max < base + (4u << 20));
        dr_buf_free(&b);
    }
}

static void test_long_field_in_small_pieces(void **state)
{
    (void)state;
    enum { KLEN = 200 * 1024 + 7 }; /* a few read steps */
    dr_buf b = {0};
    uint8_t *key = malloc(KLEN);
    assert_non_null(key);
    for (size_t i = 0; i < KLEN; i++)
        key[i] = (uint8_t)(i * 31 + 7);
    dr_seg_event put = {.type = 'P',
                        .key = key,
                        .key_len = KLEN,
                        .value = (const uint8_t *)"v",
                        .value_len = 1,
                        .create_revision = 5,
                        .mod_revision = 9,
                        .version = 2};
    assert_int_equal(dr_seg_encode_rev(&b, 9, 1), 0);
    assert_int_equal(dr_seg_encode_event(&b, &put), 0);
    for (size_t piece = 1; piece <= 100000; piece *= 17) {
        probe src = probe_over(&b, piece);
        dr_seg_event e;
        dr_seg_reader *r = NULL;
        assert_int_equal(decode_one(&src, &r, &e), 0);
        assert_int_equal(e.key_len, KLEN);
        assert_memory_equal(e.key, key, KLEN);
        assert_int_equal(e.value_len, 1);
        assert_int_equal(e.value[0], 'v');
        assert_int_equal(e.mod_revision, 9);
        dr_seg_reader_free(r);
    }
    free(key);
    dr_buf_free(&b);
}

static void test_empty_and_over_cap_fields(void **state)
{
    (void)state;
    dr_buf b = {0};
    claim(&b, 0, 0); /* an empty key, then the value's length is missing: truncated */
    probe src = probe_over(&b, 3);
    dr_seg_event e;
    dr_seg_reader *r = NULL;
    assert_int_equal(decode_one(&src, &r, &e), DR_EPROTO);
    assert_non_null(strstr(dr_error_msg(), "truncated"));
    dr_seg_reader_free(r);
    b.len = 0;
    claim(&b, (256u << 20) + 1, 16); /* one byte over the cap: refused before reading it */
    src = probe_over(&b, 3);
    assert_int_equal(decode_one(&src, &r, &e), DR_EPROTO);
    assert_non_null(strstr(dr_error_msg(), "byte field"));
    dr_seg_reader_free(r);
    dr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claimed_field_costs_only_what_arrived),
        cmocka_unit_test(test_long_field_in_small_pieces),
        cmocka_unit_test(test_empty_and_over_cap_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
