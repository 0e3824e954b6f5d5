/* Unit tests for drd/core: error catalog, parsing, backoff, buffers, durable writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
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

/* A message built from the current message (the pattern of "keep the first error" cleanups):
 * the old text appears once, where the format puts it. */
static void test_error_set_from_own_message(void **state)
{
    (void)state;
    dr_error_set(DR_ECOMPACTED, "revision 5 has been compacted");
    dr_error_set(DR_ECOMPACTED, "the source compacted past %d (%s); reseed", 7, dr_error_msg());
    assert_string_equal(dr_error_msg(),
                        "the source compacted past 7 (revision 5 has been compacted); reseed");
    dr_error_set(DR_EIO, "%s", dr_error_msg());
    assert_string_equal(dr_error_msg(),
                        "the source compacted past 7 (revision 5 has been compacted); reseed");
    dr_error_clear();
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
    /* formatted as a config spells it, and parsed back to the same value */
    static const struct {
        int64_t ms;
        const char *text;
    } durations[] = {{5000, "5s"},   {250, "250ms"},   {900000, "15m"}, {7200000, "2h"},
                     {90000, "90s"}, {1500, "1500ms"}, {0, "0ms"},      {86400000, "24h"}};
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        char buf[32];
        assert_string_equal(dr_format_duration_ms(durations[i].ms, buf, sizeof buf),
                            durations[i].text);
        assert_int_equal(dr_parse_duration_ms(buf, "d", &v), 0);
        assert_int_equal(v, durations[i].ms);
    }
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
    /* a symlink planted at the temp name is never written through (O_EXCL|O_NOFOLLOW): it is
     * removed and a new file made; the same for the file sink */
    char victim[256], tmp[300];
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(dr_fs_write_atomic(victim, "keep", 4, 0600), 0);
    assert_int_equal(symlink(victim, tmp), 0);
    assert_int_equal(dr_fs_write_atomic(path, "third", 5, 0600), 0);
    assert_int_equal(symlink(victim, tmp), 0);
    dr_sink *fs = NULL;
    assert_int_equal(dr_fs_sink_new(path, 0600, 0, &fs), 0);
    assert_int_equal(dr_sink_write(fs, "fourth", 6), 0);
    assert_int_equal(dr_sink_finish(fs), 0);
    dr_sink_free(fs);
    assert_int_equal(dr_fs_read_all(victim, 1024, &data, &len), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "keep", 4);
    free(data);
    assert_int_equal(dr_fs_read_all(path, 1024, &data, &len), 0);
    assert_int_equal(len, 6);
    free(data);
    assert_int_equal(lstat(tmp, &st), -1);
    unlink(victim);
    /* missing file and unwritable dir give clear errors, no temp left behind */
    assert_int_equal(dr_fs_read_all("/nonexistent/x", 10, &data, &len), DR_ENOTFOUND);
    assert_int_equal(dr_fs_write_atomic("/nonexistent/dir/x", "a", 1, 0600), DR_EIO);
    unlink(path);
    rmdir(dir);
}

/* A sink that fails after limit bytes, to check error propagation through the async sink. */
typedef struct failing {
    dr_sink base;
    size_t n, limit;
} failing;

static int failing_write(dr_sink *b, const void *d, size_t len)
{
    failing *f = (failing *)b;
    (void)d;
    f->n += len;
    return f->n > f->limit ? dr_error_set(DR_EIO, "disk full after %zu bytes", f->limit) : 0;
}

static int failing_finish(dr_sink *b)
{
    (void)b;
    return 0;
}

static void failing_free(dr_sink *b)
{
    (void)b;
}

static const dr_sink_ops failing_ops = {failing_write, failing_finish, failing_free};

