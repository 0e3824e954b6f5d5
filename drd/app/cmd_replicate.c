/*
 * drd replicate etcd|seed|status|verify: flag parsing and output. The work is in replicate/.
 */
#include "drd/app/cmd.h"
#include "drd/lib/http/http.h"
#include "drd/core/core.h"
#include "replicate/replicate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS_FLAGS_HELP                                                                             \
    "  --source-cacert F --source-cert F --source-key F   TLS to the source (https:// URLs)\n"     \
    "  --target-cacert F --target-cert F --target-key F   TLS to the target\n" ETCD_RECV_HELP      \
    "  --timeout D        per-request deadline (default 10s)\n"

const char usage_replicate_etcd[] =
    "usage: drd replicate etcd --source URLS --target URLS [--mode exact|filtered] [--name NAME]\n"
    "          [--prefix P]... [--exclude P]... [--dest-prefix P] [--max-txn-ops N]\n"
    "          [--window N] [--until-caught-up] [--status-listen ADDR] [--max-lag D] [TLS "
    "flags]\n\n"
    "Streams every revision of the source etcd to the target etcd, resuming where it stopped.\n\n"
    "  --source URLS      primary endpoints, comma-separated http(s)://host:port\n"
    "  --target URLS      standby endpoints\n"
    "  --mode M           exact (default): the standby is dedicated and seeded with\n"
    "                     'drd replicate seed'; revisions stay identical.\n"
    "                     filtered: copy selected prefixes to a target with other writers;\n"
    "                     the cursor is the key /drd/replicate/<name>/revision.\n"
    "  --name NAME        replication name (cursor key), default 'default'\n"
    "  --prefix P         replicate keys under P (repeatable; filtered mode; default all)\n"
    "  --exclude P        skip keys under P (repeatable; filtered mode)\n"
    "  --dest-prefix P    rewrite the (single) --prefix to P on the target (filtered mode)\n"
    "  --max-txn-ops N    the target's --max-txn-ops (default 128)\n"
    "  --window N         transactions in flight (default 8, exact mode at most 8)\n"
    "  --until-caught-up  exit 0 once every source revision that existed at start is applied\n"
    "  --status-listen A  serve /metrics, /healthz, /readyz, /status on A (host:port,\n"
    "                     [ipv6]:port, or :port for every address)\n"
    "  --max-lag D        /readyz is 503 while the standby lags more than D (e.g. "
    "30s)\n" TLS_FLAGS_HELP
    "\nRuns until SIGTERM/SIGINT, then stops cleanly. Alarms: a foreign write on an exact\n"
    "standby, a standby that was not seeded, a source compacted past the cursor. On an alarm it\n"
    "stays up in state alarm (/readyz 503 with the reason, drd_replicate_alarm 1, /healthz 200)\n"
    "until SIGTERM, then exits with the alarm's code; with --until-caught-up it exits at once.\n";

const char usage_replicate_seed[] =
    "usage: drd replicate seed --source URLS --data-dir DIR --name NAME --initial-cluster C\n"
    "          --initial-advertise-peer-urls U [TLS flags for the source]\n"
    "       drd replicate seed --source URLS --members-dir DIR --initial-cluster C [TLS flags]\n\n"
    "Takes a snapshot of the source (sha256 checked) and restores it into DIR (which must not\n"
    "exist or be empty) for the standby etcd to start on with the same --name, --initial-cluster\n"
    "and --initial-advertise-peer-urls. With --members-dir, every member of --initial-cluster\n"
    "gets DIR/<name> from the one snapshot (a multi-member standby). Prints the revision the\n"
    "standby starts at.\n";

const char usage_replicate_status[] =
    "usage: drd replicate status --source URLS --target URLS [--mode exact|filtered]\n"
    "          [--name NAME] [--json] [TLS flags]\n\n"
    "Prints the source revision, the applied revision on the target and the lag in revisions.\n"
    "Lag in seconds is served by a running 'drd replicate etcd --status-listen' on /metrics.\n";

const char usage_replicate_verify[] =
    "usage: drd replicate verify --source URLS --target URLS [--mode exact|filtered]\n"
    "          [--name NAME] [--prefix P]... [--exclude P]... [--dest-prefix P] [TLS flags]\n\n"
    "Compares source and target at the revision the target has applied: HashKV when both have\n"
    "the same compact revision, otherwise key by key. Exit 0 when equal.\n";

