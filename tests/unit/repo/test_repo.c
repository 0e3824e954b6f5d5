/* Unit tests for drd/lib/repo's pure parts: object IDs, manifests (round trip and refusal of
 * incomplete ones) and the segment record codec (round trip, truncation, corruption). Also the
 * core byte streams they are built on. No store, no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/lib/repo/repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_ids(void **state)
{
    (void)state;
    char id[DR_REPO_ID_MAX];
    /* 2026-11-22T06:05:01Z */
    dr_repo_make_id(DR_KIND_INCR, 101, 250, 1795327501123LL, id);
    assert_string_equal(id, "0000000000000000101-0000000000000000250-incr-20261122T060501Z");
    dr_repo_kind k;
    int64_t a, b, t;
    assert_int_equal(dr_repo_parse_id(id, &k, &a, &b, &t), 0);
    assert_int_equal(k, DR_KIND_INCR);
    assert_int_equal(a, 101);
    assert_int_equal(b, 250);
    assert_int_equal(t, 1795327501000LL);
    /* IDs sort by revision */
    char id2[DR_REPO_ID_MAX];
    dr_repo_make_id(DR_KIND_FULL, 1000, 1000, 0, id2);
    assert_true(strcmp(id, id2) < 0);
    const char *bad[] = {"",
                         "latest",
                         "1-2-full-20260101T000000Z",
                         "0000000000000000101-0000000000000000250-half-20261122T060501Z",
                         "0000000000000000251-0000000000000000250-incr-20261122T060501Z",
                         "0000000000000000101-0000000000000000250-incr-20261122T060501Zx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(dr_repo_parse_id(bad[i], NULL, NULL, NULL, NULL), DR_EUSAGE);
}

static void sample(dr_manifest *m)
{
    memset(m, 0, sizeof *m);
    m->kind = DR_KIND_FULL;
    m->rev_start = m->rev_end = 4242;
    m->created_ms = 1795327501000LL;
    dr_repo_make_id(m->kind, m->rev_start, m->rev_end, m->created_ms, m->id);
    snprintf(m->data, sizeof m->data, "data/save-1795327501000-abcdef012345.drd");
    m->cluster_id = 0xcdef0123456789abULL;
    m->member_id = 42;
    snprintf(m->etcd_version, sizeof m->etcd_version, "3.4.23");
    snprintf(m->etcd_endpoint, sizeof m->etcd_endpoint, "127.0.0.1:2379");
    m->compact_revision = 17;
    m->plain_bytes = 1 << 20;
    memset(m->plain_sha256, 'a', 64);
    m->stored_bytes = 12345;
    memset(m->stored_sha256, 'b', 64);
    snprintf(m->compression, sizeof m->compression, "zstd");
    snprintf(m->encryption, sizeof m->encryption, "aes-256-gcm");
    snprintf(m->key_id, sizeof m->key_id, "k1");
    m->key_count = 999;
    m->has_hashkv = 1;
    m->hashkv = 4000000000u;
    snprintf(m->labels, sizeof m->labels, "env=test,quote=a\"b");
}

static void test_manifest_roundtrip(void **state)
{
    (void)state;
    dr_manifest m, back;
    sample(&m);
    dr_buf b = {0};
    assert_int_equal(dr_manifest_to_json(&m, &b), 0);
    assert_int_equal(dr_manifest_from_json(b.data, b.len, &back), 0);
    assert_string_equal(back.id, m.id);
    assert_int_equal(back.kind, m.kind);
    assert_int_equal(back.rev_end, 4242);
    assert_string_equal(back.data, m.data);
    assert_true(back.cluster_id == m.cluster_id);
    assert_int_equal(back.compact_revision, 17);
    assert_int_equal(back.plain_bytes, m.plain_bytes);
    assert_string_equal(back.plain_sha256, m.plain_sha256);
    assert_string_equal(back.stored_sha256, m.stored_sha256);
    assert_string_equal(back.key_id, "k1");
    assert_int_equal(back.key_count, 999);
    assert_int_equal(back.has_hashkv, 1);
    assert_true(back.hashkv == 4000000000u);
    assert_string_equal(back.labels, "env=test,quote=a\"b");
    dr_buf_free(&b);
}

static void test_manifest_refused(void **state)
{
    (void)state;
    dr_manifest m, back;
    sample(&m);
    dr_buf b = {0};
    assert_int_equal(dr_manifest_to_json(&m, &b), 0);
    /* each required field removed in turn: refused, naming it */
    const char *fields[] = {"\"plain\"", "\"stored\"", "\"data\"", "\"key_id\"", "\"revision\""};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char *t = strdup(b.data);
        char *p = strstr(t, fields[i]);
        assert_non_null(p);
        p[1] = 'X'; /* rename the member */
        assert_int_equal(dr_manifest_from_json(t, strlen(t), &back), DR_EPROTO);
        free(t);
    }
    /* an id that does not match the revisions */
    char *t = strdup(b.data);
    char *p = strstr(t, "\"end\": 4242");
    assert_non_null(p);
    memcpy(p, "\"end\": 4243", 11);
    assert_int_equal(dr_manifest_from_json(t, strlen(t), &back), DR_EPROTO);
    free(t);
    assert_int_equal(dr_manifest_from_json("{", 1, &back), DR_EPROTO);
    assert_int_equal(dr_manifest_from_json("[]", 2, &back), DR_EPROTO);
    dr_buf_free(&b);
}

