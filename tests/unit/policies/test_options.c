/*
 * The one value parser of the option table and the command-line parser built on it
 * (policies/options.c): types, ranges, messages, and argv handling (unknown flags, missing
 * values, flags of other commands, positionals, one flag filling two records).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "drd/core/core.h"
#include "policies/policies.h"

static void expect_msg(int rc, const char *want)
{
    if (rc != DR_EUSAGE || strcmp(dr_error_msg(), want) != 0)
        fail_msg("rc %d, message '%s'\nwanted '%s'", rc, dr_error_msg(), want);
}

static int set(dr_opt_scope scope, const char *key, const char *text, void *rec)
{
    const dr_option *o = dr_option_find(scope, key);
    assert_non_null(o);
    return dr_option_parse(o, text, key, rec);
}

static void test_values(void **state)
{
    (void)state;
    dr_etcd_opts e;
    dr_repo_opts r;
    dr_conf_job j;
    dr_retention k;
    memset(&e, 0, sizeof e);
    memset(&r, 0, sizeof r);
    memset(&j, 0, sizeof j);
    memset(&k, 0, sizeof k);

    /* durations */
    assert_int_equal(set(DR_SCOPE_CLUSTER, "timeout", "250ms", &e), 0);
    assert_int_equal(e.timeout_ms, 250);
    assert_int_equal(set(DR_SCOPE_CLUSTER, "timeout", "1.5s", &e), 0);
    assert_int_equal(e.timeout_ms, 1500);
    assert_int_equal(set(DR_SCOPE_REPLICATE, "max_lag", "5m", &j), 0);
    assert_int_equal(j.max_lag_ms, 300000);
    assert_int_equal(set(DR_SCOPE_REPLICATE, "max_lag", "0", &j), 0); /* 0: not checked */
    assert_int_equal(j.max_lag_ms, 0);
    expect_msg(set(DR_SCOPE_CLUSTER, "timeout", "soon", &e),
               "timeout: expected a duration such as 10s, 5m or 1h, found 'soon'");
    expect_msg(set(DR_SCOPE_CLUSTER, "timeout", "-1s", &e),
               "timeout: expected a duration such as 10s, 5m or 1h, found '-1s'");
    expect_msg(set(DR_SCOPE_CLUSTER, "timeout", "0", &e), "timeout: 0s is out of range 1ms..1h");
    expect_msg(set(DR_SCOPE_SNAPSHOT, "segments", "50ms", &j),
               "segments: 50ms is out of range 100ms..24h");
    expect_msg(set(DR_SCOPE_REPLICATE, "max_lag", "25h", &j),
               "max_lag: 25h is out of range 0s..24h");
    assert_int_equal(e.timeout_ms, 1500); /* a refused value changes nothing */

    /* integers and their ranges */
    assert_int_equal(set(DR_SCOPE_REPLICATE, "window", "1024", &j), 0);
    assert_int_equal(j.window, 1024);
    expect_msg(set(DR_SCOPE_REPLICATE, "window", "0", &j), "window: 0 is out of range 1..1024");
    expect_msg(set(DR_SCOPE_REPLICATE, "window", "1025", &j),
               "window: 1025 is out of range 1..1024");
    expect_msg(set(DR_SCOPE_REPLICATE, "max_txn_ops", "lots", &j),
               "max_txn_ops: expected a whole number, found 'lots'");
    expect_msg(set(DR_SCOPE_RETENTION, "keep_last", "-1", &k),
               "keep_last: expected a whole number, found '-1'");
    expect_msg(set(DR_SCOPE_RETENTION, "daily", "99999999999999999999", &k),
               "daily: expected a whole number, found '99999999999999999999'");
    assert_int_equal(set(DR_SCOPE_RETENTION, "weekly", "4", &k), 0);
    assert_int_equal(k.keep_weekly, 4);
    assert_int_equal(set(DR_SCOPE_STORE, "s3_part_size", "16", &r), 0);
    assert_int_equal(r.store.part_size, (size_t)16 << 20);
    expect_msg(set(DR_SCOPE_STORE, "s3_part_size", "4097", &r),
               "s3_part_size: 4097 is out of range 5..4096");

    /* sizes: whole or decimal, with or without a binary unit */
    assert_int_equal(set(DR_SCOPE_CLUSTER, "max_recv_bytes", "4MiB", &e), 0);
    assert_int_equal(e.max_recv_bytes, 4 << 20);
    assert_int_equal(set(DR_SCOPE_CLUSTER, "max_recv_bytes", "1.5M", &e), 0);
    assert_int_equal(e.max_recv_bytes, 3 << 19);
    assert_int_equal(set(DR_SCOPE_CLUSTER, "max_recv_bytes", "65536", &e), 0);
    assert_int_equal(e.max_recv_bytes, 65536);
    static const char *const bad_sizes[] = {"12x", "4mb", "", "M", "0x100000", "-4MiB", "1..5M"};
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++)
        assert_int_equal(set(DR_SCOPE_CLUSTER, "max_recv_bytes", bad_sizes[i], &e), DR_EUSAGE);
    expect_msg(set(DR_SCOPE_CLUSTER, "max_recv_bytes", "1KiB", &e),
               "max_recv_bytes: 1024 is out of range 65536..2147483647");
    expect_msg(set(DR_SCOPE_CLUSTER, "max_recv_bytes", "3GiB", &e),
               "max_recv_bytes: 3221225472 is out of range 65536..2147483647");

    /* choices, booleans, strings, lists */
    assert_int_equal(set(DR_SCOPE_REPLICATE, "mode", "filtered", &j), 0);
    assert_int_equal(j.mode, 1);
    expect_msg(set(DR_SCOPE_REPLICATE, "mode", "mirror", &j),
               "mode: expected one of exact|filtered, found 'mirror'");
    expect_msg(set(DR_SCOPE_REPLICATE, "mode", "exac", &j),
               "mode: expected one of exact|filtered, found 'exac'");
    assert_int_equal(set(DR_SCOPE_SNAPSHOT, "compression", "none", &j), 0);
    assert_int_equal(j.compression, DR_COMPRESS_NONE);
    assert_int_equal(set(DR_SCOPE_STORE, "s3_insecure_http", "true", &r), 0);
    assert_int_equal(r.store.s3_insecure_http, 1);
    expect_msg(set(DR_SCOPE_STORE, "s3_insecure_http", "yes", &r),
               "s3_insecure_http: expected true or false, found 'yes'");
    expect_msg(set(DR_SCOPE_STORE, "key_file", "", &r),
               "key_file: expected a file name, found nothing");
    assert_int_equal(set(DR_SCOPE_REPLICATE, "prefixes", "/a/", &j), 0);
    assert_int_equal(set(DR_SCOPE_REPLICATE, "prefixes", "/b/", &j), 0);
    assert_int_equal(j.prefixes.n, 2);
    assert_string_equal(j.prefixes.v[1], "/b/");
    free(j.prefixes.v);
    /* a schedule names itself in its message */
    assert_int_equal(set(DR_SCOPE_DRILL, "schedule", "@every 30s", &j), 0);
    assert_int_equal(j.schedule.every_ms, 30000);
    expect_msg(set(DR_SCOPE_DRILL, "schedule", "* 25 * * *", &j),
               "schedule: schedule '* 25 * * *': hour field '25': 25 is out of range 0-23");
}

