/* Unit tests for policies/config.c (the daemon's config model) on YAML parsed by drd/lib/yaml:
 * the example config, defaults, the option table's consistency, and one bad config per
 * rule with its "file:line:column: message". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/core/core.h"
#include "drd/lib/yaml/yaml.h"
#include "policies/policies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char good[] =
    "listen: 127.0.0.1:9100             # /healthz /readyz /metrics /status\n"
    "state_dir: /var/lib/drd\n"
    "clusters:\n"
    "  primary: { endpoints: [http://127.0.0.1:2379, http://127.0.0.2:2379], cacert: ca.pem,\n"
    "             cert: c.pem, key: k.pem }\n"
    "  standby: { endpoints: http://127.0.0.1:2479, timeout: 5s, max_recv_bytes: 4MiB }\n"
    "stores:\n"
    "  main: { url: s3://bucket/prefix, s3_endpoint: 'h:9000', s3_insecure_http: false,\n"
    "          key_file: keys, s3_part_size: 16 }\n"
    "replicate:\n"
    "  - { name: global, mode: exact, source: primary, target: standby, max_lag: 30s }\n"
    "  - name: apps\n"
    "    mode: filtered\n"
    "    source: primary\n"
    "    target: standby\n"
    "    prefixes: [/registry/apps/]\n"
    "    dest_prefix: /copy/\n"
    "snapshots:\n"
    "  - { name: primary, cluster: primary, store: main, schedule: \"*/15 * * * *\",\n"
    "      segments: 10s, retention: { keep_last: 4, hourly: 24, daily: 7, weekly: 4,\n"
    "      monthly: 6 } }\n"
    "drills:\n"
    "  - { name: nightly, store: main, schedule: \"CRON_TZ=Europe/Berlin 0 3 * * *\" }\n";

static int load(const char *text, dr_conf **c)
{
    dr_yaml_doc *d = NULL;
    *c = NULL;
    dr_error_clear();
    int rc = dr_yaml_parse("t.yaml", text, strlen(text), &d);
    return rc < 0 ? rc : dr_conf_from_yaml(d, c);
}

static void test_good(void **state)
{
    (void)state;
    dr_conf *c;
    if (load(good, &c) < 0)
        fail_msg("%s", dr_error_msg());
    assert_string_equal(c->listen, "127.0.0.1:9100");
    assert_string_equal(c->state_dir, "/var/lib/drd");
    assert_int_equal(c->grace_ms, 30000);
    assert_int_equal(c->n_clusters, 2);
    assert_string_equal(c->clusters[0].name, "primary");
    assert_string_equal(c->clusters[0].etcd.endpoints,
                        "http://127.0.0.1:2379,http://127.0.0.2:2379");
    assert_string_equal(c->clusters[0].etcd.cacert, "ca.pem");
    assert_int_equal(c->clusters[1].etcd.timeout_ms, 5000);
    assert_int_equal(c->clusters[1].etcd.max_recv_bytes, 4 << 20);
    assert_int_equal(c->n_stores, 1);
    assert_string_equal(c->stores[0].repo.store_url, "s3://bucket/prefix");
    assert_string_equal(c->stores[0].repo.store.s3_endpoint, "h:9000");
    assert_int_equal(c->stores[0].repo.store.part_size, 16 << 20);
    assert_string_equal(c->stores[0].repo.key_file, "keys");
    assert_int_equal(c->n_files, 4); /* cacert, cert, key, key_file */
    assert_int_equal(c->files[3].at.line, 9);
    assert_int_equal(c->n_jobs, 4);
    dr_conf_job *j = &c->jobs[0];
    assert_int_equal(j->kind, DR_JOB_REPLICATE);
    assert_int_equal(j->scheduled, 0);
    assert_int_equal(j->source_i, 0);
    assert_int_equal(j->target_i, 1);
    assert_int_equal(j->max_lag_ms, 30000);
    assert_int_equal(j->window, 8);
    assert_int_equal(j->max_txn_ops, 128);
    j = &c->jobs[1];
    assert_int_equal(j->mode, 1);
    assert_int_equal(j->prefixes.n, 1);
    assert_string_equal(j->prefixes.v[0], "/registry/apps/");
    assert_string_equal(j->dest_prefix, "/copy/");
    j = &c->jobs[2];
    assert_int_equal(j->kind, DR_JOB_SNAPSHOT);
    assert_int_equal(j->scheduled, 1);
    assert_int_equal(j->schedule.kind, DR_SCHED_CRON);
    assert_int_equal(j->schedule_at.line, 19);
    assert_int_equal(j->cluster_i, 0);
    assert_int_equal(j->store_i, 0);
    assert_int_equal(j->segments_ms, 10000);
    assert_int_equal(j->has_retention, 1);
    assert_int_equal(j->retention.keep_last, 4);
    assert_int_equal(j->retention.keep_monthly, 6);
    assert_int_equal(j->compression, DR_COMPRESS_ZSTD);
    j = &c->jobs[3];
    assert_int_equal(j->kind, DR_JOB_DRILL);
    assert_string_equal(j->schedule.tz_name, "Europe/Berlin");
    assert_string_equal(dr_job_kind_name(j->kind), "drill");
    dr_conf_free(c);
}

