/*
 * etcd-load: load generator and lag meter for bench/replicate-vs-make-mirror, on drd's etcd client.
 *
 *   etcd-load put  --endpoints URL --prefix P --count N [--start S] [--value-size B] [--rate R]
 *                  [--inflight K]
 *       writes keys P<seq> (seq = S .. S+N-1, zero-padded to 8 digits), one Txn with a single Put
 *       each, up to K in flight on one connection (pipelined), as fast as the server takes them or
 *       at R puts/s. Each value starts with the wall-clock send time in microseconds, so that
 *       `lag` can tell how old an event is when it reaches the standby, and is filled to B bytes
 *       by --fill: half-random (default: half of it random bytes, half 'x', so it compresses
 *       about 2x, like a cluster's mix of Secrets and specs) or x (all 'x': compresses ~65x, for
 *       runs that measure only the replication path).
 *   etcd-load del  --endpoints URL --prefix P --count N [--start S] [--inflight K]
 *       deletes the same keys, pipelined the same way.
 *   etcd-load lag  --endpoints STANDBY_URL --prefix P --count N [--idle SECS] [--timeout SECS]
 *       watches P on the standby from its current revision, prints "watching" once the watch
 *       exists, and for every put event records now - the timestamp at the start of the value.
 *       Stops after N events (or SECS without events, or the overall timeout) and prints
 *       "events E p50_ms X p99_ms Y max_ms Z".
 *   etcd-load ackput --endpoints URL --prefix P --count N [--rate R]
 *       one put at a time (at most R/s), keys P<seq>; prints "seq ack_wall_us" for each put etcd
 *       acknowledged, flushed at once, and stops at the first put that fails (the primary was
 *       killed): the writer of bench/dr-exercise, whose RPO counts acknowledged writes.
 *   etcd-load wait --endpoints URL --prefix P --count N [--timeout SECS]
 *       polls a count-only Range of P every 20 ms until it holds at least N keys; prints
 *       "count C after T s" (also when it gives up after SECS: then the exit status is 1).
 *   etcd-load snapshot --endpoints URL
 *       reads the Maintenance.Snapshot stream through drd's client (its sha256 trailer checked)
 *       and throws the bytes away; prints "snapshot B bytes in T s". The ceiling of any snapshot
 *       save against that etcd: how fast it streams when nothing is done with the bytes.
 *
 * Every command also takes --cacert F, --cert F, --key F (TLS to https endpoints).
 *
 * What it must never do: retry a write (a failed put is counted and makes the exit non-zero, so a
 * figure is never produced from a run that lost writes) or print to stdout anything but its
 * result lines (the benchmark script parses them).
 */
#include "drd/core/core.h"
#include "drd/lib/etcd/etcd.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct opts {
    const char *endpoints;
    const char *cacert, *cert, *key; /* TLS (https endpoints) */
    const char *prefix;
    int64_t count;
    int64_t start;
    int64_t value_size;
    int64_t rate;     /* puts/s; 0 = as fast as possible */
    int64_t inflight; /* transactions in flight */
    int64_t idle_s;   /* lag: stop after this long without events */
    int64_t timeout_s;
    int fill_x; /* --fill x */
} opts;

