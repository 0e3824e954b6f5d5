/* Unit tests for the trust checks of drd/lib/repo's manifests: the outer manifest's mac (sealed
 * under a keyring key, refused when edited, missing or under another key), the range checks of
 * every field a reader steers by, and the comparison of the sealed inner manifest with the outer
 * one, field by field. No store, no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/lib/repo/repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static dr_keyring *ring(const char *name)
{
    char path[] = "/tmp/drd-test-ringXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(dr_keyring_generate(path, name, NULL), 0);
    dr_keyring *k = NULL;
    assert_int_equal(dr_keyring_load(path, &k), 0);
    unlink(path);
    return k;
}

static void sample(dr_manifest *m, const char *key)
{
    memset(m, 0, sizeof *m);
    m->format = DR_REPO_FORMAT;
    m->kind = DR_KIND_FULL;
    m->rev_start = m->rev_end = 4242;
    m->created_ms = 1795327501123LL;
    dr_repo_make_id(m->kind, m->rev_start, m->rev_end, m->created_ms, m->id);
    snprintf(m->data, sizeof m->data, "data/save-1795327500000-0123456789ab.drd");
    snprintf(m->etcd_version, sizeof m->etcd_version, "3.4.23");
    m->compact_revision = 17;
    m->plain_bytes = 1 << 20;
    memset(m->plain_sha256, 'a', 64);
    m->stored_bytes = 12345;
    memset(m->stored_sha256, 'b', 64);
    snprintf(m->compression, sizeof m->compression, "zstd");
    snprintf(m->encryption, sizeof m->encryption, "%s", key ? "aes-256-gcm" : "none");
    snprintf(m->key_id, sizeof m->key_id, "%s", key ? key : "");
    m->key_count = 999;
}

static void test_mac(void **state)
{
    (void)state;
    dr_keyring *k1 = ring("k1"), *k2 = ring("k1"); /* same name, other key */
    dr_manifest m, back;
    sample(&m, "k1");
    dr_buf b = {0};
    assert_int_equal(dr_manifest_seal_json(&m, k1, &b), 0);
    assert_non_null(strstr(b.data, "\"mac\": \""));
    assert_int_equal(dr_manifest_from_json(b.data, b.len, &back), 0);
    assert_int_equal(dr_manifest_check_mac(&back, k1), 0);
    assert_int_equal(dr_manifest_check_mac(&back, k2), DR_EAUTH);
    /* any edit of the text before the mac fails: a revision, the data name, one space */
    const char *edits[][2] = {{"4242}", "4243}"},
                              {"0123456789ab", "0123456789ac"},
                              {"\"key_count\": 999", "\"key_count\":  99"}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *t = strdup(b.data);
        char *p = strstr(t, edits[i][0]);
        assert_non_null(p);
        memcpy(p, edits[i][1], strlen(edits[i][1]));
        int rc = dr_manifest_from_json(t, strlen(t), &back);
        if (rc == 0)
            assert_int_equal(dr_manifest_check_mac(&back, k1), DR_EAUTH);
        free(t);
    }
    /* no mac line at all (to_json), or one not at the very end */
    dr_buf plain = {0};
    assert_int_equal(dr_manifest_to_json(&m, &plain), 0);
    assert_int_equal(dr_manifest_from_json(plain.data, plain.len, &back), 0);
    assert_int_equal(dr_manifest_check_mac(&back, k1), DR_EAUTH);
    dr_buf_printf(&b, " ");
    assert_int_equal(dr_manifest_from_json(b.data, b.len, &back), 0);
    assert_int_equal(dr_manifest_check_mac(&back, k1), DR_EAUTH);
    /* a plaintext manifest gets no mac */
    dr_buf pt = {0};
    sample(&m, NULL);
    assert_int_equal(dr_manifest_seal_json(&m, k1, &pt), 0);
    assert_null(strstr(pt.data, "\"mac\""));
    dr_buf_free(&pt);
    dr_buf_free(&plain);
    dr_buf_free(&b);
    dr_keyring_free(k1);
    dr_keyring_free(k2);
}

/* Replaces the first "from" in the manifest's JSON with "to": the result must be refused. */
static void refuse_edit(const dr_manifest *m, const char *from, const char *to)
{
    dr_buf b = {0};
    dr_manifest back;
    assert_int_equal(dr_manifest_to_json(m, &b), 0);
    char *p = strstr(b.data, from);
    if (!p)
        fail_msg("'%s' not in %s", from, b.data);
    dr_buf t = {0};
    dr_buf_append(&t, b.data, (size_t)(p - b.data));
    dr_buf_printf(&t, "%s%s", to, p + strlen(from));
    int rc = dr_manifest_from_json(t.data, t.len, &back);
    if (rc != DR_EPROTO)
        fail_msg("accepted after '%s' -> '%s'", from, to);
    dr_buf_free(&t);
    dr_buf_free(&b);
}

