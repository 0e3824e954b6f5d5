/* Unit tests for drd/core: error catalog, parsing, backoff, buffers, durable writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_error_catalog(void **state)
{
    (void)state;
    assert_string_equal(dr_error_name(DR_ECOMPACTED), "DR_ECOMPACTED");
    assert_int_equal(dr_error_exit_status(DR_EDIVERGED), 14);
    assert_int_equal(dr_error_exit_status(0), 0);
    assert_string_equal(dr_error_name(-999), "unknown");
    int rc = dr_error_set(DR_ENOTFOUND, "cannot find '%s'", "x");
    assert_int_equal(rc, DR_ENOTFOUND);
    assert_string_equal(dr_error_msg(), "cannot find 'x'");
    dr_error_wrap(DR_ENOTFOUND, "loading %d", 3);
    assert_string_equal(dr_error_msg(), "loading 3: cannot find 'x'");
    assert_int_equal(dr_error_code(), DR_ENOTFOUND);
    dr_error_clear();
    assert_string_equal(dr_error_msg(), "");
}

static void test_error_wrap_long(void **state)
{
    (void)state;
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    dr_error_set(DR_EIO, "%s", big);
    dr_error_wrap(DR_EIO, "ctx");
    assert_true(strlen(dr_error_msg()) < 1024);
    assert_memory_equal(dr_error_msg(), "ctx: aaa", 8);
}

static void test_parse(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(dr_parse_i64("128", "n", &v), 0);
    assert_int_equal(v, 128);
    assert_int_equal(dr_parse_i64("-1", "n", &v), DR_EUSAGE);
    assert_int_equal(dr_parse_i64("12x", "n", &v), DR_EUSAGE);
    assert_int_equal(dr_parse_i64("", "n", &v), DR_EUSAGE);
    assert_int_equal(dr_parse_duration_ms("10s", "d", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(dr_parse_duration_ms("250ms", "d", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(dr_parse_duration_ms("2m", "d", &v), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(dr_parse_duration_ms("3", "d", &v), 0);
    assert_int_equal(v, 3000);
    assert_int_equal(dr_parse_duration_ms("5y", "d", &v), DR_EUSAGE);
    assert_non_null(strstr(dr_error_msg(), "unknown duration unit"));
    dr_log_level l;
    assert_int_equal(dr_log_parse_level("warn", &l), 0);
    assert_int_equal(l, DR_LOG_WARN);
    assert_int_equal(dr_log_parse_level("loud", &l), DR_EUSAGE);
}

static void test_backoff(void **state)
{
    (void)state;
    dr_backoff b;
    dr_backoff_init(&b, 100, 1000);
    int64_t lim = 100;
    for (int i = 0; i < 20; i++) {
        int64_t d = dr_backoff_next(&b);
        assert_true(d >= lim / 2);
        assert_true(d <= lim);
        if (lim < 1000)
            lim = lim * 2 > 1000 ? 1000 : lim * 2;
    }
    dr_backoff_reset(&b);
    assert_true(dr_backoff_next(&b) <= 100);
}

static void test_buf_json(void **state)
{
    (void)state;
    dr_buf b = {0};
    assert_int_equal(dr_buf_json_str(&b, "a\"b\\c\n\x01", 7), 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    b.len = 0;
    assert_int_equal(dr_buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "42-x");
    dr_buf_free(&b);
    dr_buf_free(NULL);
}

static void test_atomic_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/drd-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/state", dir);
    assert_int_equal(dr_fs_write_atomic(path, "one", 3, 0600), 0);
    assert_int_equal(dr_fs_write_atomic(path, "second", 6, 0600), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(dr_fs_read_all(path, 1024, &data, &len), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(data, "second", 6);
    free(data);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* bounded read */
    assert_int_equal(dr_fs_read_all(path, 3, &data, &len), DR_EIO);
    /* missing file and unwritable dir give clear errors, no temp left behind */
    assert_int_equal(dr_fs_read_all("/nonexistent/x", 10, &data, &len), DR_ENOTFOUND);
    assert_int_equal(dr_fs_write_atomic("/nonexistent/dir/x", "a", 1, 0600), DR_EIO);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_catalog), cmocka_unit_test(test_error_wrap_long),
        cmocka_unit_test(test_parse),         cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_buf_json),      cmocka_unit_test(test_atomic_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