static void encode_sample(dr_buf *b)
{
    dr_seg_event put = {.type = 'P',
                        .key = (const uint8_t *)"/a",
                        .key_len = 2,
                        .value = (const uint8_t *)"v\0x",
                        .value_len = 3,
                        .create_revision = 10,
                        .mod_revision = 10,
                        .version = 1,
                        .lease = 7};
    dr_seg_event lease = {.type = 'L', .lease = 7, .ttl = 60};
    dr_seg_event del = {.type = 'D', .key = (const uint8_t *)"/b", .key_len = 2};
    assert_int_equal(dr_seg_encode_rev(b, 10, 2), 0);
    assert_int_equal(dr_seg_encode_event(b, &lease), 0);
    assert_int_equal(dr_seg_encode_event(b, &put), 0);
    assert_int_equal(dr_seg_encode_rev(b, 11, 1), 0);
    assert_int_equal(dr_seg_encode_event(b, &del), 0);
}

static void test_segment_roundtrip(void **state)
{
    (void)state;
    dr_buf b = {0};
    encode_sample(&b);
    dr_source *src;
    dr_seg_reader *r;
    assert_int_equal(dr_mem_source_new(b.data, b.len, &src), 0);
    assert_int_equal(dr_seg_reader_new(src, &r), 0);
    int64_t rev;
    uint32_t n;
    dr_seg_event e;
    assert_int_equal(dr_seg_next_rev(r, &rev, &n), 0);
    assert_int_equal(rev, 10);
    assert_int_equal(n, 2);
    assert_int_equal(dr_seg_next_event(r, &e), 0);
    assert_int_equal(e.type, 'L');
    assert_int_equal(e.lease, 7);
    assert_int_equal(e.ttl, 60);
    assert_int_equal(dr_seg_next_event(r, &e), 0);
    assert_int_equal(e.type, 'P');
    assert_int_equal(e.key_len, 2);
    assert_memory_equal(e.key, "/a", 2);
    assert_int_equal(e.value_len, 3);
    assert_memory_equal(e.value, "v\0x", 3);
    assert_int_equal(e.create_revision, 10);
    assert_int_equal(e.version, 1);
    assert_int_equal(e.lease, 7);
    assert_int_equal(dr_seg_next_rev(r, &rev, &n), 0);
    assert_int_equal(rev, 11);
    assert_int_equal(dr_seg_next_event(r, &e), 0);
    assert_int_equal(e.type, 'D');
    assert_int_equal(e.mod_revision, 11);
    assert_int_equal(dr_seg_next_rev(r, &rev, &n), DR_ENOTFOUND);
    dr_seg_reader_free(r);
    dr_source_free(src);
    dr_buf_free(&b);
}

/* Every truncation is an error, never a silent shorter segment, except a cut exactly between
 * two revisions, which the caller detects by comparing with the manifest's range. */
static void test_segment_truncated(void **state)
{
    (void)state;
    dr_buf b = {0};
    encode_sample(&b);
    size_t boundary = 0; /* where revision 11 starts */
    for (size_t cut = 1; cut < b.len; cut++) {
        dr_source *src;
        dr_seg_reader *r;
        assert_int_equal(dr_mem_source_new(b.data, cut, &src), 0);
        assert_int_equal(dr_seg_reader_new(src, &r), 0);
        int64_t rev;
        uint32_t n;
        dr_seg_event e;
        int rc = 0, revs = 0;
        while (rc == 0 && (rc = dr_seg_next_rev(r, &rev, &n)) == 0) {
            revs++;
            for (uint32_t i = 0; i < n && rc == 0; i++)
                rc = dr_seg_next_event(r, &e);
        }
        if (rc == DR_ENOTFOUND) {
            assert_int_equal(revs, 1);
            boundary = cut;
        } else {
            assert_int_equal(rc, DR_EPROTO);
        }
        dr_seg_reader_free(r);
        dr_source_free(src);
    }
    assert_true(boundary > 0);
    /* corrupt record type and a huge length */
    b.data[boundary] = 'Q';
    dr_source *src;
    dr_seg_reader *r;
    int64_t rev;
    uint32_t n;
    dr_seg_event e;
    assert_int_equal(dr_mem_source_new(b.data, b.len, &src), 0);
    assert_int_equal(dr_seg_reader_new(src, &r), 0);
    assert_int_equal(dr_seg_next_rev(r, &rev, &n), 0);
    assert_int_equal(dr_seg_next_event(r, &e), 0);
    assert_int_equal(dr_seg_next_event(r, &e), 0);
    assert_int_equal(dr_seg_next_rev(r, &rev, &n), DR_EPROTO);
    dr_seg_reader_free(r);
    dr_source_free(src);
    dr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_manifest_roundtrip),
        cmocka_unit_test(test_manifest_refused),
        cmocka_unit_test(test_segment_roundtrip),
        cmocka_unit_test(test_segment_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