enum {
    O_SOURCE = 1000,
    O_RMAXRECV,
    O_TARGET,
    O_MODE,
    O_NAME,
    O_PREFIX,
    O_EXCLUDE,
    O_DEST,
    O_MAXOPS,
    O_WINDOW,
    O_UNTIL,
    O_LISTEN,
    O_SCA,
    O_SCERT,
    O_SKEY,
    O_TCA,
    O_TCERT,
    O_TKEY,
    O_TIMEOUT,
    O_JSON,
    O_DATADIR,
    O_ICLUSTER,
    O_IPEER,
    O_MAXLAG,
    O_MEMBERS
};

static const struct option repl_opts[] = {
    {"source", required_argument, NULL, O_SOURCE},
    {"target", required_argument, NULL, O_TARGET},
    {"mode", required_argument, NULL, O_MODE},
    {"name", required_argument, NULL, O_NAME},
    {"prefix", required_argument, NULL, O_PREFIX},
    {"exclude", required_argument, NULL, O_EXCLUDE},
    {"dest-prefix", required_argument, NULL, O_DEST},
    {"max-txn-ops", required_argument, NULL, O_MAXOPS},
    {"window", required_argument, NULL, O_WINDOW},
    {"until-caught-up", no_argument, NULL, O_UNTIL},
    {"status-listen", required_argument, NULL, O_LISTEN},
    {"max-lag", required_argument, NULL, O_MAXLAG},
    {"members-dir", required_argument, NULL, O_MEMBERS},
    {"source-cacert", required_argument, NULL, O_SCA},
    {"source-cert", required_argument, NULL, O_SCERT},
    {"source-key", required_argument, NULL, O_SKEY},
    {"target-cacert", required_argument, NULL, O_TCA},
    {"target-cert", required_argument, NULL, O_TCERT},
    {"target-key", required_argument, NULL, O_TKEY},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"etcd-max-recv-bytes", required_argument, NULL, O_RMAXRECV},
    {"json", no_argument, NULL, O_JSON},
    {"data-dir", required_argument, NULL, O_DATADIR},
    {"initial-cluster", required_argument, NULL, O_ICLUSTER},
    {"initial-advertise-peer-urls", required_argument, NULL, O_IPEER},
    {0, 0, 0, 0},
};

typedef struct parsed {
    dr_repl_opts r;
    const char *prefixes[64];
    const char *excludes[64];
    const char *listen;
    int64_t max_lag_ms; /* 0: no bound */
    int json;
    const char *data_dir, *icluster, *ipeer, *members_dir;
    unsigned allowed; /* bit per option group this command accepts */
} parsed;

/* Option groups: which flags each subcommand takes. */
#define G_LIVE 1u   /* etcd only */
#define G_FILTER 2u /* prefixes */
#define G_TARGET 4u
#define G_JSON 8u
#define G_SEED 16u

static unsigned group_of(int c)
{
    switch (c) {
    case O_MAXOPS:
    case O_WINDOW:
    case O_UNTIL:
    case O_LISTEN:
    case O_MAXLAG:
        return G_LIVE;
    case O_PREFIX:
    case O_EXCLUDE:
    case O_DEST:
        return G_FILTER;
    case O_TARGET:
    case O_TCA:
    case O_TCERT:
    case O_TKEY:
    case O_MODE:
        return G_TARGET;
    case O_JSON:
        return G_JSON;
    case O_DATADIR:
    case O_ICLUSTER:
    case O_IPEER:
    case O_MEMBERS:
        return G_SEED;
    default:
        return 0; /* common */
    }
}

