/*
 * drd replicate etcd|seed|status|verify: flag parsing and output. The work is in replicate/.
 */
#include "drd/app/cmd.h"
#include "drd/app/daemon.h"
#include "drd/lib/http/http.h"
#include "drd/core/core.h"
#include "policies/policies.h"
#include "replicate/replicate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOURCE_FLAGS_HELP                                                                          \
    "  --source-cacert F --source-cert F --source-key F   TLS to the source (https:// "            \
    "URLs)\n" ETCD_RECV_HELP "  --timeout D        per-request deadline (default 10s)\n"
#define TLS_FLAGS_HELP                                                                             \
    SOURCE_FLAGS_HELP                                                                              \
    "  --target-cacert F --target-cert F --target-key F   TLS to the target\n"

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
    "standby starts at.\n\n" SOURCE_FLAGS_HELP;

const char usage_replicate_status[] =
    "usage: drd replicate status --source URLS --target URLS [--mode exact|filtered]\n"
    "          [--name NAME] [--prefix P]... [--exclude P]... [--dest-prefix P] [--json]\n"
    "          [TLS flags]\n\n"
    "Prints the source revision, the applied revision on the target and the lag in revisions.\n"
    "Lag in seconds is on /metrics of a running 'drd replicate etcd' with a status "
    "server.\n\n" TLS_FLAGS_HELP;

const char usage_replicate_verify[] =
    "usage: drd replicate verify --source URLS --target URLS [--mode exact|filtered]\n"
    "          [--name NAME] [--prefix P]... [--exclude P]... [--dest-prefix P] [TLS flags]\n\n"
    "Compares source and target at the revision the target has applied: HashKV when both have\n"
    "the same compact revision, otherwise key by key. Exit 0 when equal.\n\n" TLS_FLAGS_HELP;

/* Option groups: which flags each subcommand takes. */
#define G_LIVE 1u   /* etcd only */
#define G_FILTER 2u /* prefixes */
#define G_TARGET 4u
#define G_JSON 8u
#define G_SEED 16u

enum { O_UNTIL = 1, O_LISTEN, O_JSON, O_DATADIR, O_ICLUSTER, O_IPEER, O_MEMBERS };

typedef struct parsed {
    dr_repl_opts r;
    dr_conf_job job; /* the replicate rows of the option table; its lists are ours to free */
    const char *listen;
    int64_t max_lag_ms; /* 0: no bound */
    int json;
    const char *data_dir, *icluster, *ipeer, *members_dir;
    unsigned allowed; /* bit per option group this command accepts */
} parsed;

static void parsed_free(parsed *p)
{
    free(p->job.prefixes.v);
    free(p->job.excludes.v);
}

/* The flags that are rows of the option table: a cluster's per side (--source, --source-cacert,
 * ...; --timeout and --etcd-max-recv-bytes are the same for both sides), then the replication
 * job's (the keys of a replicate job in the daemon's config). */
static const struct {
    const char *key;
    unsigned group;
} cluster_rows[] = {{"endpoints", 0}, {"cacert", 0},  {"cert", 0},
                    {"key", 0},       {"timeout", 0}, {"max_recv_bytes", 0}},
  job_rows[] = {{"name", 0},           {"mode", G_TARGET},        {"prefixes", G_FILTER},
                {"exclude", G_FILTER}, {"dest_prefix", G_FILTER}, {"max_txn_ops", G_LIVE},
                {"window", G_LIVE},    {"max_lag", G_LIVE}};

/* The commands' own flags. */
static const struct {
    int id;
    const char *name;
    int has_value;
    unsigned group;
} own_rows[] = {
    {O_UNTIL, "until-caught-up", 0, G_LIVE},
    {O_LISTEN, "status-listen", 1, G_LIVE},
    {O_JSON, "json", 0, G_JSON},
    {O_DATADIR, "data-dir", 1, G_SEED},
    {O_ICLUSTER, "initial-cluster", 1, G_SEED},
    {O_IPEER, "initial-advertise-peer-urls", 1, G_SEED},
    {O_MEMBERS, "members-dir", 1, G_SEED},
};
#define N(a) (sizeof a / sizeof a[0])

static int own_flag(void *ctx, const dr_flag *f, const char *v)
{
    parsed *p = ctx;
    switch (f->id) {
    case O_UNTIL:
        p->r.until_caught_up = 1;
        break;
    case O_LISTEN:
        p->listen = v;
        break;
    case O_JSON:
        p->json = 1;
        break;
    case O_DATADIR:
        p->data_dir = v;
        break;
    case O_ICLUSTER:
        p->icluster = v;
        break;
    case O_IPEER:
        p->ipeer = v;
        break;
    case O_MEMBERS:
        p->members_dir = v;
        break;
    }
    return 0;
}

