/* Unit tests for the pure logic of replicate/: option checks, key mapping, prefix ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "replicate/repl_int.h"

#include <string.h>

static int map(const dr_repl_opts *o, const char *k, dr_buf *out)
{
    return repl_map_key(o, (const uint8_t *)k, strlen(k), out);
}

static void test_map_key(void **state)
{
    (void)state;
    const char *pfx[] = {"/registry/configmaps/"};
    const char *exc[] = {"/registry/configmaps/kube-system/"};
    dr_repl_opts o = {.mode = DR_REPL_FILTERED,
                      .name = "t",
                      .prefixes = pfx,
                      .n_prefixes = 1,
                      .excludes = exc,
                      .n_excludes = 1,
                      .dest_prefix = "/copy/"};
    dr_buf b = {0};
    assert_int_equal(map(&o, "/registry/configmaps/default/a", &b), 1);
    assert_int_equal(b.len, strlen("/copy/default/a"));
    assert_memory_equal(b.data, "/copy/default/a", b.len);
    assert_int_equal(map(&o, "/registry/configmaps/kube-system/a", &b), 0);
    assert_int_equal(map(&o, "/registry/secrets/a", &b), 0);
    /* our own cursors are never replicated */
    o.n_prefixes = 0;
    o.dest_prefix = NULL;
    assert_int_equal(map(&o, "/drd/replicate/x/revision", &b), 0);
    assert_int_equal(map(&o, "/a", &b), 1);
    dr_buf_free(&b);
}

static void test_check_opts(void **state)
{
    (void)state;
    const char *two[] = {"/a/", "/b/"};
    const char *nested[] = {"/a/", "/a/b/"};
    dr_repl_opts o = {.mode = DR_REPL_FILTERED, .name = "t", .prefixes = two, .n_prefixes = 2};
    assert_int_equal(dr_repl_check_opts(&o), 0);
    o.dest_prefix = "/c/";
    assert_int_equal(dr_repl_check_opts(&o), DR_EUSAGE);
    o.dest_prefix = NULL;
    o.prefixes = nested;
    assert_int_equal(dr_repl_check_opts(&o), DR_EUSAGE);
    o.n_prefixes = 1;
    o.mode = DR_REPL_EXACT;
    assert_int_equal(dr_repl_check_opts(&o), DR_EUSAGE);
    o.n_prefixes = 0;
    assert_int_equal(dr_repl_check_opts(&o), 0);
    o.name = "a/b";
    assert_int_equal(dr_repl_check_opts(&o), DR_EUSAGE);
    o.name = "t";
    o.source.endpoints = o.target.endpoints = "http://127.0.0.1:2379";
    assert_int_equal(dr_repl_check_opts(&o), DR_EUSAGE);
    o.target.endpoints = "http://127.0.0.1:2380";
    /* ranges a library caller could get wrong (the CLI checks its flags itself) */
    o.window = -1;
    assert_int_equal(dr_repl_check_opts(&o), DR_EUSAGE);
    o.window = 1025;
    assert_int_equal(dr_repl_check_opts(&o), DR_EUSAGE);
    o.window = 0;
    o.max_txn_ops = 1;
    assert_int_equal(dr_repl_check_opts(&o), DR_EUSAGE);
    o.max_txn_ops = 0;
    /* 0 and NULL are the defaults */
    o.name = NULL;
    dr_repl_opts r;
    assert_int_equal(repl_opts_resolve(&o, &r), 0);
    assert_string_equal(r.name, "default");
    assert_int_equal(r.window, 8);
    assert_int_equal(r.max_txn_ops, 128);
    /* dr_repl_run refuses bad options before it connects anywhere */
    o.window = -5;
    assert_int_equal(dr_repl_run(&o, NULL), DR_EUSAGE);
}

/* Two threads raise the same stat: it ends at the highest value, never lower. */
static void *raise_to(void *arg)
{
    dr_repl_stats *s = arg;
    for (int64_t v = 1; v <= 100000; v++)
        repl_stat_max(&s->source_revision, v);
    return NULL;
}

