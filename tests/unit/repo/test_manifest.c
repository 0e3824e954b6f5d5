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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mac),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_inner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