static void test_async_sink(void **state)
{
    (void)state;
    enum { TOTAL = 3 * 1000 * 1000 + 7 };
    char *data = malloc(TOTAL);
    assert_non_null(data);
    for (size_t i = 0; i < TOTAL; i++)
        data[i] = (char)(i * 2654435761u >> 13);
    /* bytes arrive complete and in order, whatever the write sizes */
    dr_sink *mem, *as;
    assert_int_equal(dr_buf_sink_new(TOTAL, &mem), 0);
    assert_int_equal(dr_async_sink_new(mem, 4096, &as), 0);
    size_t off = 0, step = 1;
    while (off < TOTAL) {
        size_t k = step < TOTAL - off ? step : TOTAL - off;
        assert_int_equal(dr_sink_write(as, data + off, k), 0);
        off += k;
        step = step * 7 % 10007 + 1;
    }
    assert_int_equal(dr_sink_finish(as), 0);
    dr_sink_free(as);
    char *got;
    size_t len;
    dr_buf_sink_take(mem, &got, &len);
    assert_int_equal(len, TOTAL);
    assert_memory_equal(got, data, TOTAL);
    free(got);
    dr_sink_free(mem);
    /* the next sink's error comes back, with its message */
    failing f = {{&failing_ops}, 0, 100000};
    assert_int_equal(dr_async_sink_new(&f.base, 4096, &as), 0);
    int rc = 0;
    for (off = 0; off < TOTAL && rc == 0; off += 1000)
        rc = dr_sink_write(as, data + off, 1000);
    if (rc == 0)
        rc = dr_sink_finish(as);
    assert_int_equal(rc, DR_EIO);
    assert_non_null(strstr(dr_error_msg(), "disk full"));
    dr_sink_free(as);
    /* freed unfinished: no hang, no leak */
    assert_int_equal(dr_buf_sink_new(TOTAL, &mem), 0);
    assert_int_equal(dr_async_sink_new(mem, 4096, &as), 0);
    assert_int_equal(dr_sink_write(as, data, 10000), 0);
    dr_sink_free(as);
    dr_sink_free(mem);
    free(data);
}

static void write_file(const char *path, const char *text, unsigned mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

/* The one check every secret file goes through: mode, owner, type; refused, never warned. */
static void test_secret_file(void **state)
{
    (void)state;
    char dir[256], path[300], link_path[300];
    assert_int_equal(dr_fs_mkdtemp("unit", dir, sizeof dir), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(dr_fs_check_private_dir(dir, "scratch dir"), 0);
    snprintf(path, sizeof path, "%s/secret", dir);
    write_file(path, "s3cr3t\n", 0600);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(dr_fs_read_secret(path, "test key", 1024, &data, &len), 0);
    assert_int_equal(len, 7);
    assert_string_equal(data, "s3cr3t\n");
    dr_secure_zero(data, len);
    assert_int_equal(data[0], 0);
    free(data);
    assert_int_equal(dr_fs_check_secret_file(path, "test key"), 0);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(dr_fs_check_secret_file(path, "test key"), 0);
    /* a symlink to a private file is fine: the file itself is checked (Kubernetes mounts) */
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    assert_int_equal(symlink(path, link_path), 0);
    assert_int_equal(dr_fs_check_secret_file(link_path, "test key"), 0);
    static const unsigned bad[] = {0644, 0640, 0604, 0660, 0606, 0620, 0602, 0610, 0601};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(path, bad[i]), 0);
        data = NULL;
        assert_int_equal(dr_fs_read_secret(path, "test key", 1024, &data, &len), DR_EAUTH);
        assert_null(data);
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", bad[i]);
        assert_non_null(strstr(dr_error_msg(), mode));
        assert_non_null(strstr(dr_error_msg(), "test key '"));
        assert_non_null(strstr(dr_error_msg(), "chmod 600"));
        assert_null(strstr(dr_error_msg(), "s3cr3t"));
        assert_int_equal(dr_fs_check_secret_file(link_path, "test key"), DR_EAUTH);
    }
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(dr_fs_read_secret(path, "test key", 3, &data, &len), DR_EIO);
    if (geteuid() == 0) {
        /* another user's file, even private: refused (they could have put their key there) */
        assert_int_equal(chown(path, 65534, 65534), 0);
        assert_int_equal(dr_fs_check_secret_file(path, "test key"), DR_EAUTH);
        assert_non_null(strstr(dr_error_msg(), "owned by uid 65534"));
        assert_int_equal(chown(path, 0, 0), 0);
        assert_int_equal(chown(dir, 65534, 65534), 0);
        assert_int_equal(dr_fs_check_private_dir(dir, "scratch dir"), DR_EAUTH);
        assert_int_equal(chown(dir, 0, 0), 0);
    }
    assert_int_equal(dr_fs_check_secret_file(dir, "test key"), DR_EIO);
    snprintf(link_path, sizeof link_path, "%s/nope", dir);
    assert_int_equal(dr_fs_check_secret_file(link_path, "test key"), DR_ENOTFOUND);
    assert_int_equal(dr_fs_check_private_dir(link_path, "scratch dir"), DR_ENOTFOUND);
    assert_int_equal(chmod(dir, 0775), 0);
    assert_int_equal(dr_fs_check_private_dir(dir, "scratch dir"), DR_EAUTH);
    assert_non_null(strstr(dr_error_msg(), "0775"));
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(dr_fs_check_private_dir(dir, "scratch dir"), 0);
    assert_int_equal(dr_fs_check_private_dir(path, "scratch dir"), DR_EIO);
    assert_int_equal(dr_fs_remove_tree(dir), 0);
}