/* splitmix64: fast, and enough to make values incompressible */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Fills val[from, to): the first half of it random bytes (unless fill_x), the rest 'x'. */
static void fill_value(const opts *o, uint8_t *val, int64_t from, int64_t to, uint64_t *seed)
{
    int64_t rnd = o->fill_x ? from : from + (to - from) / 2;
    for (int64_t i = from; i < rnd; i += 8) {
        uint64_t r = next_rand(seed);
        memcpy(val + i, &r, (size_t)(rnd - i < 8 ? rnd - i : 8));
    }
    memset(val + rnd, 'x', (size_t)(to - rnd));
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int make_key(char *buf, size_t cap, const char *prefix, int64_t seq)
{
    return snprintf(buf, cap, "%s%08" PRId64, prefix, seq);
}

/* Waits up to timeout_ms for one completion; counts a failed transaction. Returns <0 only when the
 * pipeline broke. */
static int reap_one(dr_etcd_pipe *p, int64_t timeout_ms, int64_t *done, int64_t *failed)
{
    void *user;
    int trc;
    dr_etcd_txn_res res;
    int rc = dr_etcd_pipe_next(p, timeout_ms, &user, &trc, &res);
    if (rc == DR_ETIMEOUT || rc == DR_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (trc < 0) {
        if (*failed == 0)
            fprintf(stderr, "etcd-load: write failed: %s\n", dr_error_msg());
        (*failed)++;
    } else {
        dr_etcd_txn_res_free(&res);
    }
    (*done)++;
    return 0;
}

/* put and del: N single-op transactions, K in flight, optionally paced at o->rate per second. */
static int cmd_write(dr_etcd *e, const opts *o, int del)
{
    int rc = 0;
    dr_etcd_pipe *p = NULL;
    dr_etcd_txn *t = NULL;
    char key[512];
    size_t vcap = (size_t)o->value_size + 32;
    char *val = malloc(vcap);
    uint64_t seed = (uint64_t)wall_us() ^ ((uint64_t)o->start << 32);
    int64_t done = 0, failed = 0, behind_us = 0;
    if (!val) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = dr_etcd_pipe_new(e, &p)) < 0 || (rc = dr_etcd_txn_new(&t)) < 0)
        goto out;
    int64_t t0 = mono_us();
    for (int64_t i = 0; i < o->count; i++) {
        /* pacing: submission i is due at t0 + i/rate; reap completions while waiting */
        if (o->rate > 0) {
            int64_t due = t0 + i * 1000000 / o->rate;
            for (int64_t now = mono_us(); now < due; now = mono_us()) {
                if (dr_etcd_pipe_inflight(p) > 0) {
                    if ((rc = reap_one(p, (due - now) / 1000, &done, &failed)) < 0)
                        goto out;
                } else {
                    struct timespec ts = {0, (long)(due - now) * 1000};
                    nanosleep(&ts, NULL);
                }
            }
            if (mono_us() - due > behind_us)
                behind_us = mono_us() - due;
        }
        while ((int64_t)dr_etcd_pipe_inflight(p) >= o->inflight)
            if ((rc = reap_one(p, 1000, &done, &failed)) < 0)
                goto out;
        int klen = make_key(key, sizeof key, o->prefix, o->start + i);
        dr_etcd_txn_reset(t);
        if (del) {
            rc = dr_etcd_txn_delete(t, DR_TXN_SUCCESS, key, (size_t)klen, NULL, 0);
        } else {
            int vlen = snprintf(val, vcap, "%" PRId64 " ", wall_us());
            if (vlen < o->value_size) {
                fill_value(o, (uint8_t *)val, vlen, o->value_size, &seed);
                vlen = (int)o->value_size;
            }
            rc = dr_etcd_txn_put(t, DR_TXN_SUCCESS, key, (size_t)klen, val, (size_t)vlen, 0);
        }
        if (rc < 0 || (rc = dr_etcd_pipe_submit(p, t, NULL)) < 0)
            goto out;
    }
    while (dr_etcd_pipe_inflight(p) > 0)
        if ((rc = reap_one(p, 1000, &done, &failed)) < 0)
            goto out;
    double secs = (double)(mono_us() - t0) / 1e6;
    printf("%s %" PRId64 " keys in %.3f s: %.0f/s, %" PRId64
           " failed, max %.1f ms behind schedule\n",
           del ? "deleted" : "put", done, secs, secs > 0 ? (double)done / secs : 0.0, failed,
           (double)behind_us / 1000.0);
    if (failed > 0)
        rc = dr_error_set(DR_EGENERIC, "%" PRId64 " of %" PRId64 " writes failed", failed, done);
out:
    dr_etcd_txn_free(t);
    dr_etcd_pipe_free(p);
    free(val);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, int64_t n, int pct)
{
    if (n == 0)
        return 0.0;
    int64_t i = (n * pct + 99) / 100 - 1; /* nearest-rank */
    if (i < 0)
        i = 0;
    return (double)v[i] / 1000.0;
}