static int parse(int argc, char **argv, const char *cmd, parsed *p)
{
    int c;
    dr_repl_opts *r = &p->r;
    r->name = NULL;
    r->max_txn_ops = 128;
    r->window = 8; /* filtered: fewer in flight, bigger batches (docs/replication.md) */
    r->mode = DR_REPL_EXACT;
    int64_t v;
    while ((c = drd_getopt(argc, argv, repl_opts, cmd)) != -1) {
        if (c < 0)
            return c;
        unsigned g = group_of(c);
        if (g && !(p->allowed & g)) {
            return dr_error_set(DR_EUSAGE,
                                "drd %s: flag '%s' does not apply here (see drd %s --help)", cmd,
                                argv[optind - 1 - (optarg ? 1 : 0)], cmd);
        }
        switch (c) {
        case O_SOURCE:
            r->source.endpoints = optarg;
            break;
        case O_TARGET:
            r->target.endpoints = optarg;
            break;
        case O_MODE:
            if (strcmp(optarg, "exact") == 0)
                r->mode = DR_REPL_EXACT;
            else if (strcmp(optarg, "filtered") == 0)
                r->mode = DR_REPL_FILTERED;
            else
                return dr_error_set(DR_EUSAGE, "drd %s: --mode must be exact or filtered, not '%s'",
                                    cmd, optarg);
            break;
        case O_NAME:
            r->name = optarg;
            break;
        case O_PREFIX:
            if (r->n_prefixes >= 64)
                return dr_error_set(DR_EUSAGE, "drd %s: too many --prefix (64 at most)", cmd);
            p->prefixes[r->n_prefixes++] = optarg;
            break;
        case O_EXCLUDE:
            if (r->n_excludes >= 64)
                return dr_error_set(DR_EUSAGE, "drd %s: too many --exclude (64 at most)", cmd);
            p->excludes[r->n_excludes++] = optarg;
            break;
        case O_DEST:
            r->dest_prefix = optarg;
            break;
        case O_MAXOPS:
            if (dr_parse_i64(optarg, "--max-txn-ops", &v) < 0)
                return DR_EUSAGE;
            if (v < 2)
                return dr_error_set(DR_EUSAGE, "drd %s: --max-txn-ops must be at least 2", cmd);
            r->max_txn_ops = v;
            break;
        case O_WINDOW:
            if (dr_parse_i64(optarg, "--window", &v) < 0)
                return DR_EUSAGE;
            if (v < 1 || v > 1024)
                return dr_error_set(DR_EUSAGE, "drd %s: --window must be 1..1024", cmd);
            r->window = (int)v;
            break;
        case O_UNTIL:
            r->until_caught_up = 1;
            break;
        case O_LISTEN:
            p->listen = optarg;
            break;
        case O_MAXLAG:
            if (dr_parse_duration_ms(optarg, "--max-lag", &v) < 0)
                return DR_EUSAGE;
            if (v <= 0)
                return dr_error_set(DR_EUSAGE, "drd %s: --max-lag must be positive", cmd);
            p->max_lag_ms = v;
            break;
        case O_SCA:
            r->source.cacert = optarg;
            break;
        case O_SCERT:
            r->source.cert = optarg;
            break;
        case O_SKEY:
            r->source.key = optarg;
            break;
        case O_TCA:
            r->target.cacert = optarg;
            break;
        case O_TCERT:
            r->target.cert = optarg;
            break;
        case O_TKEY:
            r->target.key = optarg;
            break;
        case O_TIMEOUT:
            if (dr_parse_duration_ms(optarg, "--timeout", &v) < 0)
                return DR_EUSAGE;
            r->source.timeout_ms = r->target.timeout_ms = v;
            break;
        case O_RMAXRECV: /* both sides: the limit is ours, not a server's */
            if (drd_parse_bytes(optarg, "--etcd-max-recv-bytes", DR_ETCD_MAX_RECV_MIN,
                                DR_ETCD_MAX_RECV_MAX, &v) < 0)
                return DR_EUSAGE;
            r->source.max_recv_bytes = r->target.max_recv_bytes = v;
            break;
        case O_JSON:
            p->json = 1;
            break;
        case O_DATADIR:
            p->data_dir = optarg;
            break;
        case O_ICLUSTER:
            p->icluster = optarg;
            break;
        case O_IPEER:
            p->ipeer = optarg;
            break;
        case O_MEMBERS:
            p->members_dir = optarg;
            break;
        }
    }
    if (optind < argc)
        return dr_error_set(DR_EUSAGE, "drd %s: unexpected argument '%s'", cmd, argv[optind]);
    if (!r->source.endpoints)
        return dr_error_set(DR_EUSAGE, "drd %s: --source is required", cmd);
    if ((p->allowed & G_TARGET) && !r->target.endpoints)
        return dr_error_set(DR_EUSAGE, "drd %s: --target is required", cmd);
    r->prefixes = p->prefixes;
    r->excludes = p->excludes;
    if (!r->name)
        r->name = "default";
    return 0;
}