/* A command with source and target sides, two job rows, and flags of its own. */
typedef struct cmd {
    dr_etcd_opts src, dst;
    dr_repo_opts repo;
    dr_conf_job job;
    int json, calls;
    const char *out;
} cmd;

static int own(void *ctx, const dr_flag *f, const char *v)
{
    cmd *c = ctx;
    c->calls++;
    if (f->id == 1)
        c->json = 1;
    else
        c->out = v;
    return 0;
}

static int run(cmd *c, int with_out, const char **pos, size_t max_pos, size_t *n_pos, ...)
{
    char *argv[32] = {"test cmd"};
    int argc = 1;
    va_list ap;
    va_start(ap, n_pos);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    dr_flag f[16];
    size_t n = 0;
    static const char *const keys[] = {"endpoints", "cacert", "timeout"};
    memset(c, 0, sizeof *c);
    for (int side = 0; side < 2; side++)
        for (size_t k = 0; k < 3; k++)
            assert_int_equal(dr_flag_row(&f[n++], DR_SCOPE_CLUSTER, keys[k],
                                         side ? "target" : "source", side ? &c->dst : &c->src, 1),
                             0);
    assert_int_equal(dr_flag_row(&f[n++], DR_SCOPE_REPLICATE, "window", NULL, &c->job, 1), 0);
    assert_int_equal(dr_flag_row(&f[n++], DR_SCOPE_STORE, "no_encryption", NULL, &c->repo, 1), 0);
    memset(&f[n], 0, 2 * sizeof f[0]);
    strcpy(f[n].name, "json");
    f[n].id = 1;
    f[n++].allowed = 1;
    strcpy(f[n].name, "out");
    f[n].id = 2;
    f[n].has_value = 1;
    f[n++].allowed = with_out;
    size_t dummy = 0;
    return dr_flags_parse(argc, argv, f, n, own, c, pos, max_pos, n_pos ? n_pos : &dummy);
}