static int cmd_lag(dr_etcd *e, const opts *o)
{
    int rc = 0;
    dr_etcd_watch *w = NULL;
    int64_t n = 0, unparsed = 0;
    int64_t *lag = calloc((size_t)o->count, sizeof *lag);
    uint8_t end[512];
    size_t elen = 0;
    if (!lag) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    dr_etcd_prefix_end(o->prefix, strlen(o->prefix), end, &elen);
    dr_etcd_watch_opts wo = {
        .key = o->prefix, .key_len = strlen(o->prefix), .range_end = end, .range_end_len = elen};
    if ((rc = dr_etcd_watch_open(e, &wo, &w, NULL)) < 0)
        goto out;
    printf("watching\n");
    fflush(stdout);
    int64_t start = mono_us(), last_event = start;
    while (n < o->count) {
        int64_t now = mono_us();
        if (now - last_event > o->idle_s * 1000000 || now - start > o->timeout_s * 1000000)
            break;
        dr_etcd_watch_res res;
        rc = dr_etcd_watch_next(w, 500, &res);
        if (rc == DR_ETIMEOUT) {
            rc = 0;
            continue;
        }
        if (rc < 0)
            goto out;
        int64_t recv = wall_us();
        for (size_t i = 0; i < res.n_events && n < o->count; i++) {
            const dr_etcd_event *ev = &res.events[i];
            if (ev->type != DR_EV_PUT)
                continue;
            char ts[24];
            size_t l = ev->kv.value_len < sizeof ts - 1 ? ev->kv.value_len : sizeof ts - 1;
            memcpy(ts, ev->kv.value, l);
            ts[l] = '\0';
            char *endp;
            long long sent = strtoll(ts, &endp, 10);
            if (endp == ts) {
                unparsed++;
                continue;
            }
            lag[n++] = recv - sent;
        }
        if (res.n_events > 0)
            last_event = mono_us();
        dr_etcd_watch_res_free(&res);
    }
    qsort(lag, (size_t)n, sizeof *lag, cmp_i64);
    printf("events %" PRId64 " p50_ms %.1f p99_ms %.1f max_ms %.1f\n", n, pct_ms(lag, n, 50),
           pct_ms(lag, n, 99), n ? (double)lag[n - 1] / 1000.0 : 0.0);
    if (unparsed)
        fprintf(stderr, "etcd-load: %" PRId64 " put events without a timestamp\n", unparsed);
    if (n < o->count)
        rc = dr_error_set(DR_ETIMEOUT, "saw %" PRId64 " of %" PRId64 " events", n, o->count);
out:
    dr_etcd_watch_close(w);
    free(lag);
    return rc;
}

static int cmd_ackput(dr_etcd *e, const opts *o)
{
    char key[256], val[64];
    int64_t t0 = mono_us();
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int64_t i = 0; i < o->count; i++) {
        int64_t seq = o->start + i;
        if (o->rate > 0) {
            int64_t due = t0 + i * 1000000 / o->rate, now = mono_us();
            if (due > now)
                dr_sleep_ms((due - now) / 1000);
        }
        make_key(key, sizeof key, o->prefix, seq);
        int n = snprintf(val, sizeof val, "%" PRId64, wall_us());
        if (dr_etcd_put(e, key, strlen(key), val, (size_t)n, 0, NULL) < 0) {
            fprintf(stderr, "etcd-load ackput: stopped at %" PRId64 ": %s\n", seq, dr_error_msg());
            return 0;
        }
        printf("%" PRId64 " %" PRId64 "\n", seq, wall_us());
    }
    return 0;
}

static int cmd_wait(dr_etcd *e, const opts *o)
{
    uint8_t end[512];
    size_t elen = 0;
    dr_etcd_prefix_end(o->prefix, strlen(o->prefix), end, &elen);
    dr_etcd_range_req req = {.key = o->prefix,
                             .key_len = strlen(o->prefix),
                             .range_end = end,
                             .range_end_len = elen,
                             .count_only = 1};
    int64_t t0 = mono_us(), count = -1;
    for (;;) {
        dr_etcd_range_res res;
        int rc = dr_etcd_range(e, &req, &res);
        if (rc < 0)
            return rc;
        count = res.count;
        dr_etcd_range_res_free(&res);
        if (count >= o->count)
            break;
        if (mono_us() - t0 > o->timeout_s * 1000000)
            break;
        dr_sleep_ms(20);
    }
    printf("count %" PRId64 " after %.3f s\n", count, (double)(mono_us() - t0) / 1e6);
    if (count < o->count)
        return dr_error_set(DR_ETIMEOUT, "%" PRId64 " of %" PRId64 " keys after %" PRId64 " s",
                            count, o->count, o->timeout_s);
    return 0;
}

static int discard(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return 0;
}