/* What the status server shows. States of the command (the replicator's own are in stats):
 *   running --(dr_repl_run returns an alarm: diverged, not seeded, compacted)--> alarm
 *   alarm --(SIGTERM)--> exit with the alarm's code
 * In alarm the process stays up (unless --until-caught-up) so that monitoring sees the reason on
 * /readyz and /metrics instead of a target that vanished; /healthz stays 200 (the process is
 * alive and answering: restarting it would not help). */
typedef struct live {
    dr_repl_stats stats;
    const char *name;
    int64_t max_lag_ms;
    char alarm[512]; /* written before alarm_code is published */
    int alarm_code;  /* read by the server thread with __atomic_load_n */
} live;

static int render(void *ctx, const char *path, dr_buf *b, const char **ctype)
{
    live *l = ctx;
    int st = l->stats.state;
    int alarm = __atomic_load_n(&l->alarm_code, __ATOMIC_ACQUIRE);
    if (strcmp(path, "/metrics") == 0) {
        *ctype = "text/plain; version=0.0.4";
        dr_repl_metrics(&l->stats, l->name, b);
        dr_buf_printf(b,
                      "# HELP drd_replicate_alarm 1 while stopped by an alarm (code: drd's error "
                      "name; docs/alarms.md).\n# TYPE drd_replicate_alarm gauge\n"
                      "drd_replicate_alarm{name=\"%s\",code=\"%s\"} %d\n",
                      l->name, alarm ? dr_error_name(alarm) : "", alarm != 0);
        int ready = !alarm && st == DR_REPL_STREAMING &&
                    !(l->max_lag_ms && l->stats.lag_ms > l->max_lag_ms);
        dr_buf_printf(
            b,
            "# HELP drd_replicate_ready 1 while streaming within --max-lag (what /readyz "
            "says).\n# TYPE drd_replicate_ready gauge\ndrd_replicate_ready{name=\"%s\"} %d\n",
            l->name, ready);
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        dr_buf_printf(b, "ok\n");
        return 200;
    }
    if (strcmp(path, "/readyz") == 0) {
        if (alarm) {
            dr_buf_printf(b, "alarm: %s\n", l->alarm);
            return 503;
        }
        int64_t lag = l->stats.lag_ms;
        if (st == DR_REPL_STREAMING && l->max_lag_ms && lag > l->max_lag_ms) {
            dr_buf_printf(b, "lagging: %.1f s behind the source, more than --max-lag %.1f s\n",
                          (double)lag / 1000.0, (double)l->max_lag_ms / 1000.0);
            return 503;
        }
        dr_buf_printf(b, "%s\n", dr_repl_state_name(st));
        return st == DR_REPL_STREAMING ? 200 : 503;
    }
    if (strcmp(path, "/status") == 0) {
        *ctype = "application/json";
        dr_buf_printf(b,
                      "{\"name\":\"%s\",\"state\":\"%s\",\"source_revision\":%lld,"
                      "\"applied_revision\":%lld,\"lag_revisions\":%lld,\"lag_seconds\":%.3f",
                      l->name, dr_repl_state_name(st), (long long)l->stats.source_revision,
                      (long long)l->stats.applied_revision,
                      (long long)(l->stats.source_revision > l->stats.applied_revision
                                      ? l->stats.source_revision - l->stats.applied_revision
                                      : 0),
                      (double)l->stats.lag_ms / 1000.0);
        if (alarm) {
            dr_buf_printf(b, ",\"alarm\":");
            dr_buf_json_str(b, l->alarm, strlen(l->alarm));
        }
        dr_buf_printf(b, "}\n");
        return 200;
    }
    dr_buf_printf(b, "not found\n");
    return 404;
}

static int is_alarm(int rc)
{
    return rc == DR_EDIVERGED || rc == DR_ENOTSEEDED || rc == DR_ECOMPACTED;
}