static void test_stat_max(void **state)
{
    (void)state;
    dr_repl_stats s = {.source_revision = 0};
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, raise_to, &s), 0);
    assert_int_equal(pthread_create(&b, NULL, raise_to, &s), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(s.source_revision, 100000);
    repl_stat_max(&s.source_revision, 5);
    assert_int_equal(s.source_revision, 100000);
}

static void test_prefix_end(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t n = 0;
    dr_etcd_prefix_end("/a/", 3, out, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "/a0", 3);
    dr_etcd_prefix_end("a\xff\xff", 3, out, &n);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'b');
    dr_etcd_prefix_end("", 0, out, &n);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 0);
}

static void test_cursor_key(void **state)
{
    (void)state;
    dr_repl_opts o = {.name = "dr-1"};
    char k[128];
    repl_cursor_key(&o, k, sizeof k);
    assert_string_equal(k, "/drd/replicate/dr-1/revision");
    assert_string_equal(dr_repl_state_name(DR_REPL_STREAMING), "streaming");
    assert_string_equal(dr_repl_state_name(99), "unknown");
}

static void test_metrics(void **state)
{
    (void)state;
    dr_repl_stats s = {
        .state = DR_REPL_STREAMING, .source_revision = 10, .applied_revision = 7, .lag_ms = 1500};
    dr_repl_stats t = {.state = DR_REPL_ALARM};
    dr_repl_metrics_job jobs[] = {{.stats = &s, .name = "x", .max_lag_ms = 30000, .ready = 1},
                                  {.stats = &t, .name = "y", .alarm = DR_EDIVERGED}};
    dr_buf b = {0};
    assert_int_equal(dr_repl_metrics(jobs, 2, &b), 0);
    assert_non_null(strstr(b.data, "drd_replicate_lag_revisions{name=\"x\"} 3\n"));
    assert_non_null(strstr(b.data, "drd_replicate_lag_seconds{name=\"x\"} 1.500\n"));
    assert_non_null(strstr(b.data, "drd_replicate_state{name=\"x\",state=\"streaming\"} 1\n"));
    assert_non_null(strstr(b.data, "drd_replicate_ready{name=\"x\"} 1\n"));
    assert_non_null(strstr(b.data, "drd_replicate_max_lag_seconds{name=\"x\"} 30.000\n"));
    assert_null(strstr(b.data, "drd_replicate_max_lag_seconds{name=\"y\"}"));
    assert_non_null(strstr(b.data, "drd_replicate_alarm{name=\"y\",code=\"DR_EDIVERGED\"} 1\n"));
    assert_non_null(strstr(b.data, "drd_replicate_up{name=\"y\"} 0\n"));
    /* each family once, its series together: HELP, TYPE, then both jobs' lines */
    const char *help = strstr(b.data, "# HELP drd_replicate_applied_revision ");
    assert_non_null(help);
    assert_null(strstr(help + 1, "# HELP drd_replicate_applied_revision "));
    const char *x = strstr(help, "drd_replicate_applied_revision{name=\"x\"}");
    const char *y = strstr(help, "drd_replicate_applied_revision{name=\"y\"}");
    const char *next = strstr(help, "# HELP drd_replicate_lag_revisions");
    assert_true(x && y && next && x < next && y < next);
    dr_buf_free(&b);
}

/* Which etcd versions order a requested progress notification after the events (etcd#15220). */
static void test_progress_trusted(void **state)
{
    (void)state;
    assert_int_equal(repl_progress_trusted("3.4.23"), 0); /* what runs here: not trusted */
    assert_int_equal(repl_progress_trusted("3.4.30"), 0);
    assert_int_equal(repl_progress_trusted("3.4.31"), 1);
    assert_int_equal(repl_progress_trusted("3.5.12"), 0);
    assert_int_equal(repl_progress_trusted("3.5.13"), 1);
    assert_int_equal(repl_progress_trusted("3.5.21"), 1);
    assert_int_equal(repl_progress_trusted("3.6.0"), 1);
    assert_int_equal(repl_progress_trusted("3.3.27"), 0);
    assert_int_equal(repl_progress_trusted("4.0.0"), 1);
    assert_int_equal(repl_progress_trusted(""), 0);
    assert_int_equal(repl_progress_trusted(NULL), 0);
    assert_int_equal(repl_progress_trusted("3.5"), 0);
    assert_int_equal(repl_progress_trusted("v3.6.1"), 0);
}