static void test_ranges(void **state)
{
    (void)state;
    dr_manifest m;
    sample(&m, "k1");
    refuse_edit(&m, "\"format\": 2", "\"format\": 99");
    refuse_edit(&m, "\"format\": 2", "\"format\": 1");
    refuse_edit(&m, "\"bytes\": 1048576", "\"bytes\": -1");
    refuse_edit(&m, "\"bytes\": 12345", "\"bytes\": -5");
    refuse_edit(&m, "\"data\": \"data/save", "\"data\": \"manifests/x");
    refuse_edit(&m, "\"data\": \"data/save", "\"data\": \"data/../save");
    refuse_edit(&m, "0123456789ab.drd", "0123456789ab.drdx");
    refuse_edit(&m, "\"compression\": \"zstd\"", "\"compression\": \"lz4\"");
    refuse_edit(&m, "\"encryption\": \"aes-256-gcm\"", "\"encryption\": \"rot13\"");
    refuse_edit(&m, "\"key_id\": \"k1\"", "\"key_id\": \"\"");
    refuse_edit(&m, "\"key_id\": \"k1\"", "\"key_id\": \"../k\"");
    refuse_edit(&m, "\"key_count\": 999", "\"key_count\": -2");
    refuse_edit(&m, "\"compact_revision\": 17", "\"compact_revision\": -2");
    refuse_edit(&m, "\"created_ms\": 1795327501123", "\"created_ms\": 1795327509999");
    refuse_edit(&m, "\"sha256\": \"aaaa", "\"sha256\": \"AAAA");
    refuse_edit(&m, "\"events\": 0", "\"events\": 3");
    refuse_edit(&m, ",\n  \"key_count\"", ", \"hashkv\": 4294967296,\n  \"key_count\"");
    sample(&m, NULL);
    refuse_edit(&m, "\"key_id\": \"\"", "\"key_id\": \"k1\"");
}

static void test_inner(void **state)
{
    (void)state;
    dr_manifest o, in;
    sample(&o, "k1");
    in = o;
    /* stored.* and the mac are what the inner manifest cannot know */
    in.stored_bytes = 1;
    memset(in.stored_sha256, 'c', 64);
    assert_int_equal(dr_manifest_compare_inner(&o, &in), 0);
#define DIFFERS(field_stmt)                                                                        \
    do {                                                                                           \
        in = o;                                                                                    \
        field_stmt;                                                                                \
        assert_int_equal(dr_manifest_compare_inner(&o, &in), DR_ECHECKSUM);                        \
    } while (0)
    DIFFERS(in.format = 1);
    DIFFERS(in.id[20] = '9');
    DIFFERS(in.kind = DR_KIND_INCR);
    DIFFERS(in.rev_start = 1);
    DIFFERS(in.rev_end = 1);
    DIFFERS(in.created_ms++);
    DIFFERS(in.data[10] = 'x');
    DIFFERS(in.cluster_id = 9);
    DIFFERS(in.compact_revision = 1);
    DIFFERS(in.plain_bytes++);
    DIFFERS(in.plain_sha256[0] = 'f');
    DIFFERS(snprintf(in.compression, sizeof in.compression, "none"));
    DIFFERS(snprintf(in.encryption, sizeof in.encryption, "none"));
    DIFFERS(snprintf(in.key_id, sizeof in.key_id, "k2"));
    DIFFERS(in.key_count = 1);
    DIFFERS(in.has_hashkv = 1);
    DIFFERS(in.events = 1);
    DIFFERS(snprintf(in.labels, sizeof in.labels, "a=b"));
#undef DIFFERS
}

/* Key counts per resource: the cap and the other bucket, the round trip through a manifest, the
 * range checks, the sealed copy compared by hash, and manifests written before them. */