/* The table names every key once per scope, and every flag once per scope. */
static void test_table(void **state)
{
    (void)state;
    size_t n = 0;
    for (const dr_option *a = dr_options; a->key; a++, n++) {
        assert_non_null(a->help);
        for (const dr_option *b = dr_options; b < a; b++) {
            if (a->scope != b->scope)
                continue;
            if (strcmp(a->key, b->key) == 0)
                fail_msg("key '%s' twice in scope %d", a->key, a->scope);
            if (a->flag && b->flag && strcmp(a->flag, b->flag) == 0)
                fail_msg("flag '%s' twice in scope %d", a->flag, a->scope);
        }
    }
    assert_true(n > 30);
}

static void bad(const char *text, const char *want)
{
    dr_conf *c = NULL;
    int rc = load(text, &c);
    if (rc != DR_EUSAGE || !strstr(dr_error_msg(), want))
        fail_msg("rc %d, message '%s'\nwanted '%s'\nfor:\n%s", rc, dr_error_msg(), want, text);
    assert_null(c);
}

#define HEAD                                                                                       \
    "state_dir: /s\nclusters: { a: { endpoints: http://x:1 }, b: { endpoints: http://y:1 } }\n"
#define STORE "stores: { m: { url: file:///b } }\n"

static void test_bad(void **state)
{
    (void)state;
    bad("", "t.yaml:1:1: expected a map of settings");
    bad("- 1\n", "t.yaml:1:1: expected a map of settings");
    bad("state_dir: [\n", "t.yaml:2:1: ");
    bad("a: *x\n", "t.yaml:1:4: aliases (*name) are not supported");
    bad("a: &x 1\n", "t.yaml:1:4: anchors");
    bad("a: !!str 1\n", "t.yaml:1:4: tags");
    bad("a: 1\n---\nb: 2\n", "t.yaml:2:1: a second document");
    bad(HEAD "lisen: x\n", "t.yaml:3:1: unknown key 'lisen' (known: listen, state_dir");
    bad("clusters: {}\nstate_dir: /s\n", "t.yaml:1:1: no jobs");
    bad("listen: x\n" STORE "drills: [ { name: d, store: m, schedule: '@daily' } ]\n",
        "t.yaml:1:1: 'state_dir' is required");
    bad(HEAD HEAD, "t.yaml:3:1: 'state_dir' is given twice (first at line 1)");
    bad(HEAD "clusters: {}\n", "t.yaml:3:1: 'clusters' is given twice");
    bad("state_dir: /s\nclusters: { a: { endpoints: http://x:1, cacrt: f } }\n",
        "t.yaml:2:41: clusters.a: unknown key 'cacrt' (known: endpoints, cacert, cert, key, "
        "timeout, max_recv_bytes)");
    bad("state_dir: /s\nclusters: { a: { cacert: f } }\n",
        "t.yaml:2:16: clusters.a: 'endpoints' is required");
    bad("state_dir: /s\nclusters: { a: [x] }\n",
        "t.yaml:2:16: clusters.a: expected a map of settings, found a list");
    bad("state_dir: /s\nclusters: { a: { endpoints: {x: 1} } }\n",
        "t.yaml:2:29: clusters.a.endpoints: expected a string or a list of strings, found a map");
    bad("state_dir: /s\nclusters: { a: { endpoints: [] } }\n",
        "t.yaml:2:29: clusters.a.endpoints: the list is empty");
    bad("state_dir: /s\nclusters: { a: { endpoints: x, timeout: soon } }\n",
        "t.yaml:2:41: clusters.a.timeout: expected a duration such as 10s");
    bad("state_dir: /s\nclusters: { a: { endpoints: x, cacert: } }\n",
        "clusters.a.cacert: expected a file name, found nothing");
    bad("state_dir: /s\nclusters: { a: { endpoints: x, max_recv_bytes: 1KiB } }\n",
        "t.yaml:2:48: clusters.a.max_recv_bytes: 1024 is out of range 65536..2147483647");
    bad("state_dir: /s\nclusters: { a: { endpoints: x, max_recv_bytes: 4mb } }\n",
        "t.yaml:2:48: clusters.a.max_recv_bytes: expected a size such as 4MiB, found '4mb'");
    bad("state_dir: /s\nstores: { m: { url: u, s3_insecure_http: yes } }\n",
        "t.yaml:2:42: stores.m.s3_insecure_http: expected true or false, found 'yes'");
    bad("state_dir: /s\nstores: { m: { url: u, s3_part_size: 2 } }\n",
        "t.yaml:2:38: stores.m.s3_part_size: 2 is out of range 5..4096");
    bad("state_dir: /s\nstores: { m: { url: u, s3_secret_key: hunter2 } }\n",
        "t.yaml:2:24: stores.m: 's3_secret_key': secrets are never written into the config");
    bad("state_dir: /s\nstores: { m: { url: u, password: hunter2 } }\n",
        "secrets are never written");
    bad("state_dir: /s\nstores: { m: { url: u }, m: { url: v } }\n",
        "t.yaml:2:26: stores: 'm' is defined twice");
    bad(HEAD "replicate: { name: r }\n", "t.yaml:3:12: replicate: expected a list of jobs");
    bad(HEAD "replicate: [ { name: r, source: a } ]\n",
        "t.yaml:3:14: replicate[0]: 'target' is required");
    bad(HEAD "replicate: [ { name: r, source: a, target: c } ]\n",
        "t.yaml:3:44: replicate r: no cluster 'c' (clusters: a, b)");
    bad(HEAD "replicate: [ { name: r, source: a, target: a } ]\n",
        "t.yaml:3:44: replicate r: source and target are the same cluster");
    bad(HEAD "replicate: [ { name: r, source: a, target: b, mode: mirror } ]\n",
        "t.yaml:3:53: replicate[0].mode: expected one of exact|filtered, found 'mirror'");
    bad(HEAD "replicate: [ { name: r, source: a, target: b, prefixes: [/x/] } ]\n",
        "t.yaml:3:14: replicate r: prefixes, exclude and dest_prefix need mode: filtered");
    bad(HEAD "replicate: [ { name: r, source: a, target: b, mode: filtered, dest_prefix: /y/ } ]\n",
        "dest_prefix rewrites exactly one prefix (0 given)");
    bad(HEAD "replicate: [ { name: r, source: a, target: b, window: 0 } ]\n",
        "replicate[0].window: 0 is out of range 1..1024");
    bad(HEAD STORE "snapshots: [ { name: s, cluster: a, store: m, schedule: '* 25 * * *' } ]\n",
        "t.yaml:4:57: snapshots[0].schedule: schedule '* 25 * * *': hour field '25': 25 is out "
        "of range 0-23");
    bad(HEAD STORE "snapshots: [ { name: s, cluster: a, store: m, schedule: '@every 1x' } ]\n",
        "t.yaml:4:57: snapshots[0].schedule: schedule '@every 1x': @every needs a duration");
    bad(HEAD STORE "snapshots: [ { name: s, cluster: a, store: n, schedule: '@daily' } ]\n",
        "t.yaml:4:44: snapshot s: no store 'n' (stores: m)");
    bad(HEAD "snapshots: [ { name: s, cluster: a, store: n, schedule: '@daily' } ]\n",
        "no store 'n' (stores: none defined)");
    bad(HEAD STORE
        "snapshots: [ { name: s, cluster: a, store: m, schedule: '@daily', retention: {} } ]\n",
        "t.yaml:4:78: snapshot s: retention keeps nothing");
    bad(HEAD STORE "snapshots: [ { name: s, cluster: a, store: m, schedule: '@daily',\n"
                   "  retention: { keep_last: 2, yearly: 1 } } ]\n",
        "t.yaml:5:30: snapshots[0].retention: unknown key 'yearly' (known: keep_last, hourly, "
        "daily, weekly, monthly)");
    bad(HEAD STORE "snapshots: [ { name: s, cluster: a, store: m, schedule: '@daily' } ]\n"
                   "drills: [ { name: s, store: m, schedule: '@daily' } ]\n",
        "t.yaml:5:19: job name 's' is used twice (also a snapshot job at line 4)");
    bad(HEAD STORE "drills: [ { name: 'a b', store: m, schedule: '@daily' } ]\n",
        "t.yaml:4:19: job name 'a b': use letters, digits");
    bad("state_dir: /s\nclusters: { 'a\"b': { endpoints: x } }\n",
        "t.yaml:2:13: clusters: name 'a\"b': use letters, digits");
    bad(HEAD STORE "drills: [ { name: d, store: m } ]\n",
        "t.yaml:4:11: drills[0]: 'schedule' is required");
    bad(HEAD STORE "drills: [ { name: d, store: m, schedule: '@daily', cluster: a } ]\n",
        "t.yaml:4:52: drills[0]: unknown key 'cluster' (known: name, store, schedule)");
    bad(HEAD STORE "grace: forever\ndrills: [ { name: d, store: m, schedule: '@daily' } ]\n",
        "t.yaml:4:8: grace: expected a duration");
}