static void test_flags(void **state)
{
    (void)state;
    cmd c;
    const char *pos[2] = {0};
    size_t n_pos = 0;

    /* names from the rows: a side's prefix, or the same for every side */
    assert_int_equal(run(&c, 1, pos, 2, &n_pos, "--source", "http://a:1", "--target-cacert",
                         "ca.pem", "--timeout=2s", "--window", "4", "--json", "ID", "--out", "f",
                         "--", "--not-a-flag", NULL),
                     0);
    assert_string_equal(c.src.endpoints, "http://a:1");
    assert_null(c.dst.endpoints);
    assert_string_equal(c.dst.cacert, "ca.pem");
    assert_int_equal(c.src.timeout_ms, 2000); /* one --timeout, both records */
    assert_int_equal(c.dst.timeout_ms, 2000);
    assert_int_equal(c.job.window, 4);
    assert_int_equal(c.json, 1);
    assert_string_equal(c.out, "f");
    assert_int_equal(c.calls, 2);
    assert_int_equal(n_pos, 2);
    assert_string_equal(pos[0], "ID");
    assert_string_equal(pos[1], "--not-a-flag");

    /* a value that looks like a flag is still the value (as getopt takes it) */
    assert_int_equal(run(&c, 1, NULL, 0, NULL, "--out", "--json", NULL), 0);
    assert_string_equal(c.out, "--json");
    assert_int_equal(c.json, 0);

    expect_msg(run(&c, 1, NULL, 0, NULL, "--sourc", "x", NULL),
               "drd test cmd: unknown flag '--sourc' (known: --source, --source-cacert, "
               "--timeout, --target, --target-cacert, --window, --no-encryption, --json, --out)");
    expect_msg(run(&c, 1, NULL, 0, NULL, "--bogus=1", NULL),
               "drd test cmd: unknown flag '--bogus' (known: --source, --source-cacert, "
               "--timeout, --target, --target-cacert, --window, --no-encryption, --json, --out)");
    assert_int_equal(run(&c, 1, NULL, 0, NULL, "-x", NULL), DR_EUSAGE);
    assert_non_null(strstr(dr_error_msg(), "unknown flag '-x'"));
    expect_msg(run(&c, 0, NULL, 0, NULL, "--out", "f", NULL),
               "drd test cmd: flag '--out' does not apply here (see drd test cmd --help)");
    expect_msg(run(&c, 1, NULL, 0, NULL, "--window", NULL),
               "drd test cmd: flag '--window' needs a value");
    expect_msg(run(&c, 1, NULL, 0, NULL, "--json=1", NULL),
               "drd test cmd: flag '--json' takes no value");
    expect_msg(run(&c, 1, NULL, 0, NULL, "--no-encryption=true", NULL),
               "drd test cmd: flag '--no-encryption' takes no value");
    expect_msg(run(&c, 1, NULL, 0, NULL, "--window", "0", NULL),
               "drd test cmd: --window: 0 is out of range 1..1024");
    expect_msg(run(&c, 1, NULL, 0, NULL, "--timeout", "1d", NULL),
               "drd test cmd: --timeout: expected a duration such as 10s, 5m or 1h, found '1d'");
    expect_msg(run(&c, 1, pos, 1, &n_pos, "a", "b", NULL), "drd test cmd: unexpected argument 'b'");
    expect_msg(run(&c, 1, NULL, 0, NULL, "stray", NULL),
               "drd test cmd: unexpected argument 'stray'");
    /* a bool row is set without a value */
    assert_int_equal(run(&c, 1, NULL, 0, NULL, "--no-encryption", NULL), 0);
    assert_int_equal(c.repo.no_encryption, 1);
}