/* When revisions were first known to exist: a revision takes the time of the first mark at or
 * above it; close marks are one (the earlier time); a full array halves its resolution, and a
 * revision's time may then move earlier (lag overstated), never later. */
static void test_marks(void **state)
{
    (void)state;
    static repl_marks k;
    memset(&k, 0, sizeof k);
    assert_int_equal(repl_marks_first_seen(&k, 5, 1234), 1234); /* nothing known: now */
    repl_marks_note(&k, 100, 1000);
    repl_marks_note(&k, 90, 1500); /* not newer: nothing */
    repl_marks_note(&k, 200, 2000);
    repl_marks_note(&k, 250, 2000 + REPL_MARK_MS - 1); /* close to the last: joins it */
    repl_marks_note(&k, 300, 3000);
    assert_int_equal(repl_marks_first_seen(&k, 301, 9000), 9000); /* newer than any mark */
    assert_int_equal(repl_marks_first_seen(&k, 50, 9000), 1000);
    assert_int_equal(repl_marks_first_seen(&k, 100, 9000), 1000);
    assert_int_equal(repl_marks_first_seen(&k, 101, 9000), 2000);
    assert_int_equal(repl_marks_first_seen(&k, 250, 9000), 2000);
    assert_int_equal(repl_marks_first_seen(&k, 251, 9000), 3000);
    assert_int_equal(repl_marks_first_seen(&k, 120, 9000), 2000); /* a new session starts lower */
    repl_marks_forget(&k, 250);                                   /* applied up to 250 */
    assert_int_equal(repl_marks_first_seen(&k, 251, 9000), 3000);
    assert_int_equal(repl_marks_first_seen(&k, 120, 9000), 3000); /* forgotten: never asked */
    /* a long stall: more marks than fit, each revision's time stays at or before its own */
    memset(&k, 0, sizeof k);
    enum { N = 3 * REPL_MARKS };
    for (int64_t i = 1; i <= N; i++)
        repl_marks_note(&k, 10 * i, 1000 * i);
    assert_true(k.n - k.lo <= REPL_MARKS);
    int64_t prev = 0;
    for (int64_t i = 1; i <= N; i++) {
        int64_t t = repl_marks_first_seen(&k, 10 * i, 0);
        assert_true(t <= 1000 * i && t >= prev && t > 0);
        /* four merges (at 513, 769, 1025 and 1281 marks) make the oldest 16 marks one: the
         * error stays within 1% of the stall's length */
        assert_true(1000 * i - t < 16 * 1000);
        prev = t;
    }
    assert_int_equal(repl_marks_first_seen(&k, 10 * N + 1, 7), 7);
    /* forgotten marks make room without merging */
    memset(&k, 0, sizeof k);
    for (int64_t i = 1; i <= N; i++) {
        repl_marks_note(&k, 10 * i, 1000 * i);
        assert_int_equal(repl_marks_first_seen(&k, 10 * i - 5, 0), 1000 * i);
        repl_marks_forget(&k, 10 * i - 10 * (REPL_MARKS / 2));
    }
    for (int64_t i = N - REPL_MARKS / 2 + 1; i <= N; i++)
        assert_int_equal(repl_marks_first_seen(&k, 10 * i, 0), 1000 * i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_key),    cmocka_unit_test(test_progress_trusted),
        cmocka_unit_test(test_check_opts), cmocka_unit_test(test_stat_max),
        cmocka_unit_test(test_prefix_end), cmocka_unit_test(test_cursor_key),
        cmocka_unit_test(test_metrics),    cmocka_unit_test(test_marks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
