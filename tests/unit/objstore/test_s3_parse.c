/*
 * The parsers of what an S3 server and the credentials file hand drd (drd/lib/objstore/
 * s3_parse.c), without a server: listing pages (names relative to the prefix, the continuation
 * token, a truncated page without one refused), upload lists (markers, a truncated page without
 * markers refused), error codes, timestamps (out-of-range fields are 0, never undefined
 * behaviour: found by fuzz_s3_error), and credentials profiles. The requests around them are
 * covered by integration.objstore_s3 against a real RGW.
 */
#include "drd/lib/objstore/s3_parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define S(x) x, strlen(x)

static void test_timestamps(void **state)
{
    (void)state;
    assert_int_equal(s3_parse_iso_ms("2025-12-02T00:00:01.123Z"), 1764633601123LL);
    assert_int_equal(s3_parse_iso_ms("1970-01-01T00:00:00Z"), 0);
    static const char *bad[] = {"",
                                "yesterday",
                                "2025-12-02T00:00:4444444444444444400Z",
                                "2025-12-02T00:00:1e300Z",
                                "2025-12-02T00:00:-1e300Z",
                                "2025-12-02T00:00:nanZ",
                                "2025-13-02T00:00:00Z",
                                "2025-12-02T24:00:00Z",
                                "0025-12-02T00:00:00Z",
                                "2147483647-12-02T00:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(s3_parse_iso_ms(bad[i]), 0);
}

typedef struct seen {
    int n;
    char names[4][64];
    uint64_t sizes[4];
} seen;

static int each_obj(void *ctx, const dr_store_obj *o)
{
    seen *s = ctx;
    if (s->n < 4) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s", o->name);
        s->sizes[s->n] = o->size;
    }
    s->n++;
    return 0;
}

static void test_list(void **state)
{
    (void)state;
    seen s = {0};
    char *token = NULL;
    const char *page = "<ListBucketResult><IsTruncated>true</IsTruncated>"
                       "<NextContinuationToken>tok/1=</NextContinuationToken>"
                       "<Contents><Key>dir/a.json</Key><Size>12</Size>"
                       "<LastModified>2025-12-02T00:00:01.123Z</LastModified></Contents>"
                       "<Contents><Key>other/b</Key><Size>1</Size></Contents>"
                       "<Contents><Key>dir/</Key><Size>1</Size></Contents>"
                       "<Contents><Key>dir/c</Key><Size>x</Size></Contents></ListBucketResult>";
    assert_int_equal(s3_list_parse(S(page), "s3://b/dir/", "dir/", each_obj, &s, &token), 0);
    assert_int_equal(s.n, 2); /* outside the prefix and the prefix itself are skipped */
    assert_string_equal(s.names[0], "a.json");
    assert_int_equal(s.sizes[0], 12);
    assert_string_equal(s.names[1], "c");
    assert_string_equal(token, "tok/1=");
    free(token);
    const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
    assert_int_equal(s3_list_parse(S(last), "s3://b/", "", each_obj, &s, &token), 0);
    assert_null(token);
    const char *no_token = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
    assert_int_equal(s3_list_parse(S(no_token), "s3://b/", "", each_obj, &s, &token), DR_EPROTO);
    assert_null(token);
    assert_int_equal(s3_list_parse(S("<ListBucketResult"), "s3://b/", "", each_obj, &s, &token),
                     DR_EPROTO);
    assert_non_null(strstr(dr_error_msg(), "unreadable answer"));
}

static int each_upload(void *ctx, const char *key, const char *id, int64_t ms, const char *init)
{
    seen *s = ctx;
    (void)init;
    if (s->n < 4) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s %s", key, id);
        s->sizes[s->n] = (uint64_t)ms;
    }
    s->n++;
    return 0;
}

static void test_uploads(void **state)
{
    (void)state;
    seen s = {0};
    char *km = NULL, *um = NULL;
    const char *page = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                       "<NextKeyMarker>dir/k</NextKeyMarker><NextUploadIdMarker>2~u"
                       "</NextUploadIdMarker><Upload><Key>dir/k</Key><UploadId>2~u</UploadId>"
                       "<Initiated>2025-12-02T00:00:01.123Z</Initiated></Upload>"
                       "</ListMultipartUploadsResult>";
    assert_int_equal(s3_uploads_parse(S(page), "s3://b/", each_upload, &s, &km, &um), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.names[0], "dir/k 2~u");
    assert_int_equal(s.sizes[0], 1764633601123LL);
    assert_string_equal(km, "dir/k");
    assert_string_equal(um, "2~u");
    free(km);
    free(um);
    const char *stuck = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                        "</ListMultipartUploadsResult>";
    assert_int_equal(s3_uploads_parse(S(stuck), "s3://b/", each_upload, &s, &km, &um), DR_EPROTO);
    assert_null(km);
    assert_null(um);
}

static void test_error_body(void **state)
{
    (void)state;
    char code[16];
    const char *err = "<?xml version=\"1.0\"?><Error><Code>NoSuchKeyAndMuchMore</Code></Error>";
    assert_true(s3_xml_root_is(S(err), "Error"));
    assert_int_equal(s3_xml_text(S(err), "Code", code, sizeof code), 0);
    assert_string_equal(code, "NoSuchKeyAndMuc"); /* cut to the buffer */
    assert_false(s3_xml_root_is(S("<ListBucketResult/>"), "Error"));
    assert_int_equal(s3_xml_text(S("not xml"), "Code", code, sizeof code), -1);
    assert_string_equal(code, "");
}

static void test_credentials(void **state)
{
    (void)state;
    char text[] = "# comment\n[default]\naws_access_key_id = AKDEF \r\n"
                  "aws_secret_access_key=sdef\n[profile ci]\naws_access_key_id=AKCI\n"
                  "aws_secret_access_key = sci\naws_session_token = tok\n; x\n[other\n"
                  "aws_access_key_id = AKOTHER\n";
    char copy[sizeof text];
    char *id, *secret, *token;
    memcpy(copy, text, sizeof text);
    assert_int_equal(s3_creds_parse(copy, "ci", &id, &secret, &token), 0);
    assert_string_equal(id, "AKCI");
    assert_string_equal(secret, "sci");
    assert_string_equal(token, "tok");
    s3_wipe_free(id);
    s3_wipe_free(secret);
    s3_wipe_free(token);
    memcpy(copy, text, sizeof text);
    assert_int_equal(s3_creds_parse(copy, "default", &id, &secret, &token), 0);
    assert_string_equal(id, "AKDEF");
    assert_string_equal(secret, "sdef");
    assert_null(token);
    s3_wipe_free(id);
    s3_wipe_free(secret);
    memcpy(copy, text, sizeof text);
    assert_int_equal(s3_creds_parse(copy, "nobody", &id, &secret, &token), 0);
    assert_null(id);
    assert_null(secret);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamps),  cmocka_unit_test(test_list),
        cmocka_unit_test(test_uploads),     cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