static int parse(int argc, char **argv, const char *cmd, parsed *p)
{
    dr_repl_opts *r = &p->r;
    dr_conf_job *j = &p->job;
    dr_flag flags[2 * N(cluster_rows) + N(job_rows) + N(own_rows)];
    size_t n = 0, n_pos = 0;
    int rc = 0;
    j->max_txn_ops = 128;
    j->window = 8; /* filtered: fewer in flight, bigger batches (docs/replication.md) */
    for (int side = 0; side < 2; side++)
        for (size_t i = 0; i < N(cluster_rows); i++) {
            unsigned g = side ? G_TARGET : 0;
            int shared = i >= 4; /* --timeout, --etcd-max-recv-bytes: both sides */
            if ((rc = dr_flag_row(&flags[n++], DR_SCOPE_CLUSTER, cluster_rows[i].key,
                                  side ? "target" : "source", side ? &r->target : &r->source,
                                  shared || !g || (p->allowed & g))) < 0)
                return rc;
        }
    for (size_t i = 0; i < N(job_rows); i++)
        if ((rc = dr_flag_row(&flags[n++], DR_SCOPE_REPLICATE, job_rows[i].key, NULL, j,
                              !job_rows[i].group || (p->allowed & job_rows[i].group))) < 0)
            return rc;
    for (size_t i = 0; i < N(own_rows); i++, n++) {
        memset(&flags[n], 0, sizeof flags[n]);
        snprintf(flags[n].name, sizeof flags[n].name, "%s", own_rows[i].name);
        flags[n].id = own_rows[i].id;
        flags[n].has_value = own_rows[i].has_value;
        flags[n].allowed = (p->allowed & own_rows[i].group) != 0;
    }
    if ((rc = dr_flags_parse(argc, argv, flags, n, own_flag, p, NULL, 0, &n_pos)) < 0)
        return rc;
    if (!r->source.endpoints)
        return dr_error_set(DR_EUSAGE, "drd %s: --source is required", cmd);
    if ((p->allowed & G_TARGET) && !r->target.endpoints)
        return dr_error_set(DR_EUSAGE, "drd %s: --target is required", cmd);
    if (!j->name)
        j->name = "default";
    drd_repl_opts_of_job(j, r);
    p->max_lag_ms = j->max_lag_ms;
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
        dr_repl_metrics_job mj = {.stats = &l->stats,
                                  .name = l->name,
                                  .max_lag_ms = l->max_lag_ms,
                                  .ready = !alarm && st == DR_REPL_STREAMING &&
                                           !(l->max_lag_ms && l->stats.lag_ms > l->max_lag_ms),
                                  .alarm = alarm};
        dr_repl_metrics(&mj, 1, b);
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
        /* every reason that holds: a standby that stops answering is both reconnecting and
         * (soon) lagging, and the lag is what the bound is about */
        int64_t lag = l->stats.lag_ms;
        int lagging = l->max_lag_ms && lag > l->max_lag_ms;
        if (st == DR_REPL_STREAMING && !lagging) {
            dr_buf_printf(b, "%s\n", dr_repl_state_name(st));
            return 200;
        }
        if (st != DR_REPL_STREAMING)
            dr_buf_printf(b, "%s\n", dr_repl_state_name(st));
        if (lagging)
            dr_buf_printf(b, "lagging: %.1f s behind the source, more than --max-lag %.1f s\n",
                          (double)lag / 1000.0, (double)l->max_lag_ms / 1000.0);
        return 503;
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

static int replicate_etcd(parsed *pp)
{
    parsed p = *pp;
    int rc = 0;
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

int cmd_replicate_etcd(int argc, char **argv)
{
    parsed p = {.allowed = G_LIVE | G_FILTER | G_TARGET};
    int rc = parse(argc, argv, "replicate etcd", &p);
    if (rc == 0)
        rc = replicate_etcd(&p);
    parsed_free(&p);
    return rc;
}

static int replicate_status(parsed *pp)
{
    parsed p = *pp;
    int rc = 0;
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

int cmd_replicate_status(int argc, char **argv)
{
    parsed p = {.allowed = G_TARGET | G_JSON | G_FILTER};
    int rc = parse(argc, argv, "replicate status", &p);
    if (rc == 0)
        rc = replicate_status(&p);
    parsed_free(&p);
    return rc;
}

static int replicate_verify(parsed *pp)
{
    parsed p = *pp;
    int rc = 0;
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

int cmd_replicate_verify(int argc, char **argv)
{
    parsed p = {.allowed = G_TARGET | G_FILTER};
    int rc = parse(argc, argv, "replicate verify", &p);
    if (rc == 0)
        rc = replicate_verify(&p);
    parsed_free(&p);
    return rc;
}

static int replicate_seed(parsed *pp)
{
    parsed p = *pp;
    int rc = 0;
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

int cmd_replicate_seed(int argc, char **argv)
{
    parsed p = {.allowed = G_SEED};
    int rc = parse(argc, argv, "replicate seed", &p);
    if (rc == 0)
        rc = replicate_seed(&p);
    parsed_free(&p);
    return rc;
}