int cmd_replicate_etcd(int argc, char **argv)
{
    parsed p = {.allowed = G_LIVE | G_FILTER | G_TARGET};
    int rc = parse(argc, argv, "replicate etcd", &p);
    if (rc < 0)
        return rc;
    if ((rc = dr_repl_check_opts(&p.r)) < 0)
        return rc;
    static live l;
    memset(&l, 0, sizeof l);
    l.name = p.r.name;
    l.max_lag_ms = p.max_lag_ms;
    dr_http_server *srv = NULL;
    drd_signals_install();
    p.r.stop = &drd_stop;
    if (p.listen && (rc = dr_http_start(p.listen, "--status-listen", NULL, render, &l, &srv)) < 0)
        return rc;
    rc = dr_repl_run(&p.r, &l.stats);
    if (is_alarm(rc) && !p.r.until_caught_up) {
        snprintf(l.alarm, sizeof l.alarm, "%s", dr_error_msg());
        __atomic_store_n(&l.alarm_code, rc, __ATOMIC_RELEASE);
        dr_log(DR_LOG_ERROR, "alarm: %s (staying up in state alarm until SIGTERM)", l.alarm);
        while (!drd_stop)
            dr_sleep_ms(200);
        dr_error_set(rc, "%s", l.alarm);
    }
    dr_http_stop(srv);
    if (rc == 0 && p.r.until_caught_up)
        printf("caught up at revision %lld\n", (long long)l.stats.applied_revision);
    return rc;
}

int cmd_replicate_status(int argc, char **argv)
{
    parsed p = {.allowed = G_TARGET | G_JSON | G_FILTER};
    int rc = parse(argc, argv, "replicate status", &p);
    if (rc < 0)
        return rc;
    dr_repl_status st;
    if ((rc = dr_repl_status_get(&p.r, &st)) < 0)
        return rc;
    if (p.json)
        printf("{\"mode\":\"%s\",\"name\":\"%s\",\"state\":\"%s\",\"source_revision\":%lld,"
               "\"applied_revision\":%lld,\"lag_revisions\":%lld,"
               "\"source_compact_revision\":%lld}\n",
               p.r.mode == DR_REPL_EXACT ? "exact" : "filtered", p.r.name, st.state,
               (long long)st.source_revision, (long long)st.applied_revision,
               (long long)st.lag_revisions, (long long)st.source_compact_revision);
    else
        printf("mode:              %s\nstate:             %s\nsource revision:   %lld\n"
               "applied revision:  %lld\nlag (revisions):   %lld\nsource compacted:  %lld\n",
               p.r.mode == DR_REPL_EXACT ? "exact" : "filtered", st.state,
               (long long)st.source_revision, (long long)st.applied_revision,
               (long long)st.lag_revisions, (long long)st.source_compact_revision);
    return 0;
}

int cmd_replicate_verify(int argc, char **argv)
{
    parsed p = {.allowed = G_TARGET | G_FILTER};
    int rc = parse(argc, argv, "replicate verify", &p);
    if (rc < 0)
        return rc;
    if ((rc = dr_repl_check_opts(&p.r)) < 0)
        return rc;
    int64_t rev = 0, nkeys = -1;
    rc = dr_repl_verify(&p.r, &rev, &nkeys);
    if (rc < 0)
        return rc;
    if (nkeys >= 0)
        printf("ok: source and target are identical at revision %lld (%lld keys compared)\n",
               (long long)rev, (long long)nkeys);
    else
        printf("ok: source and target are identical at revision %lld (HashKV)\n", (long long)rev);
    return 0;
}

int cmd_replicate_seed(int argc, char **argv)
{
    parsed p = {.allowed = G_SEED};
    int rc = parse(argc, argv, "replicate seed", &p);
    if (rc < 0)
        return rc;
    if (p.members_dir
            ? (p.data_dir || p.ipeer || strcmp(p.r.name, "default") != 0 || !p.icluster)
            : (!p.data_dir || !p.icluster || !p.ipeer || strcmp(p.r.name, "default") == 0))
        return dr_error_set(DR_EUSAGE, "drd replicate seed: give --data-dir, --name, "
                                       "--initial-cluster and --initial-advertise-peer-urls (one "
                                       "member), or --members-dir and --initial-cluster (all)");
    dr_repl_seed_opts so = {.source = p.r.source,
                            .data_dir = p.data_dir,
                            .name = p.r.name,
                            .initial_cluster = p.icluster,
                            .initial_advertise_peer_urls = p.ipeer,
                            .members_dir = p.members_dir};
    int64_t rev = 0;
    if ((rc = dr_repl_seed(&so, &rev)) < 0)
        return rc;
    printf("seeded %s at revision %lld\n", p.members_dir ? p.members_dir : p.data_dir,
           (long long)rev);
    return 0;
}