/* Every row with a flag gives a usable flag on every side, and a row's flag never collides with
 * another row's in a command that takes both scopes (store commands take cluster, store,
 * snapshot and retention rows together). */
static void test_rows(void **state)
{
    (void)state;
    static const char *const sides[] = {"etcd", "source", "target"};
    dr_flag f[256];
    size_t n = 0;
    char rec[4096]; /* larger than any scope's record */
    for (const dr_option *o = dr_options; o->key; o++) {
        if (!o->flag)
            continue;
        int cluster = o->scope == DR_SCOPE_CLUSTER;
        for (size_t s = 0; s < (cluster ? 3u : 1u); s++) {
            assert_true(n < sizeof f / sizeof f[0]);
            assert_int_equal(dr_flag_row(&f[n], o->scope, o->key, sides[s], rec, 1), 0);
            assert_true(f[n].name[0] && f[n].name[0] != '-');
            if (o->scope == DR_SCOPE_REPLICATE || o->scope == DR_SCOPE_TOP ||
                o->scope == DR_SCOPE_VOLUME) {
                n++;
                continue; /* replicate commands: a flag set of their own, checked below; volume
                           * push|serve: cmd_volume.c's (unit.flags_docs, run_config) */
            }
            for (size_t k = 0; k < n; k++)
                if (strcmp(f[k].name, f[n].name) == 0 &&
                    !(o->flag[0] == '-' || !strcmp(o->key, "timeout")))
                    fail_msg("flag --%s from two rows", f[n].name);
            n++;
        }
    }
    assert_int_equal(dr_flag_row(&f[0], DR_SCOPE_SNAPSHOT, "schedule", NULL, rec, 1), DR_ENOTFOUND);
    assert_int_equal(dr_flag_row(&f[0], DR_SCOPE_STORE, "nope", NULL, rec, 1), DR_ENOTFOUND);
    assert_int_equal(dr_flag_row(&f[0], DR_SCOPE_CLUSTER, "endpoints", "source", rec, 1), 0);
    assert_string_equal(f[0].name, "source");
    assert_int_equal(dr_flag_row(&f[0], DR_SCOPE_CLUSTER, "max_recv_bytes", "target", rec, 1), 0);
    assert_string_equal(f[0].name, "etcd-max-recv-bytes");
    assert_int_equal(dr_flag_row(&f[0], DR_SCOPE_STORE, "key_file", NULL, rec, 1), 0);
    assert_string_equal(f[0].name, "key-file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