static int cmd_snapshot(dr_etcd *e)
{
    uint64_t size = 0;
    int64_t t0 = dr_mono_us();
    int rc = dr_etcd_snapshot(e, discard, NULL, &size, NULL);
    if (rc == 0)
        printf("snapshot %" PRIu64 " bytes in %.3f s\n", size, (double)(dr_mono_us() - t0) / 1e6);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: etcd-load put  --endpoints URL --prefix P --count N [--start S]\n"
        "                      [--value-size B] [--fill half-random|x] [--rate R] [--inflight K]\n"
        "       etcd-load del  --endpoints URL --prefix P --count N [--start S] "
        "[--inflight K]\n"
        "       etcd-load lag  --endpoints URL --prefix P --count N [--idle S] "
        "[--timeout S]\n"
        "       etcd-load wait --endpoints URL --prefix P --count N [--timeout S]\n"
        "       etcd-load ackput --endpoints URL --prefix P --count N [--rate R]\n"
        "       etcd-load snapshot --endpoints URL\n"
        "every command also takes --cacert F --cert F --key F for https endpoints\n");
}

int main(int argc, char **argv)
{
    opts o = {.value_size = 1024, .inflight = 64, .idle_s = 30, .timeout_s = 600};
    static const struct option lo[] = {{"endpoints", required_argument, NULL, 'e'},
                                       {"prefix", required_argument, NULL, 'p'},
                                       {"count", required_argument, NULL, 'n'},
                                       {"start", required_argument, NULL, 's'},
                                       {"value-size", required_argument, NULL, 'b'},
                                       {"rate", required_argument, NULL, 'r'},
                                       {"inflight", required_argument, NULL, 'k'},
                                       {"idle", required_argument, NULL, 'i'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"cacert", required_argument, NULL, 'C'},
                                       {"cert", required_argument, NULL, 'T'},
                                       {"key", required_argument, NULL, 'K'},
                                       {"fill", required_argument, NULL, 'f'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int c, li = 0, rc = 0;
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
        int64_t *num = NULL;
        switch (c) {
        case 'e':
            o.endpoints = optarg;
            break;
        case 'p':
            o.prefix = optarg;
            break;
        case 'C':
            o.cacert = optarg;
            break;
        case 'T':
            o.cert = optarg;
            break;
        case 'K':
            o.key = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "x") && strcmp(optarg, "half-random")) {
                fprintf(stderr, "etcd-load: --fill must be half-random or x, not '%s'\n", optarg);
                return 2;
            }
            o.fill_x = !strcmp(optarg, "x");
            break;
        case 'n':
            num = &o.count;
            break;
        case 's':
            num = &o.start;
            break;
        case 'b':
            num = &o.value_size;
            break;
        case 'r':
            num = &o.rate;
            break;
        case 'k':
            num = &o.inflight;
            break;
        case 'i':
            num = &o.idle_s;
            break;
        case 't':
            num = &o.timeout_s;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (num && dr_parse_i64(optarg, lo[li].name, num) < 0) {
            fprintf(stderr, "etcd-load: %s\n", dr_error_msg());
            return 2;
        }
    }
    int snap = !strcmp(cmd, "snapshot");
    if (!o.endpoints || (!snap && (!o.prefix || o.count <= 0)) || o.inflight <= 0 ||
        optind != argc) {
        usage(stderr);
        return 2;
    }
    dr_etcd *e = NULL;
    dr_etcd_opts eo = {.endpoints = o.endpoints,
                       .cacert = o.cacert,
                       .cert = o.cert,
                       .key = o.key,
                       .timeout_ms = strcmp(cmd, "ackput") ? 30000 : 2000};
    if ((rc = dr_etcd_open(&e, &eo)) < 0)
        goto out;
    if (!strcmp(cmd, "put"))
        rc = cmd_write(e, &o, 0);
    else if (!strcmp(cmd, "del"))
        rc = cmd_write(e, &o, 1);
    else if (!strcmp(cmd, "lag"))
        rc = cmd_lag(e, &o);
    else if (!strcmp(cmd, "wait"))
        rc = cmd_wait(e, &o);
    else if (!strcmp(cmd, "ackput"))
        rc = cmd_ackput(e, &o);
    else if (snap)
        rc = cmd_snapshot(e);
    else
        rc = dr_error_set(DR_EUSAGE, "unknown command '%s'", cmd);
out:
    if (rc < 0)
        fprintf(stderr, "etcd-load %s: %s\n", cmd, dr_error_msg());
    dr_etcd_close(e);
    return rc < 0 ? 1 : 0;
}