static void test_escape(void **state)
{
    (void)state;
    dr_buf b = {0};
    assert_int_equal(dr_buf_escape(&b, "", 0), 0);
    assert_string_equal(b.data, "");
    assert_int_equal(dr_buf_escape(&b, "/registry/pods/a b", 18), 0);
    assert_string_equal(b.data, "/registry/pods/a b");
    b.len = 0;
    static const char k[] = "/k\x1b]0;pwned\x07\\\n\xc3\xa9\x7f\x00z";
    assert_int_equal(dr_buf_escape(&b, k, sizeof k - 1), 0);
    assert_string_equal(b.data, "/k\\x1b]0;pwned\\x07\\\\\\x0a\\xc3\\xa9\\x7f\\x00z");
    dr_buf_free(&b);
}

/* Rate and ETA from the counters; the text and JSON forms; idle reads nothing. */
static void test_progress(void **state)
{
    (void)state;
    dr_progress p = {0};
    dr_progress_view v;
    char text[256];
    dr_buf b = {0};
    assert_int_equal(dr_progress_read(&p, dr_mono_ms(), &v), 0);
    assert_int_equal(dr_progress_read(NULL, dr_mono_ms(), &v), 0);
    dr_progress_begin(&p, "streaming snapshot", 40u << 20);
    int64_t start = atomic_load(&p.start_ms);
    dr_progress_add(&p, 8u << 20);
    dr_progress_add(&p, 4u << 20);
    /* 12 MiB in 3 s: 4 MiB/s, 28 MiB left: 7 s */
    assert_int_equal(dr_progress_read(&p, start + 3000, &v), 1);
    assert_int_equal(v.done, 12u << 20);
    assert_int_equal(v.eta_s, 7);
    assert_true(v.rate > 4194303.0 && v.rate < 4194305.0);
    dr_progress_format(&v, text, sizeof text);
    assert_string_equal(text, "streaming snapshot: 12.0 MiB of 40.0 MiB (30%), 4.0 MiB/s, ETA 7s");
    assert_int_equal(dr_progress_json(&v, &b), 0);
    assert_string_equal(b.data, "{\"phase\":\"streaming snapshot\",\"done_bytes\":12582912,"
                                "\"total_bytes\":41943040,\"rate_bytes_per_second\":4194304,"
                                "\"eta_seconds\":7,\"elapsed_seconds\":3.0}");
    dr_buf_free(&b);
    /* no total: no ETA; a total passed by a miscount: no ETA either, and no "130%" */
    dr_progress_phase(&p, "replaying");
    dr_progress_set_total(&p, 0);
    assert_int_equal(dr_progress_read(&p, start + 200000, &v), 1);
    assert_int_equal(v.eta_s, -1);
    dr_progress_format(&v, text, sizeof text);
    assert_string_equal(text, "replaying: 12.0 MiB, 61.4 KiB/s");
    dr_progress_set_total(&p, 10u << 20);
    assert_int_equal(dr_progress_read(&p, start + 200000, &v), 1);
    assert_int_equal(v.eta_s, -1);
    dr_progress_format(&v, text, sizeof text);
    assert_string_equal(text, "replaying: 12.0 MiB of 10.0 MiB (100%), 61.4 KiB/s, ETA ?");
    assert_int_equal(dr_progress_json(&v, &b), 0);
    assert_non_null(strstr(b.data, "\"eta_seconds\":null"));
    dr_buf_free(&b);
    /* an hour and more */
    dr_progress_begin(&p, "x", 1000000);
    start = atomic_load(&p.start_ms);
    dr_progress_add(&p, 100);
    assert_int_equal(dr_progress_read(&p, start + 1000, &v), 1);
    dr_progress_format(&v, text, sizeof text);
    assert_string_equal(text, "x: 100 B of 976.6 KiB (0%), 100 B/s, ETA 2h46m");
    dr_progress_end(&p);
    assert_int_equal(dr_progress_read(&p, start + 2000, &v), 0);
    /* a reporter that is off starts nothing; one that runs stops cleanly */
    dr_progress_reporter *r = (dr_progress_reporter *)1;
    assert_int_equal(dr_progress_report_start(&p, "t", DR_PROGRESS_OFF, 0, &r), 0);
    assert_null(r);
    dr_progress_begin(&p, "x", 0);
    assert_int_equal(dr_progress_report_start(&p, "t", DR_PROGRESS_AUTO, 10, &r), 0);
    dr_sleep_ms(50);
    dr_progress_report_stop(r);
    dr_progress_report_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_catalog),
        cmocka_unit_test(test_error_wrap_long),
        cmocka_unit_test(test_error_set_from_own_message),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_buf_json),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_async_sink),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