static void test_peers(void **state)
{
    (void)state;
    dr_conf *c;
    if (load(HEAD STORE
             "drills: [ { name: d, store: m, schedule: '@daily' } ]\n"
             "peers: { dc2: { url: 'http://10.0.0.2:9100' },\n"
             "         dc3: { url: 'http://[::1]:9100', interval: 10s, timeout: 1s } }\n",
             &c) < 0)
        fail_msg("%s", dr_error_msg());
    assert_int_equal(c->n_peers, 2);
    assert_string_equal(c->peers[0].name, "dc2");
    assert_string_equal(c->peers[0].url, "http://10.0.0.2:9100");
    assert_int_equal(c->peers[0].interval_ms, 5000); /* defaults */
    assert_int_equal(c->peers[0].timeout_ms, 3000);
    assert_int_equal(c->peers[1].interval_ms, 10000);
    assert_int_equal(c->peers[1].timeout_ms, 1000);
    dr_conf_free(c);
#define DRILL "drills: [ { name: d, store: m, schedule: '@daily' } ]\n"
    bad(HEAD STORE DRILL "peers: { dc2: { url: 'https://h:9100' } }\n",
        "t.yaml:5:22: peers.dc2.url: expected http://HOST:PORT (the other site's listen address), "
        "found 'https://h:9100'");
    bad(HEAD STORE DRILL "peers: { dc2: { url: 'http://h:9100/' } }\n",
        "expected http://HOST:PORT");
    bad(HEAD STORE DRILL "peers: { dc2: { url: 'http://h' } }\n", "expected http://HOST:PORT");
    bad(HEAD STORE DRILL "peers: { dc2: { interval: 1s } }\n",
        "t.yaml:5:15: peers.dc2: 'url' is required");
    bad(HEAD STORE DRILL "peers: { dc2: { url: 'http://h:1', interval: 500ms } }\n",
        "peers.dc2.interval: 500ms is out of range 1s..1h");
    bad(HEAD STORE DRILL "peers: { dc2: { url: 'http://h:1', interval: 1s, timeout: 2s } }\n",
        "peers.dc2.timeout: longer than its interval");
    bad(HEAD STORE DRILL "peers: { dc2: { url: 'http://h:1', token: x } }\n",
        "secrets are never written");
    bad(HEAD STORE DRILL "peers: [ 'http://h:1' ]\n",
        "t.yaml:5:8: peers: expected a map of name: settings, found a list");
#undef DRILL
}

/* failover.encryption_scan: 10m by default, 0s turns the daemon's key scan off, at least 1s */
static void test_encryption_scan(void **state)
{
    (void)state;
    dr_conf *c;
#define FO                                                                                         \
    "replicate: [ { name: r, source: a, target: b } ]\nfailover: { primary: a, standby: b, "       \
    "replicate: r"
    static const struct {
        const char *v;
        int64_t ms;
    } ok[] = {{"", 600000}, {", encryption_scan: 0s", 0}, {", encryption_scan: 30s", 30000}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s%s }\n", HEAD, FO, ok[i].v);
        if (load(text, &c) < 0)
            fail_msg("%s: %s", ok[i].v, dr_error_msg());
        assert_int_equal(c->failover.encryption_scan_ms, ok[i].ms);
        dr_conf_free(c);
    }
    bad(HEAD FO ", encryption_scan: 500ms }\n",
        "failover.encryption_scan must be at least 1s (0s: never)");
    bad(HEAD FO ", encryption_scan: 200h }\n", "encryption_scan: 200h is out of range 0s..168h");
#undef FO
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_peers),
        cmocka_unit_test(test_encryption_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