static void test_key_counts(void **state)
{
    (void)state;
    dr_key_counts kc = {0}, back_kc;
    dr_manifest m, back, in;
    char name[32];
    dr_buf b = {0};
    /* names: lowercase, digits, '.', '-', one '/' inside; anything else is other */
    assert_true(dr_key_counts_name_ok("pods", 4));
    assert_true(dr_key_counts_name_ok("apiregistration.k8s.io/apiservices", 34));
    assert_false(dr_key_counts_name_ok("Pods", 4));
    assert_false(dr_key_counts_name_ok("a/b/c", 5));
    assert_false(dr_key_counts_name_ok("pods/", 5));
    assert_false(dr_key_counts_name_ok("", 0));
    assert_false(dr_key_counts_name_ok("a b", 3));
    assert_false(dr_key_counts_name_ok("a\"b", 3));
    assert_int_equal(dr_key_counts_add(&kc, "secrets", 7, 87), 0);
    assert_int_equal(dr_key_counts_add(&kc, "pods", 4, 1200), 0);
    assert_int_equal(dr_key_counts_add(&kc, "pods", 4, 3), 0);
    assert_int_equal(dr_key_counts_add(&kc, "Bad", 3, 5), 0);
    assert_int_equal(kc.n, 2);
    assert_string_equal(kc.v[0].name, "pods");
    assert_int_equal(dr_key_counts_get(&kc, "pods"), 1203);
    assert_int_equal(kc.other, 5);
    /* at most DR_KEY_COUNTS_MAX buckets: the rest goes to other */
    for (int i = 0; i < DR_KEY_COUNTS_MAX + 10; i++) {
        int n = snprintf(name, sizeof name, "r%03d", i);
        assert_int_equal(dr_key_counts_add(&kc, name, (size_t)n, 1), 0);
    }
    assert_int_equal(kc.n, DR_KEY_COUNTS_MAX);
    assert_int_equal(kc.other, 5 + 12);
    for (size_t i = 1; i < kc.n; i++)
        assert_true(strcmp(kc.v[i - 1].name, kc.v[i].name) < 0);
    /* a manifest with them: written, read back, compared by hash */
    sample(&m, NULL);
    m.key_count = dr_key_counts_total(&kc);
    assert_int_equal(dr_manifest_set_key_counts(&m, &kc), 0);
    assert_int_equal(dr_manifest_to_json(&m, &b), 0);
    assert_int_equal(dr_manifest_from_json(b.data, b.len, &back), 0);
    assert_true(back.has_key_counts);
    assert_null(back.key_counts);
    assert_memory_equal(back.key_counts_sha256, m.key_counts_sha256, 32);
    assert_int_equal(dr_key_counts_from_manifest(b.data, b.len, &back_kc), 0);
    assert_true(dr_key_counts_equal(&kc, &back_kc));
    in = back;
    in.key_counts_sha256[3] ^= 1;
    assert_int_equal(dr_manifest_compare_inner(&back, &in), DR_ECHECKSUM);
    in = back;
    in.has_key_counts = 0;
    assert_int_equal(dr_manifest_compare_inner(&back, &in), DR_ECHECKSUM);
    back_kc.v[0].n++;
    assert_false(dr_key_counts_equal(&kc, &back_kc));
    dr_key_counts_free(&back_kc);
    dr_buf_free(&b);
    /* range checks: counts that do not add up, negative, a bad name, two alike, too many */
    dr_key_counts small = {0};
    dr_key_counts_add(&small, "pods", 4, 990);
    small.other = 9;
    sample(&m, NULL);
    assert_int_equal(dr_manifest_set_key_counts(&m, &small), 0);
    refuse_edit(&m, "\"pods\": 990", "\"pods\": 991");
    refuse_edit(&m, "\"other\": 9", "\"other\": -1");
    refuse_edit(&m, "\"pods\": 990", "\"Pods\": 990");
    refuse_edit(&m, "\"pods\": 990", "\"pods\": \"990\"");
    refuse_edit(&m, "\"pods\": 990", "\"pods\": 9223372036854775807, \"x\": 9223372036854775807");
    refuse_edit(&m, "\"pods\": 990", "\"pods\": 495, \"pods\": 495");
    refuse_edit(&m, "\"resources\": {", "\"resources\": 3, \"x\": {");
    refuse_edit(&m, "\"kind\": \"full\"", "\"kind\": \"incr\"");
    dr_buf big = {0};
    dr_buf_printf(&big, "\"resources\": {");
    for (int i = 0; i <= DR_KEY_COUNTS_MAX; i++)
        dr_buf_printf(&big, "\"r%03d\": 0, ", i);
    refuse_edit(&m, "\"resources\": {", big.data);
    dr_buf_free(&big);
    /* a manifest without them (written before they existed) still reads */
    sample(&m, NULL);
    assert_int_equal(dr_manifest_to_json(&m, &b), 0);
    assert_null(strstr(b.data, "key_counts"));
    assert_int_equal(dr_manifest_from_json(b.data, b.len, &back), 0);
    assert_false(back.has_key_counts);
    assert_int_equal(dr_key_counts_from_manifest(b.data, b.len, &back_kc), DR_ENOTFOUND);
    dr_buf_free(&b);
    dr_key_counts_free(&small);
    dr_key_counts_free(&kc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mac),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_inner),
        cmocka_unit_test(test_key_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
