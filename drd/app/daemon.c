/*
 * drd run: the daemon. One loop thread with a fixed tick (the caller's thread) decides what runs;
 * every job runs on a worker thread of its own and posts its result back; the status server
 * (drd/lib/http) reads the job table under the same mutex. Signal handlers only set flags:
 * SIGTERM/SIGINT drain, SIGHUP reloads.
 *
 * A scheduled job (snapshot, drill, volume push):
 *
 *     idle --(tick: a scheduled instant is due)--> running --(worker done)--> idle
 *       ^  \--(tick: instants passed unseen: down, or older than half a period)--> missed += n
 *       |                                  |
 *       |                                  +--(tick: an instant is due while running)-->
 *       |                                        running, missed += 1 (skipped, never queued)
 *       +-- the newest instant accounted for (prev) is kept in state_dir, so a restart counts
 *           the instants it slept through as missed; a run refused by the store's job lock
 *           (DR_EBUSY: the same work is under way elsewhere) is missed too, not failed
 *
 * A continuous job (replicate, segments, volume serve):
 *
 *     starting --(worker: dr_repl_run)--> running --(returns an error)--> backoff --(delay)-->
 *     starting; the error stays the job's reason on /readyz and /status until it streams again
 *
 * The daemon: running --(SIGHUP, config good)--> reloading (no new starts, continuous jobs
 * stopped) --(every worker done)--> running on the new config (counters kept by kind and name);
 * a bad config is logged, counted, and the old one keeps running. running --(SIGTERM)-->
 * draining (no new starts, continuous jobs stopped) --(every worker done, or the grace over)-->
 * exit.
 *
 * Volume jobs keep their own diagram in daemon_volume.c.
 *
 * Must never run two instances of one job at once, pile up missed runs, block the loop on I/O
 * (workers do the I/O; the loop only writes its small state files), or print a secret.
 */
#include "drd/app/cmd.h"
#include "drd/app/daemon.h"
#include "drd/app/rpo.h"
#include "drd/app/runbook.h"
#include "drd/core/core.h"
#include "drd/lib/http/http.h"
#include "restore/restore.h"
#include "snapshot/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 200
#define STATE_VERSION 1

typedef enum { J_IDLE = 0, J_RUNNING, J_BACKOFF } job_state;
static const char *const state_names[] = {"idle", "running", "backoff"};

typedef struct daemon daemon_t;

typedef struct job {
    daemon_t *d;
    dr_conf_job *cj; /* in d->cfg; stable while the job's worker runs (reloads wait) */
    dr_job_kind kind;
    int continuous;           /* replicate, segments: runs until stopped; else scheduled */
    const dr_schedule *sched; /* scheduled: cj's, or own_sched for derived jobs */
    dr_schedule own_sched;
    char name[128];
    /* loop thread only */
    int64_t prev_ms; /* newest scheduled instant accounted for (run or missed) */
    int64_t restart_at_ms;
    int run_now; /* probe, point: a first run at start, before the schedule's first instant */
    int waiting; /* due, but another memory-heavy job runs (is_heavy) */
    dr_backoff backoff;
    pthread_t thread;
    int thread_live;
    /* shared: under d->mu */
    job_state state;
    int done; /* the worker finished; the loop joins it */
    int rc;   /* the worker's result */
    char err[1024];
    int64_t next_ms, last_start_ms, last_success_ms, last_duration_ms;
    int has_run, last_rc;
    int repl_alarm; /* replicate: the alarm code its last run stopped with, until it streams */
    int64_t failures_total, missed_total, runs_total;
    char reason[1024]; /* why the job is not ready ("" when it is) */
    int64_t drill_rto_ms;
    dr_key_counts drill_keys; /* the last drill's restored keys per resource (.other -1: none) */
    dr_key_counts drill_keys_snap; /* those recorded with its snapshot (.other -1: none) */
    int64_t drill_keys_rev, drill_keys_snap_rev;
    int64_t verified_rev;        /* verify: the newest revision found identical */
    int64_t last_contact_ms;     /* probe: when the source last answered */
    int site_up;                 /* probe, peer: whether it answered the last probe */
    int peer_i;                  /* peer: index in the config's peers */
    int peer_ready;              /* peer: its /readyz was 200 (1), not (0), unknown (-1) */
    int64_t point_rev, point_ms; /* point: the store's newest restorable revision, its time */
    int64_t epoch;               /* epoch: the newest record of the failover pair */
    int64_t cluster_epoch[2];    /* epoch: each cluster's record (primary, standby; -1: none) */
    int primary_i;               /* epoch: the pair's primary by it (-1: not known yet) */
    drd_enc_keys *keys;          /* keys: the last scan's result (owned; NULL: none yet) */
    /* continuous jobs: the worker's own */
    volatile sig_atomic_t stop;
    _Atomic int in_base; /* segments: setting up or taking its base snapshot (is_heavy_running) */
    dr_repl_stats stats;
    /* snapshots, drills: the worker counts into it (atomics), the loop and /status read it */
    dr_progress progress;
    int64_t progress_logged_ms; /* loop thread only: when it last logged the progress */
    dr_vol_stats vol_st;        /* volume push: the last published copy's figures */
    int64_t since_ms;           /* when the job was first seen */
} job;

struct daemon {
    pthread_mutex_t mu;
    drd_config *cfg;
    drd_config *pending; /* a reloaded config waiting for the workers to finish */
    const char *path;
    job *jobs;
    size_t n_jobs;
    int draining;
    int64_t started_ms, reload_failures, last_reload_ms;
    char reload_error[1024];
};

static volatile sig_atomic_t hup;

static void on_hup(int sig)
{
    (void)sig;
    hup = 1;
}

/* Probes and watches (the other site's etcd and daemon, a store's newest point): frequent,
 * quiet, nothing to resume, never a reason for /readyz to fail. */
static int is_watch(dr_job_kind k)
{
    return k == DR_JOB_PROBE || k == DR_JOB_POINT || k == DR_JOB_PEER || k == DR_JOB_EPOCH;
}

/* Snapshots and drills: each holds tens of MB at its peak (the snapshot stream's flow-control
 * window, zstd's contexts, the read-back buffers); two at once were the daemon's peak (bench/
 * daemon-soak), so one waits for the other, within its lateness grace. */
static int is_heavy(dr_job_kind k)
{
    return k == DR_JOB_SNAPSHOT || k == DR_JOB_DRILL;
}

/* A heavy job that runs, or segments that set up or take their base snapshot (a full snapshot
 * when the store holds none: a drill started meanwhile would find nothing to restore, a
 * scheduled snapshot would find the store's save lock taken). Loop thread. */
static int is_heavy_running(const job *j)
{
    if (j->state != J_RUNNING)
        return 0;
    return is_heavy(j->kind) || (j->kind == DR_JOB_SEGMENTS && atomic_load(&j->in_base));
}

/* ---- job state files: <state_dir>/jobs/<kind>-<name>.state ---- */

static void state_path(const drd_config *cfg, dr_job_kind kind, const char *name, char *buf,
                       size_t cap)
{
    snprintf(buf, cap, "%s/jobs/%s-%s.state", cfg->c->state_dir, dr_job_kind_name(kind), name);
}

static void state_save(const daemon_t *d, const job *j)
{
    char path[1024], text[256];
    if (is_watch(j->kind)) /* frequent; nothing to resume */
        return;
    state_path(d->cfg, j->kind, j->name, path, sizeof path);
    int n = snprintf(text, sizeof text, "%d %" PRId64 " %" PRId64 "\n", STATE_VERSION, j->prev_ms,
                     j->last_success_ms);
    if (dr_fs_write_atomic(path, text, (size_t)n, 0600) < 0)
        dr_warn("job %s: cannot save its state: %s", j->name, dr_error_msg());
}

int drd_job_state_read(const drd_config *cfg, dr_job_kind kind, const char *name, int64_t *prev_ms,
                       int64_t *last_success_ms)
{
    char path[1024], *text = NULL;
    size_t len = 0;
    int v = 0;
    long long prev = 0, success = 0;
    state_path(cfg, kind, name, path, sizeof path);
    int rc = dr_fs_read_all(path, 4096, &text, &len);
    if (rc == 0 &&
        (sscanf(text, "%d %lld %lld", &v, &prev, &success) != 3 || v != STATE_VERSION || prev <= 0))
        rc = dr_error_set(DR_EIO, "'%s' is not a job state file", path);
    if (rc == 0) {
        *prev_ms = prev;
        *last_success_ms = success;
    }
    free(text);
    return rc;
}

static void state_load(const daemon_t *d, job *j, int64_t now)
{
    int64_t prev = 0, success = 0;
    j->prev_ms = now;
    if (drd_job_state_read(d->cfg, j->kind, j->name, &prev, &success) == 0 && prev <= now) {
        j->prev_ms = prev;
        j->last_success_ms = success;
    }
    dr_error_clear();
}

/* ---- roles: after a failover, the jobs follow the epoch (drd/app/runbook.c) ---- */

/* A cluster of the failover pair stands for the pair's primary now (snapshots and segments are
 * taken of the primary, wherever it is); any other cluster is itself. */
static int role_cluster(const drd_config *cfg, int i)
{
    const dr_conf *c = cfg->c;
    int p = -1;
    if (!c->has_failover || (i != c->failover.primary_i && i != c->failover.standby_i) ||
        drd_failover_primary(cfg, &p) < 0 || p < 0) {
        dr_error_clear();
        return i;
    }
    return p;
}

/* The failover's replicate job runs from the pair's primary now to the other side. *src and *tgt
 * get the clusters it runs from and to. */
static void role_repl_opts(const drd_config *cfg, const dr_conf_job *cj, dr_repl_opts *o, int *src,
                           int *tgt)
{
    const dr_conf *c = cfg->c;
    int p = -1;
    *src = cj->source_i;
    *tgt = cj->target_i;
    if (!c->has_failover || &c->jobs[c->failover.replicate_i] != cj ||
        drd_failover_primary(cfg, &p) < 0 || p < 0 || p == cj->source_i) {
        dr_error_clear();
        return;
    }
    dr_info("replicate %s: the epoch names %s the primary: replicating %s -> %s", cj->name,
            c->clusters[p].name, c->clusters[p].name, c->clusters[cj->source_i].name);
    drd_failover_repl_opts(cfg, p, cj->source_i, o);
    *src = p;
    *tgt = cj->source_i;
}

/* ---- workers ---- */

/* Opens the job's store (writer: needs its key unless no_encryption, when writer) and, when e
 * is not NULL, its cluster. The catalog is <state_dir>/catalog-<store>.db unless configured. */
static int open_job(job *j, int writer, dr_repo **r, dr_etcd **e)
{
    const dr_conf *c = j->d->cfg->c;
    dr_repo_opts ro;
    char cat[1024];
    drd_store_repo_opts(j->d->cfg, j->cj->store_i, &ro, cat, sizeof cat);
    ro.need_key = writer;
    int rc = dr_repo_open(&ro, r);
    if (rc == 0 && e)
        rc = dr_etcd_open(e, &c->clusters[role_cluster(j->d->cfg, j->cj->cluster_i)].etcd);
    return rc;
}

static void prune_line(void *ctx, const char *line)
{
    dr_debug("job %s: retention: %s", ((job *)ctx)->name, line);
}

static int run_snapshot(job *j, char *detail, size_t cap)
{
    dr_repo *r = NULL;
    dr_etcd *e = NULL;
    char labels[200];
    int rc = open_job(j, 1, &r, &e);
    if (rc == 0) {
        snprintf(labels, sizeof labels, "job=%s", j->name);
        dr_snapshot_save_opts so = {.compression = (dr_compress)j->cj->compression,
                                    .labels = labels,
                                    .progress = &j->progress};
        dr_manifest m;
        rc = dr_snapshot_save(r, e, &so, &m);
        if (rc == 0)
            snprintf(detail, cap, "%s at revision %" PRId64, m.id, m.rev_end);
    }
    if (rc == 0 && j->cj->has_retention) {
        int deleted = 0;
        rc = dr_snapshot_prune(r, &j->cj->retention, 0, prune_line, j, &deleted);
        if (rc == 0 && deleted)
            dr_info("job %s: retention deleted %d objects", j->name, deleted);
    }
    dr_etcd_close(e);
    dr_repo_close(r);
    return rc;
}

/* Segments until stopped: the open segment is committed on stop. */
static int run_segments(job *j)
{
    dr_repo *r = NULL;
    dr_etcd *e = NULL;
    int rc = open_job(j, 1, &r, &e);
    if (rc == 0) {
        dr_snapshot_follow_opts fo = {.compression = (dr_compress)j->cj->compression,
                                      .segment_period_ms = j->cj->segments_ms,
                                      .stop = &j->stop,
                                      .in_base = &j->in_base};
        rc = dr_snapshot_follow(r, e, &fo);
    }
    dr_etcd_close(e);
    dr_repo_close(r);
    return rc;
}

static int run_drill(job *j, char *detail, size_t cap)
{
    daemon_t *d = j->d;
    dr_repo *r = NULL;
    dr_restore_plan p = {0};
    char *report = NULL;
    int rc = open_job(j, 0, &r, NULL);
    /* the newest restorable point: what a restore after a disaster would use, the newest full
     * snapshot and every segment after it */
    if (rc == 0)
        rc = dr_restore_plan_make(r, NULL, 0, dr_wall_ms(), &p);
    dr_key_counts keys = {.other = -1};
    if (rc == 0)
        rc = dr_drill_run(r, &p, &j->progress, &keys, &report);
    char keys_line[512] = "";
    if (keys.other >= 0)
        drd_key_counts_line(&keys, 4, keys_line, sizeof keys_line);
    if (keys.other >= 0) { /* counted: the new counts replace the last drill's */
        dr_key_counts snap = {.other = -1};
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        if (dr_repo_key_counts(r, &p.base, &snap) < 0) /* none recorded (an older snapshot) */
            snap.other = -1;
        if (rc < 0) /* the drill's error stays the job's, not the lookup's */
            dr_error_set(rc, "%s", msg);
        else
            dr_error_clear();
        pthread_mutex_lock(&d->mu);
        dr_key_counts_free(&j->drill_keys);
        dr_key_counts_free(&j->drill_keys_snap);
        j->drill_keys = keys;
        j->drill_keys_snap = snap;
        j->drill_keys_rev = p.target;
        j->drill_keys_snap_rev = p.base.rev_end;
        pthread_mutex_unlock(&d->mu);
    }
    const char *rto = report ? strstr(report, "\"rto_ms\": ") : NULL;
    if (rto) {
        pthread_mutex_lock(&d->mu);
        j->drill_rto_ms = strtoll(rto + 10, NULL, 10);
        pthread_mutex_unlock(&d->mu);
        char enc[256];
        int saved = dr_error_code();
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        if (dr_drill_enc_line(report, enc, sizeof enc) < 0)
            enc[0] = 0;
        if (saved) /* the drill's error stays the job's */
            dr_error_set(saved, "%s", msg);
        else
            dr_error_clear();
        snprintf(
            detail, cap, "revision %" PRId64 " (%s + %zu segments), restore time %.1fs%s%s%s%s",
            p.target, p.base.id, p.n_segs, (double)j->drill_rto_ms / 1000.0,
            keys_line[0] ? "; keys: " : "", keys_line, enc[0] ? "; encryption keys: " : "", enc);
    }
    free(report);
    dr_restore_plan_free(&p);
    dr_repo_close(r);
    return rc;
}

/* Primary and standby compared at a revision both hold (replicate/verify.c); a difference is
 * DR_EDIVERGED naming it, which makes /readyz fail until a later comparison passes. */
static int run_verify(job *j, char *detail, size_t cap)
{
    dr_repl_opts o;
    int64_t rev = 0, nkeys = -1;
    drd_job_repl_opts(j->d->cfg, j->cj, &o);
    int rc = dr_repl_verify(&o, &rev, &nkeys);
    if (rc == 0) {
        pthread_mutex_lock(&j->d->mu);
        j->verified_rev = rev;
        pthread_mutex_unlock(&j->d->mu);
        snprintf(detail, cap, "identical at revision %" PRId64, rev);
    }
    return rc;
}

/* Whether the source (the other site's etcd) answers, within 3 s. */
static int run_probe(job *j)
{
    dr_etcd_opts o = j->d->cfg->c->clusters[j->cj->source_i].etcd;
    dr_etcd *e = NULL;
    o.timeout_ms = 3000;
    int rc = dr_etcd_open(&e, &o);
    dr_etcd_close(e);
    pthread_mutex_lock(&j->d->mu);
    j->site_up = rc == 0;
    if (rc == 0)
        j->last_contact_ms = dr_wall_ms();
    pthread_mutex_unlock(&j->d->mu);
    return rc;
}

/* Whether the other site's daemon answers /healthz within its timeout, and what its /readyz
 * says. */
static int run_peer(job *j)
{
    const dr_conf_peer *p = &j->d->cfg->c->peers[j->peer_i];
    const char *addr = p->url + strlen("http://"); /* the config checked the form */
    dr_buf body = {0};
    int code = 0, ready = -1;
    int rc = dr_http_get(addr, "/healthz", (int)p->timeout_ms, &code, &body);
    if (rc == 0 && code != 200)
        rc = dr_error_set(DR_EUNAVAILABLE, "/healthz answered %d", code);
    if (rc == 0) {
        body.len = 0;
        if (dr_http_get(addr, "/readyz", (int)p->timeout_ms, &code, &body) == 0)
            ready = code == 200;
        dr_error_clear();
    }
    dr_buf_free(&body);
    if (rc < 0)
        rc = dr_error_wrap(rc, "the other site's daemon %s", p->url);
    pthread_mutex_lock(&j->d->mu);
    j->site_up = rc == 0;
    j->peer_ready = ready;
    if (rc == 0)
        j->last_contact_ms = dr_wall_ms();
    pthread_mutex_unlock(&j->d->mu);
    return rc;
}

/* The store's newest restorable point: what a restore after a disaster gets, and its age is
 * the store's RPO right now. */
static int run_point(job *j)
{
    dr_repo *r = NULL;
    int64_t rev = 0, ms = 0;
    int rc = open_job(j, 0, &r, NULL);
    if (rc == 0)
        rc = dr_repo_sync(r, NULL);
    if (rc == 0)
        rc = dr_repo_newest_point(r, &rev, &ms);
    if (rc == 0) {
        pthread_mutex_lock(&j->d->mu);
        j->point_rev = rev;
        j->point_ms = ms;
        pthread_mutex_unlock(&j->d->mu);
    }
    dr_repo_close(r);
    return rc;
}

/* The failover pair's epoch records: which cluster is the primary now (drd_role, drd_epoch).
 * What a side that does not answer holds is not known; with neither, nothing changes. */
static int run_epoch(job *j)
{
    const dr_conf *c = j->d->cfg->c;
    int p = -1;
    int64_t epoch = 0, seen[2];
    int rc = drd_failover_roles(j->d->cfg, &p, &epoch, seen);
    pthread_mutex_lock(&j->d->mu);
    j->cluster_epoch[0] = seen[0];
    j->cluster_epoch[1] = seen[1];
    if (rc == 0 && (seen[0] >= 0 || seen[1] >= 0)) {
        j->epoch = epoch;
        j->primary_i = p;
    }
    pthread_mutex_unlock(&j->d->mu);
    if (rc == 0 && seen[0] < 0 && seen[1] < 0)
        rc = dr_error_set(DR_EUNAVAILABLE, "neither %s nor %s answers",
                          c->clusters[c->failover.primary_i].name,
                          c->clusters[c->failover.standby_i].name);
    return rc;
}

/* The encryption keys the values of the cluster a failover would promote (the pair's standby
 * now, by the epoch) need, against its EncryptionConfiguration. A missing key is a finding of a
 * scan that worked, not a failed run: /readyz says it (ready_reason) until a scan finds the key
 * offered; a scan that could not run (the cluster down, the file unreadable) fails the run. */
static int run_keys(job *j, char *detail, size_t cap)
{
    daemon_t *d = j->d;
    const dr_conf_failover *f = &d->cfg->c->failover;
    int p = -1;
    drd_enc_keys *k = calloc(1, sizeof *k);
    int rc = k ? drd_failover_primary(d->cfg, &p) : dr_error_set(DR_ENOMEM, "out of memory");
    if (rc == 0)
        rc = drd_enc_keys_check(d->cfg, p == f->standby_i ? f->primary_i : f->standby_i, k);
    if (rc == DR_ENOTFOUND && k->missing) { /* the finding, said by /readyz and the log */
        dr_warn("job keys %s: %s", j->name, dr_error_msg());
        rc = 0;
        dr_error_clear();
    }
    if (rc == 0) { /* counted: the new counts replace the last scan's */
        char line[400];
        dr_k8s_enc_counts_line(&k->c, line, sizeof line);
        snprintf(detail, cap, "%s at revision %" PRId64 ": %s; %" PRId64 " values read; %s",
                 k->cluster, k->rev, line, k->c.values,
                 !k->compared ? "not compared (failover.encryption_config is not set)"
                 : k->missing ? "SOME ARE MISSING from its EncryptionConfiguration"
                              : "all offered by its EncryptionConfiguration");
        pthread_mutex_lock(&d->mu);
        free(j->keys);
        j->keys = k;
        k = NULL;
        pthread_mutex_unlock(&d->mu);
    }
    free(k);
    return rc;
}

static void *worker(void *arg)
{
    job *j = arg;
    daemon_t *d = j->d;
    char detail[1024] = "";
    int rc;
    dr_error_clear();
    if (j->kind == DR_JOB_REPLICATE) {
        dr_repl_opts o;
        int src, tgt;
        char path[1024];
        drd_rpo_recorder *rec = NULL;
        drd_job_repl_opts(d->cfg, j->cj, &o);
        role_repl_opts(d->cfg, j->cj, &o, &src, &tgt);
        o.stop = &j->stop;
        /* the loss window an emergency failover records (a recorder that cannot start costs
         * only that record: replication goes on) */
        drd_rpo_path(d->cfg, j->cj->name, path, sizeof path);
        if (drd_rpo_start(path, &o.source, d->cfg->c->clusters[src].name,
                          d->cfg->c->clusters[tgt].name, &j->stats, &rec) < 0) {
            dr_warn("replicate %s: not recording its loss window: %s", j->name, dr_error_msg());
            dr_error_clear();
        }
        rc = dr_repl_run(&o, &j->stats);
        drd_rpo_stop(rec);
        if (rc == 0 && !j->stop)
            rc = dr_error_set(DR_EGENERIC, "replication ended by itself");
    } else if (j->kind == DR_JOB_SEGMENTS) {
        rc = run_segments(j);
        if (rc == 0 && !j->stop)
            rc = dr_error_set(DR_EGENERIC, "segments ended by itself");
    } else if (j->kind == DR_JOB_VERIFY) {
        rc = run_verify(j, detail, sizeof detail);
    } else if (j->kind == DR_JOB_PROBE) {
        rc = run_probe(j);
    } else if (j->kind == DR_JOB_POINT) {
        rc = run_point(j);
    } else if (j->kind == DR_JOB_PEER) {
        rc = run_peer(j);
    } else if (j->kind == DR_JOB_EPOCH) {
        rc = run_epoch(j);
    } else if (j->kind == DR_JOB_KEYS) {
        rc = run_keys(j, detail, sizeof detail);
    } else if (j->kind == DR_JOB_VOLUME && j->continuous) {
        rc = drd_volume_serve(j->cj, &j->stop);
        if (rc == 0 && !j->stop)
            rc = dr_error_set(DR_EGENERIC, "volume serve ended by itself");
    } else if (j->kind == DR_JOB_VOLUME) {
        dr_vol_stats st;
        rc = drd_volume_push(j->cj, &j->progress, &st, detail, sizeof detail);
        if (rc == 0) {
            pthread_mutex_lock(&d->mu);
            j->vol_st = st;
            pthread_mutex_unlock(&d->mu);
        }
    } else if (j->kind == DR_JOB_SNAPSHOT) {
        rc = run_snapshot(j, detail, sizeof detail);
    } else {
        rc = run_drill(j, detail, sizeof detail);
    }
    dr_progress_end(&j->progress);
    pthread_mutex_lock(&d->mu);
    j->rc = rc;
    snprintf(j->err, sizeof j->err, "%s", rc < 0 ? dr_error_msg() : detail);
    j->done = 1;
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void job_start(job *j, int64_t now)
{
    daemon_t *d = j->d;
    pthread_mutex_lock(&d->mu);
    j->state = J_RUNNING;
    j->done = 0;
    j->last_start_ms = now;
    j->runs_total++;
    j->stop = 0;
    atomic_store(&j->in_base, j->kind == DR_JOB_SEGMENTS); /* until the follow knows its base */
    pthread_mutex_unlock(&d->mu);
    dr_log(is_watch(j->kind) ? DR_LOG_DEBUG : DR_LOG_INFO, "job %s %s: started",
           dr_job_kind_name(j->kind), j->name);
    if (pthread_create(&j->thread, NULL, worker, j) != 0) {
        pthread_mutex_lock(&d->mu);
        j->rc = dr_error_set(DR_ENOMEM, "cannot start a thread");
        snprintf(j->err, sizeof j->err, "%s", dr_error_msg());
        j->done = 1;
        pthread_mutex_unlock(&d->mu);
        return;
    }
    j->thread_live = 1;
}

/* The loop's side of a finished worker. */
static void job_finish(job *j, int64_t now)
{
    daemon_t *d = j->d;
    if (j->thread_live)
        pthread_join(j->thread, NULL);
    j->thread_live = 0;
    pthread_mutex_lock(&d->mu);
    int rc = j->rc;
    if (rc == DR_EBUSY && !j->continuous) {
        /* the store's lock for this work is held (segments starting with a full snapshot, or
         * another daemon): the run did not happen, which is a missed run, not a failure */
        j->state = J_IDLE;
        j->missed_total++;
        dr_warn("job %s %s: run skipped (missed): %s", dr_job_kind_name(j->kind), j->name, j->err);
        pthread_mutex_unlock(&d->mu);
        return;
    }
    /* a probe logs only when the site's state changes (it runs every few seconds) */
    int quiet = is_watch(j->kind) && j->has_run && (rc < 0) == (j->last_rc < 0);
    j->has_run = 1;
    j->last_rc = rc;
    if (j->kind == DR_JOB_REPLICATE) /* the worker is done: its state is final */
        j->repl_alarm = j->stats.state == DR_REPL_ALARM ? rc : 0;
    j->last_duration_ms = now - j->last_start_ms;
    if (rc == 0) {
        j->last_success_ms = now;
        j->reason[0] = 0;
    } else {
        j->failures_total++;
        snprintf(j->reason, sizeof j->reason, "%s", j->err);
    }
    j->state = J_IDLE;
    if (j->continuous && !d->draining && !d->pending) {
        /* a run that streamed for a while earns a fresh backoff */
        if (now - j->last_start_ms > 60000)
            dr_backoff_reset(&j->backoff);
        int64_t delay = dr_backoff_next(&j->backoff);
        j->restart_at_ms = now + delay;
        j->state = J_BACKOFF;
        dr_err("job %s %s: %s (restarting in %.1fs)", dr_job_kind_name(j->kind), j->name,
               j->err[0] ? j->err : dr_error_desc(rc), (double)delay / 1000.0);
    } else if (rc < 0 && !quiet) {
        dr_err("job %s %s: failed after %.1fs: %s", dr_job_kind_name(j->kind), j->name,
               (double)j->last_duration_ms / 1000.0, j->err);
    } else if (rc == 0 && !quiet) {
        dr_info("job %s %s: done in %.1fs%s%s", dr_job_kind_name(j->kind), j->name,
                (double)j->last_duration_ms / 1000.0, !j->continuous && j->err[0] ? ": " : "",
                !j->continuous ? j->err : "");
    }
    pthread_mutex_unlock(&d->mu);
    if (!j->continuous)
        state_save(d, j);
    /* a snapshot or drill leaves its buffers in the heap free but mapped: hand them back, so
     * the daemon's RSS stays what its jobs need now, not the sum of what they ever used */
    if (!is_watch(j->kind))
        malloc_trim(0);
}

/* A long job logs how far it is every 10 s (the worker counts, the loop reads atomics). */
static void progress_log(job *j)
{
    dr_progress_view v;
    int64_t mono = dr_mono_ms();
    if (!dr_progress_read(&j->progress, mono, &v)) {
        j->progress_logged_ms = 0;
        return;
    }
    if (!j->progress_logged_ms)
        j->progress_logged_ms = mono;
    if (mono - j->progress_logged_ms < 10000)
        return;
    char text[400];
    dr_progress_format(&v, text, sizeof text);
    dr_info("job %s %s: %s", dr_job_kind_name(j->kind), j->name, text);
    j->progress_logged_ms = mono;
}

/* One tick of one job. */
static void job_tick(job *j, int64_t now)
{
    daemon_t *d = j->d;
    int done;
    progress_log(j);
    pthread_mutex_lock(&d->mu);
    done = j->state == J_RUNNING && j->done;
    pthread_mutex_unlock(&d->mu);
    if (done)
        job_finish(j, now);
    int stopping = d->draining || d->pending;
    if (j->continuous) {
        if (stopping)
            j->stop = 1;
        else if (j->state == J_IDLE || (j->state == J_BACKOFF && now >= j->restart_at_ms))
            job_start(j, now);
        return;
    }
    if (j->run_now && j->state == J_IDLE && !stopping) {
        j->run_now = 0;
        job_start(j, now);
    }
    /* scheduled: an instant noticed late (a slow disk under the state file's fsync, a loaded
     * machine) still runs when it is at most half a period late (between four ticks and a
     * minute); older ones are missed */
    dr_schedule_tick k;
    if (dr_schedule_catch_up(j->sched, j->prev_ms, now, 60000, &k) < 0) {
        pthread_mutex_lock(&d->mu);
        snprintf(j->reason, sizeof j->reason, "%s", dr_error_msg());
        pthread_mutex_unlock(&d->mu);
        return;
    }
    if (k.due_ms) {
        int64_t grace = (k.next_ms - k.due_ms) / 2;
        grace = grace < 4 * TICK_MS ? 4 * TICK_MS : grace > 60000 ? 60000 : grace;
        if (now - k.due_ms > grace) {
            k.due_ms = 0;
            k.missed++;
        }
    }
    int busy = j->state == J_RUNNING;
    const job *heavy = NULL; /* another snapshot or drill that runs (the loop's own state) */
    for (size_t i = 0; k.due_ms && !busy && !stopping && is_heavy(j->kind) && i < d->n_jobs; i++)
        if (&d->jobs[i] != j && is_heavy_running(&d->jobs[i]))
            heavy = &d->jobs[i];
    pthread_mutex_lock(&d->mu);
    j->next_ms = k.next_ms;
    if (heavy) { /* the instant stays due: accounted once it runs, or missed when too late */
        if (!j->waiting)
            dr_info("job %s %s: due; waits for %s %s to finish%s (one snapshot or drill at a time)",
                    dr_job_kind_name(j->kind), j->name, dr_job_kind_name(heavy->kind), heavy->name,
                    heavy->kind == DR_JOB_SEGMENTS ? " its base snapshot" : "");
        j->waiting = 1;
        pthread_mutex_unlock(&d->mu);
        return;
    }
    if (k.newest_ms) {
        int64_t missed = k.missed + ((k.due_ms && (busy || stopping)) ? 1 : 0);
        j->missed_total += missed;
        if (missed)
            dr_warn("job %s %s: %" PRId64 " run%s missed (%s)", dr_job_kind_name(j->kind), j->name,
                    missed, missed == 1 ? "" : "s",
                    busy         ? "the previous run was still going"
                    : stopping   ? "the daemon is stopping or reloading"
                    : j->waiting ? "another snapshot or drill ran until it was too late"
                                 : "the daemon was not running at the time");
        j->waiting = 0;
    }
    pthread_mutex_unlock(&d->mu);
    if (k.newest_ms) {
        j->prev_ms = k.newest_ms;
        if (k.due_ms && !busy && !stopping)
            job_start(j, now);
        else
            state_save(d, j);
    }
}

/* ---- the status server ---- */

static void vol_state(const job *j, drd_volume_state *v)
{
    *v = (drd_volume_state){.cj = j->cj,
                            .has_run = j->has_run,
                            .last_rc = j->last_rc,
                            .last_success_ms = j->last_success_ms,
                            .since_ms = j->since_ms,
                            .missed_total = j->missed_total,
                            .st = j->vol_st};
}

/* The drd_volume_* metrics of the push jobs (daemon_volume.c). */
static void volume_metrics(daemon_t *d, dr_buf *b)
{
    drd_volume_state *v = calloc(d->n_jobs + 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; v && i < d->n_jobs; i++)
        if (d->jobs[i].kind == DR_JOB_VOLUME && !d->jobs[i].continuous)
            vol_state(&d->jobs[i], &v[n++]);
    if (v)
        drd_volume_metrics(v, n, dr_wall_ms(), b);
    free(v);
}

static void json_str(dr_buf *b, const char *key, const char *v)
{
    dr_buf_printf(b, ",\"%s\":", key);
    dr_buf_json_str(b, v, strlen(v));
}

static int ready_reason(const daemon_t *d, const job *j, char *buf, size_t cap)
{
    if (j->kind == DR_JOB_REPLICATE) {
        int st = j->stats.state;
        if (j->state != J_RUNNING || st != DR_REPL_STREAMING) {
            snprintf(buf, cap, "replicate %s: %s%s%s", j->name,
                     j->state == J_RUNNING ? dr_repl_state_name(st) : state_names[j->state],
                     j->reason[0] ? ": " : "", j->reason);
            return 0;
        }
        if (j->cj->max_lag_ms && j->stats.lag_ms > j->cj->max_lag_ms) {
            snprintf(buf, cap, "replicate %s: lagging %.1fs behind (max_lag %.1fs)", j->name,
                     (double)j->stats.lag_ms / 1000.0, (double)j->cj->max_lag_ms / 1000.0);
            return 0;
        }
        return 1;
    }
    (void)d;
    if (is_watch(j->kind)) /* for alerting, not readiness */
        return 1;
    if ((j->kind == DR_JOB_SEGMENTS || j->kind == DR_JOB_VOLUME) && j->continuous &&
        j->state != J_RUNNING) {
        snprintf(buf, cap, "%s %s: %s%s%s", dr_job_kind_name(j->kind), j->name,
                 state_names[j->state], j->reason[0] ? ": " : "", j->reason);
        return 0;
    }
    if (j->has_run && j->last_rc < 0 && !j->continuous) {
        snprintf(buf, cap, "%s %s: last run failed: %s", dr_job_kind_name(j->kind), j->name,
                 j->reason);
        return 0;
    }
    if (j->kind == DR_JOB_KEYS && j->keys && j->keys->missing) { /* the daemon's alarm */
        size_t n = (size_t)snprintf(buf, cap, "%s %s: ", dr_job_kind_name(j->kind), j->name);
        drd_enc_keys_missing(j->keys, buf + (n < cap ? n : cap), n < cap ? cap - n : 0);
        return 0;
    }
    return 1;
}

/* drd_drill_keys{name,resource}: the last drill's restored keys per resource; at most
 * DRILL_KEYS_SERIES series per job (the largest; the rest in resource="other"), so a cluster with
 * hundreds of resource types does not flood the monitoring system. */
#define DRILL_KEYS_SERIES 64

static void drill_keys_metrics(daemon_t *d, dr_buf *b)
{
    dr_buf_printf(b,
                  "# HELP drd_drill_keys Keys per Kubernetes resource (/registry/<resource>/) "
                  "in the last drill's restored etcd; at most %d resources per job, the "
                  "smaller ones and keys outside /registry/ as \"(other)\".\n"
                  "# TYPE drd_drill_keys gauge\n",
                  DRILL_KEYS_SERIES);
    for (size_t i = 0; i < d->n_jobs; i++) {
        const job *j = &d->jobs[i];
        if (j->kind != DR_JOB_DRILL || j->drill_keys.other < 0)
            continue;
        size_t n = j->drill_keys.n;
        dr_key_count *v = drd_key_counts_sorted(&j->drill_keys);
        if (!v)
            continue;
        int64_t other = j->drill_keys.other;
        for (size_t k = 0; k < n; k++) {
            if (k >= DRILL_KEYS_SERIES - 1) {
                other += v[k].n;
                continue;
            }
            dr_buf_printf(b, "drd_drill_keys{name=\"%s\",resource=\"%s\"} %" PRId64 "\n", j->name,
                          v[k].name, v[k].n);
        }
        dr_buf_printf(b, "drd_drill_keys{name=\"%s\",resource=\"(other)\"} %" PRId64 "\n", j->name,
                      other);
        free(v);
    }
}

/* The other site: its etcd (probe jobs, label cluster) and its daemon (peer jobs, label site).
 * Each family's lines stay together, as the text format wants. */
static void render_site_metrics(daemon_t *d, dr_buf *b)
{
    static const char *const help[] = {
        "# HELP drd_site_up 1 when the other site answered the last probe: its etcd (label "
        "cluster: a replication source) or its daemon (label site: /healthz).\n"
        "# TYPE drd_site_up gauge\n",
        "# HELP drd_site_last_contact_seconds Seconds since it last answered (-1: never since "
        "start).\n# TYPE drd_site_last_contact_seconds gauge\n",
        "# HELP drd_site_ready 1 when the other site's daemon answered /readyz with 200 (0: 503, "
        "or no answer).\n# TYPE drd_site_ready gauge\n"};
    for (int m = 0; m < 3; m++) {
        int header = 0;
        for (size_t i = 0; i < d->n_jobs; i++) {
            const job *j = &d->jobs[i];
            if ((j->kind != DR_JOB_PROBE || m == 2) && j->kind != DR_JOB_PEER)
                continue;
            if (!header++)
                dr_buf_printf(b, "%s", help[m]);
            const char *label = j->kind == DR_JOB_PEER ? "site" : "cluster";
            const char *name =
                j->kind == DR_JOB_PEER ? j->name : d->cfg->c->clusters[j->cj->source_i].name;
            if (m == 0)
                dr_buf_printf(b, "drd_site_up{%s=\"%s\"} %d\n", label, name, j->site_up);
            else if (m == 1)
                dr_buf_printf(b, "drd_site_last_contact_seconds{%s=\"%s\"} %.3f\n", label, name,
                              j->last_contact_ms
                                  ? (double)(dr_wall_ms() - j->last_contact_ms) / 1000.0
                                  : -1.0);
            else
                dr_buf_printf(b, "drd_site_ready{site=\"%s\"} %d\n", name,
                              j->site_up && j->peer_ready == 1);
        }
    }
}

/* The failover pair (from the epoch and keys jobs; none without a failover section): the epoch,
 * each cluster's role by it, the keys a promotion needs. */
static void failover_metrics(daemon_t *d, dr_buf *b)
{
    const dr_conf *c = d->cfg->c;
    for (size_t i = 0; i < d->n_jobs; i++) {
        const job *j = &d->jobs[i];
        if (j->kind == DR_JOB_KEYS)
            drd_enc_keys_metrics(j->keys, b);
        if (j->kind != DR_JOB_EPOCH || j->primary_i < 0)
            continue;
        const int ci[2] = {c->failover.primary_i, c->failover.standby_i};
        dr_buf_printf(b, "# HELP drd_epoch The newest fencing epoch the failover pair's clusters "
                         "hold (/drd/epoch; 0: none recorded), read every 10 s.\n"
                         "# TYPE drd_epoch gauge\n");
        dr_buf_printf(b, "drd_epoch %" PRId64 "\n", j->epoch);
        dr_buf_printf(b, "# HELP drd_cluster_epoch The epoch record each cluster of the pair holds "
                         "(no series while it does not answer).\n"
                         "# TYPE drd_cluster_epoch gauge\n");
        for (int k = 0; k < 2; k++)
            if (j->cluster_epoch[k] >= 0)
                dr_buf_printf(b, "drd_cluster_epoch{cluster=\"%s\"} %" PRId64 "\n",
                              c->clusters[ci[k]].name, j->cluster_epoch[k]);
        dr_buf_printf(b, "# HELP drd_role 1 for the role each cluster of the failover pair has by "
                         "the newest epoch, 0 for the other.\n# TYPE drd_role gauge\n");
        for (int k = 0; k < 2; k++)
            for (int r = 0; r < 2; r++)
                dr_buf_printf(b, "drd_role{cluster=\"%s\",role=\"%s\"} %d\n",
                              c->clusters[ci[k]].name, r ? "standby" : "primary",
                              (ci[k] == j->primary_i) == !r);
    }
}

/* drd_runbook_last_*: the newest runbook run (drd/app/runbook.c; the one drd status shows). A
 * figure not known (an emergency's RPO before the old primary is read, a failback's RTO) has no
 * series: absent, not a made-up number. */
static void runbook_metrics(daemon_t *d, dr_buf *b)
{
    drd_runbook_figures f;
    if (!d->cfg->c->has_failover || drd_runbook_figures_get(d->cfg, &f) < 0) {
        dr_error_clear();
        return;
    }
    dr_buf_printf(b,
                  "# HELP drd_runbook_last_info The newest runbook run (the active one, else "
                  "the last): its id, operation, status and roles; always 1.\n"
                  "# TYPE drd_runbook_last_info gauge\n"
                  "drd_runbook_last_info{run=\"%s\",operation=\"%s\",status=\"%s\","
                  "old_primary=\"%s\",new_primary=\"%s\"} 1\n"
                  "# HELP drd_runbook_last_epoch The epoch it raised (failback: kept).\n"
                  "# TYPE drd_runbook_last_epoch gauge\ndrd_runbook_last_epoch %" PRId64 "\n"
                  "# HELP drd_runbook_last_start_timestamp_seconds When it started.\n"
                  "# TYPE drd_runbook_last_start_timestamp_seconds gauge\n"
                  "drd_runbook_last_start_timestamp_seconds %.3f\n",
                  f.id, f.operation, f.status, f.old_primary, f.new_primary, f.epoch,
                  (double)f.started_ms / 1000.0);
    static const struct {
        const char *name, *help;
        int seconds;
    } m[] = {
        {"drd_runbook_last_finish_timestamp_seconds",
         "When it ended (done, failed or aborted); no series while it runs.", 1},
        {"drd_runbook_last_rpo_revisions",
         "The revisions the promotion lost; no series while not known.", 0},
        {"drd_runbook_last_rpo_seconds",
         "The writes' time span the promotion lost; no series while not known.", 1},
        {"drd_runbook_last_rto_seconds",
         "From its start to the end of the promotion; no series without one.", 1},
    };
    const int64_t v[] = {f.finished_ms ? f.finished_ms : -1, f.rpo_revs, f.rpo_ms, f.rto_ms};
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
        dr_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", m[k].name, m[k].help, m[k].name);
        if (v[k] >= 0 && m[k].seconds)
            dr_buf_printf(b, "%s %.3f\n", m[k].name, (double)v[k] / 1000.0);
        else if (v[k] >= 0)
            dr_buf_printf(b, "%s %" PRId64 "\n", m[k].name, v[k]);
    }
}

static void render_metrics(daemon_t *d, dr_buf *b)
{
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"drd_job_last_start_timestamp_seconds", "gauge", "When the job's last run started."},
        {"drd_job_last_success_timestamp_seconds", "gauge",
         "When the job last finished successfully."},
        {"drd_job_last_duration_seconds", "gauge", "How long the job's last finished run took."},
        {"drd_job_last_result", "gauge",
         "The last finished run's result: 0 ok, else drd's error number (docs/error-codes.md)."},
        {"drd_job_running", "gauge", "1 while the job runs."},
        {"drd_job_runs_total", "counter", "Runs started."},
        {"drd_job_failures_total", "counter", "Runs that failed."},
        {"drd_job_missed_runs_total", "counter",
         "Scheduled runs skipped: due while the previous run still ran, or while the daemon was "
         "down or stopping."},
        {"drd_job_next_run_timestamp_seconds", "gauge", "When the job runs next (scheduled)."},
        {"drd_job_interval_seconds", "gauge",
         "The schedule's period (scheduled jobs: from the next run to the one after it; label "
         "store on snapshot jobs), the bound alerting compares against."},
    };
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
        dr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
                      m[k].type);
        for (size_t i = 0; i < d->n_jobs; i++) {
            const job *j = &d->jobs[i];
            double v = 0;
            switch (k) {
            case 0:
                v = (double)j->last_start_ms / 1000.0;
                break;
            case 1:
                v = (double)j->last_success_ms / 1000.0;
                break;
            case 2:
                v = (double)j->last_duration_ms / 1000.0;
                break;
            case 3:
                v = -j->last_rc;
                break;
            case 4:
                v = j->state == J_RUNNING;
                break;
            case 5:
                v = (double)j->runs_total;
                break;
            case 6:
                v = (double)j->failures_total;
                break;
            case 7:
                v = (double)j->missed_total;
                break;
            case 8:
                if (j->continuous)
                    continue;
                v = (double)j->next_ms / 1000.0;
                break;
            case 9: {
                int64_t after = 0;
                if (j->continuous || !j->next_ms || dr_schedule_next(j->sched, j->next_ms, &after))
                    continue;
                v = (double)(after - j->next_ms) / 1000.0;
                if (j->kind == DR_JOB_SNAPSHOT) { /* joins drd_store_newest_age_seconds{store} */
                    dr_buf_printf(b, "%s{kind=\"%s\",name=\"%s\",store=\"%s\"} %.3f\n", m[k].name,
                                  dr_job_kind_name(j->kind), j->name,
                                  d->cfg->c->stores[j->cj->store_i].name, v);
                    continue;
                }
                break;
            }
            }
            dr_buf_printf(b, "%s{kind=\"%s\",name=\"%s\"} %.3f\n", m[k].name,
                          dr_job_kind_name(j->kind), j->name, v);
        }
    }
    dr_buf_printf(b, "# HELP drd_drill_rto_seconds The last drill's measured restore time.\n"
                     "# TYPE drd_drill_rto_seconds gauge\n");
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].kind == DR_JOB_DRILL && d->jobs[i].has_run)
            dr_buf_printf(b, "drd_drill_rto_seconds{name=\"%s\"} %.3f\n", d->jobs[i].name,
                          (double)d->jobs[i].drill_rto_ms / 1000.0);
    drill_keys_metrics(d, b);
    dr_buf_printf(b, "# HELP drd_replicate_verified_revision The newest revision found identical "
                     "on primary and standby.\n# TYPE drd_replicate_verified_revision gauge\n");
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].kind == DR_JOB_VERIFY)
            dr_buf_printf(b, "drd_replicate_verified_revision{name=\"%s\"} %" PRId64 "\n",
                          d->jobs[i].name, d->jobs[i].verified_rev);
    render_site_metrics(d, b);
    failover_metrics(d, b);
    runbook_metrics(d, b);
    dr_buf_printf(b, "# HELP drd_store_newest_revision The store's newest restorable revision "
                     "(a full snapshot and the segments after it).\n"
                     "# TYPE drd_store_newest_revision gauge\n"
                     "# HELP drd_store_newest_age_seconds Age of that point: the store's RPO now.\n"
                     "# TYPE drd_store_newest_age_seconds gauge\n");
    for (size_t i = 0; i < d->n_jobs; i++) {
        const job *j = &d->jobs[i];
        if (j->kind != DR_JOB_POINT || !j->point_ms)
            continue;
        const char *st = d->cfg->c->stores[j->cj->store_i].name;
        dr_buf_printf(b, "drd_store_newest_revision{store=\"%s\"} %" PRId64 "\n", st, j->point_rev);
        dr_buf_printf(b, "drd_store_newest_age_seconds{store=\"%s\"} %.3f\n", st,
                      (double)(dr_wall_ms() - j->point_ms) / 1000.0);
    }
    dr_buf_printf(b,
                  "# HELP drd_config_reload_failures_total SIGHUP reloads refused (bad config).\n"
                  "# TYPE drd_config_reload_failures_total counter\n"
                  "drd_config_reload_failures_total %" PRId64 "\n"
                  "# HELP drd_start_timestamp_seconds When the daemon started.\n"
                  "# TYPE drd_start_timestamp_seconds gauge\n"
                  "drd_start_timestamp_seconds %.3f\n",
                  d->reload_failures, (double)d->started_ms / 1000.0);
    dr_repl_metrics_job *mj = calloc(d->n_jobs + 1, sizeof *mj);
    size_t n = 0;
    for (size_t i = 0; mj && i < d->n_jobs; i++) {
        const job *j = &d->jobs[i];
        char why[8];
        if (j->kind != DR_JOB_REPLICATE)
            continue;
        mj[n++] =
            (dr_repl_metrics_job){.stats = &j->stats,
                                  .name = j->name,
                                  .max_lag_ms = j->cj->max_lag_ms,
                                  .ready = ready_reason(d, j, why, sizeof why),
                                  .alarm = j->stats.state != DR_REPL_STREAMING ? j->repl_alarm : 0};
    }
    if (mj)
        dr_repl_metrics(mj, n, b);
    free(mj);
}

/* The failover pair's roles by the epoch job: ,"failover":{...} of /status (null: no failover
 * section, or not read yet), or the line "roles: ..." of drd status (none then). */
static void roles(daemon_t *d, dr_buf *b, int json)
{
    const dr_conf *c = d->cfg->c;
    const job *j = NULL;
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].kind == DR_JOB_EPOCH && d->jobs[i].primary_i >= 0)
            j = &d->jobs[i];
    if (!j) {
        dr_buf_printf(b, json ? ",\"failover\":null" : "");
        return;
    }
    const int ci[2] = {c->failover.primary_i, c->failover.standby_i};
    if (json) {
        dr_buf_printf(b, ",\"failover\":{\"epoch\":%" PRId64, j->epoch);
        json_str(b, "primary", c->clusters[j->primary_i].name);
        dr_buf_printf(b, ",\"clusters\":[");
    } else
        dr_buf_printf(b, "roles (epoch %" PRId64 "):", j->epoch);
    for (int k = 0; k < 2; k++) {
        const char *name = c->clusters[ci[k]].name;
        const char *role = ci[k] == j->primary_i ? "primary" : "standby";
        char e[32] = "null";
        if (j->cluster_epoch[k] >= 0)
            snprintf(e, sizeof e, "%" PRId64, j->cluster_epoch[k]);
        if (json) {
            dr_buf_printf(b, "%s{\"name\":", k ? "," : "");
            dr_buf_json_str(b, name, strlen(name));
            dr_buf_printf(b, ",\"role\":\"%s\",\"epoch\":%s}", role, e);
        } else if (j->cluster_epoch[k] >= 0)
            dr_buf_printf(b, "%s %s %s (holds epoch %s)", k ? "," : "", name, role, e);
        else
            dr_buf_printf(b, "%s %s %s (DOES NOT ANSWER)", k ? "," : "", name, role);
    }
    dr_buf_printf(b, json ? "]}" : "\n");
}

static void render_status(daemon_t *d, dr_buf *b)
{
    dr_buf_printf(b, "{\"config\":");
    dr_buf_json_str(b, d->path, strlen(d->path));
    dr_buf_printf(b, ",\"state\":\"%s\",\"started\":%" PRId64 ",\"reload_failures\":%" PRId64,
                  d->draining  ? "draining"
                  : d->pending ? "reloading"
                               : "running",
                  d->started_ms / 1000, d->reload_failures);
    if (d->reload_error[0])
        json_str(b, "reload_error", d->reload_error);
    roles(d, b, 1);
    dr_buf_printf(b, ",\"jobs\":[");
    for (size_t i = 0; i < d->n_jobs; i++) {
        const job *j = &d->jobs[i];
        char why[2048];
        dr_buf_printf(b, "%s{\"name\":", i ? "," : "");
        dr_buf_json_str(b, j->name, strlen(j->name));
        dr_buf_printf(b,
                      ",\"kind\":\"%s\",\"state\":\"%s\",\"runs\":%" PRId64 ",\"failures\":%" PRId64
                      ",\"missed\":%" PRId64
                      ",\"last_start\":%.3f,\"last_success\":%.3f,\"last_duration\":%.3f,"
                      "\"last_result\":\"%s\"",
                      dr_job_kind_name(j->kind), state_names[j->state], j->runs_total,
                      j->failures_total, j->missed_total, (double)j->last_start_ms / 1000.0,
                      (double)j->last_success_ms / 1000.0, (double)j->last_duration_ms / 1000.0,
                      j->has_run ? dr_error_name(j->last_rc) : "");
        if (!j->continuous) {
            dr_buf_printf(b, ",\"next_run\":%.3f", (double)j->next_ms / 1000.0);
            json_str(b, "schedule", j->sched->text);
        }
        if (j->kind == DR_JOB_REPLICATE)
            dr_buf_printf(b,
                          ",\"replication\":{\"state\":\"%s\",\"source_revision\":%" PRId64
                          ",\"applied_revision\":%" PRId64 ",\"lag_seconds\":%.3f}",
                          dr_repl_state_name(j->stats.state), (int64_t)j->stats.source_revision,
                          (int64_t)j->stats.applied_revision, (double)j->stats.lag_ms / 1000.0);
        if (j->kind == DR_JOB_VERIFY)
            dr_buf_printf(b, ",\"verified_revision\":%" PRId64, j->verified_rev);
        if (j->kind == DR_JOB_KEYS && j->keys)
            drd_enc_keys_json(j->keys, b);
        if (j->kind == DR_JOB_DRILL && j->drill_keys.other >= 0) {
            dr_buf_printf(b,
                          ",\"keys\":{\"revision\":%" PRId64 ",\"restored\":", j->drill_keys_rev);
            dr_key_counts_json(&j->drill_keys, b);
            dr_buf_printf(
                b, ",\"snapshot_revision\":%" PRId64 ",\"snapshot\":", j->drill_keys_snap_rev);
            if (j->drill_keys_snap.other >= 0)
                dr_key_counts_json(&j->drill_keys_snap, b);
            else
                dr_buf_printf(b, "null");
            dr_buf_printf(b, "}");
        }
        if (j->kind == DR_JOB_POINT)
            dr_buf_printf(
                b, ",\"store\":\"%s\",\"newest_revision\":%" PRId64 ",\"newest_time\":%.3f",
                d->cfg->c->stores[j->cj->store_i].name, j->point_rev, (double)j->point_ms / 1000.0);
        if (j->kind == DR_JOB_PROBE || j->kind == DR_JOB_PEER)
            dr_buf_printf(b, ",\"site_up\":%s,\"last_contact\":%.3f", j->site_up ? "true" : "false",
                          (double)j->last_contact_ms / 1000.0);
        if (j->kind == DR_JOB_VOLUME) {
            drd_volume_state v;
            vol_state(j, &v);
            drd_volume_json(&v, dr_wall_ms(), b);
        }
        dr_progress_view pv;
        if (j->state == J_RUNNING && dr_progress_read(&j->progress, dr_mono_ms(), &pv)) {
            dr_buf_printf(b, ",\"progress\":");
            dr_progress_json(&pv, b);
        }
        if (j->kind == DR_JOB_PEER) {
            json_str(b, "url", d->cfg->c->peers[j->peer_i].url);
            dr_buf_printf(b, ",\"site_ready\":%s",
                          j->peer_ready < 0 ? "null"
                          : j->peer_ready   ? "true"
                                            : "false");
        }
        if (!ready_reason(d, j, why, sizeof why))
            json_str(b, "not_ready", why);
        else if (j->err[0] && !j->continuous)
            json_str(b, "last_detail", j->err);
        dr_buf_printf(b, "}");
    }
    dr_buf_printf(b, "],\"runbook\":"); /* the newest failover run (drd/app/runbook.c) */
    drd_runbook_status(d->cfg, b, 1);
    dr_buf_printf(b, "}\n");
}

/* "2026-12-02T08:00:00Z (41s ago)" or "-". */
static void when(char *buf, size_t cap, int64_t ms, int64_t now)
{
    if (!ms) {
        snprintf(buf, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char iso[32];
    gmtime_r(&t, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int64_t s = (now - ms) / 1000;
    snprintf(buf, cap, "%s (%s%" PRId64 "s%s)", iso, s < 0 ? "in " : "", s < 0 ? -s : s,
             s < 0 ? "" : " ago");
}

/* /status.txt: what drd status prints. */
static void render_text(daemon_t *d, dr_buf *b)
{
    int64_t now = dr_wall_ms();
    char w1[64], w2[64], why[2048];
    dr_buf_printf(b, "daemon: %s, config %s, up %" PRId64 "s\n",
                  d->draining  ? "draining"
                  : d->pending ? "reloading"
                               : "running",
                  d->path, (now - d->started_ms) / 1000);
    if (d->reload_error[0])
        dr_buf_printf(b, "last reload refused: %s\n", d->reload_error);
    roles(d, b, 0);
    for (size_t i = 0; i < d->n_jobs; i++) {
        const job *j = &d->jobs[i];
        when(w1, sizeof w1, j->last_success_ms, now);
        dr_buf_printf(b, "\n%s %s: %s", dr_job_kind_name(j->kind), j->name, state_names[j->state]);
        if (j->has_run)
            dr_buf_printf(b, ", last result %s", dr_error_name(j->last_rc));
        dr_buf_printf(
            b, "\n  last success %s; runs %" PRId64 ", failures %" PRId64 ", missed %" PRId64 "\n",
            w1, j->runs_total, j->failures_total, j->missed_total);
        if (!j->continuous) {
            when(w2, sizeof w2, j->next_ms, now);
            dr_buf_printf(b, "  schedule %s, next run %s\n", j->sched->text, w2);
        }
        if (j->kind == DR_JOB_REPLICATE)
            dr_buf_printf(b, "  %s: source revision %" PRId64 ", applied %" PRId64 ", lag %.1fs\n",
                          dr_repl_state_name(j->stats.state), (int64_t)j->stats.source_revision,
                          (int64_t)j->stats.applied_revision, (double)j->stats.lag_ms / 1000.0);
        if (j->kind == DR_JOB_VERIFY)
            dr_buf_printf(b, "  verified up to revision %" PRId64 "\n", j->verified_rev);
        if (j->kind == DR_JOB_KEYS && j->keys)
            drd_enc_keys_text(j->keys, b);
        if (j->kind == DR_JOB_PROBE) {
            when(w2, sizeof w2, j->last_contact_ms, now);
            dr_buf_printf(b, "  %s %s, last contact %s\n",
                          d->cfg->c->clusters[j->cj->source_i].name,
                          j->site_up ? "answers" : "DOES NOT ANSWER", w2);
        }
        if (j->kind == DR_JOB_PEER) {
            when(w2, sizeof w2, j->last_contact_ms, now);
            dr_buf_printf(b, "  the other site's daemon %s %s%s, last contact %s\n",
                          d->cfg->c->peers[j->peer_i].url,
                          j->site_up ? "answers" : "DOES NOT ANSWER",
                          !j->site_up          ? ""
                          : j->peer_ready == 1 ? " (ready)"
                          : j->peer_ready == 0 ? " (NOT READY)"
                                               : "",
                          w2);
        }
        if (j->kind == DR_JOB_POINT) {
            when(w2, sizeof w2, j->point_ms, now);
            dr_buf_printf(b, "  store %s: newest restorable revision %" PRId64 ", taken %s\n",
                          d->cfg->c->stores[j->cj->store_i].name, j->point_rev, w2);
        }
        if (j->kind == DR_JOB_DRILL && j->has_run)
            dr_buf_printf(b, "  restore time (RTO) %.1fs\n", (double)j->drill_rto_ms / 1000.0);
        if (j->kind == DR_JOB_DRILL && j->drill_keys.other >= 0) {
            char line[1024];
            drd_key_counts_line(&j->drill_keys, 8, line, sizeof line);
            dr_buf_printf(b, "  keys restored at revision %" PRId64 ": %s\n", j->drill_keys_rev,
                          line);
            if (j->drill_keys_snap.other >= 0) {
                drd_key_counts_line(&j->drill_keys_snap, 8, line, sizeof line);
                dr_buf_printf(b, "  recorded with the snapshot at revision %" PRId64 ": %s\n",
                              j->drill_keys_snap_rev, line);
            }
        }
        if (j->kind == DR_JOB_VOLUME) {
            drd_volume_state v;
            vol_state(j, &v);
            drd_volume_text(&v, now, b);
        }
        dr_progress_view pv;
        if (j->state == J_RUNNING && dr_progress_read(&j->progress, dr_mono_ms(), &pv)) {
            char text[400];
            dr_progress_format(&pv, text, sizeof text);
            dr_buf_printf(b, "  progress: %s\n", text);
        }
        if (!ready_reason(d, j, why, sizeof why))
            dr_buf_printf(b, "  NOT READY: %s\n", why);
    }
    drd_runbook_status(d->cfg, b, 0); /* the newest failover run, a waiting step's reason */
}

static int handler(void *ctx, const char *path, dr_buf *b, const char **ctype)
{
    daemon_t *d = ctx;
    int code = 200;
    pthread_mutex_lock(&d->mu);
    if (strcmp(path, "/healthz") == 0) {
        dr_buf_printf(b, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        char why[2048];
        if (d->draining) {
            dr_buf_printf(b, "draining: stopping on SIGTERM\n");
            code = 503;
        }
        for (size_t i = 0; i < d->n_jobs; i++)
            if (!ready_reason(d, &d->jobs[i], why, sizeof why)) {
                dr_buf_printf(b, "%s\n", why);
                code = 503;
            }
        if (code == 200)
            dr_buf_printf(b, "ok\n");
    } else if (strcmp(path, "/metrics") == 0) {
        *ctype = "text/plain; version=0.0.4";
        render_metrics(d, b);
        volume_metrics(d, b);
    } else if (strcmp(path, "/status") == 0) {
        *ctype = "application/json";
        render_status(d, b);
    } else if (strcmp(path, "/status.txt") == 0) {
        render_text(d, b);
    } else {
        dr_buf_printf(b, "not found\n");
        code = 404;
    }
    pthread_mutex_unlock(&d->mu);
    return code;
}

/* ---- the job table ---- */

/* Builds the table for cfg; counters and schedule positions carry over from old jobs of the same
 * kind and name. Called with no worker running. */
/* Whether cj is the first snapshot job writing its store (that one watches the store's point). */
static int first_of_store(const dr_conf *c, const dr_conf_job *cj)
{
    for (const dr_conf_job *k = c->jobs; k < cj; k++)
        if (k->kind == DR_JOB_SNAPSHOT && k->store_i == cj->store_i)
            return 0;
    return 1;
}

/* A derived job's own schedule: every `every` ms, spelled as the config spells durations. */
static void own_every(job *j, int64_t every)
{
    char dur[32];
    j->own_sched = (dr_schedule){.kind = DR_SCHED_EVERY, .every_ms = every};
    snprintf(j->own_sched.text, sizeof j->own_sched.text, "@every %s",
             dr_format_duration_ms(every, dur, sizeof dur));
    j->sched = &j->own_sched;
}

/* Counters, schedule positions and findings carry over from the old table's job of the same
 * kind and name (what it owns is moved: the old table goes). 1 when there was one. */
static int job_carry(job *j, job *old, size_t n_old)
{
    job *o = NULL;
    for (size_t k = 0; k < n_old && !o; k++)
        if (old[k].kind == j->kind && strcmp(old[k].name, j->name) == 0)
            o = &old[k];
    if (!o)
        return 0;
    j->prev_ms = o->prev_ms;
    j->last_start_ms = o->last_start_ms;
    j->last_success_ms = o->last_success_ms;
    j->last_duration_ms = o->last_duration_ms;
    j->has_run = o->has_run;
    j->last_rc = o->last_rc;
    j->failures_total = o->failures_total;
    j->repl_alarm = o->repl_alarm; /* a reload is no cure: shown until replication streams */
    j->missed_total = o->missed_total;
    j->runs_total = o->runs_total;
    j->drill_rto_ms = o->drill_rto_ms;
    j->drill_keys = o->drill_keys; /* moved */
    j->drill_keys_snap = o->drill_keys_snap;
    j->drill_keys_rev = o->drill_keys_rev;
    j->drill_keys_snap_rev = o->drill_keys_snap_rev;
    memset(&o->drill_keys, 0, sizeof o->drill_keys);
    memset(&o->drill_keys_snap, 0, sizeof o->drill_keys_snap);
    j->verified_rev = o->verified_rev;
    j->last_contact_ms = o->last_contact_ms;
    j->site_up = o->site_up;
    j->peer_ready = o->peer_ready;
    j->point_rev = o->point_rev;
    j->point_ms = o->point_ms;
    /* not the epoch job's findings: they index the old config's clusters (it runs again at
     * once) */
    j->keys = o->keys; /* moved */
    o->keys = NULL;
    j->vol_st = o->vol_st;
    j->since_ms = o->since_ms;
    snprintf(j->reason, sizeof j->reason, "%s", o->reason);
    return 1;
}

/* A probe job per peer (the other site's daemon), every peers.<name>.interval. */
static void peers_build(daemon_t *d, job *jobs, size_t *n, job *old, size_t n_old)
{
    const dr_conf *c = d->cfg->c;
    for (size_t i = 0; i < c->n_peers; i++) {
        job *j = &jobs[(*n)++];
        j->d = d;
        j->kind = DR_JOB_PEER;
        j->peer_i = (int)i;
        j->peer_ready = -1;
        j->run_now = 1;
        own_every(j, c->peers[i].interval_ms);
        snprintf(j->name, sizeof j->name, "%s", c->peers[i].name);
        dr_backoff_init(&j->backoff, 500, 60000);
        job_carry(j, old, n_old);
        if (!j->prev_ms)
            j->prev_ms = dr_wall_ms();
        dr_schedule_next(j->sched, j->prev_ms, &j->next_ms);
    }
}

/* The failover pair's jobs, both named "failover" and sharing the failover's replicate row:
 * epoch (every 10 s) and keys (every failover.encryption_scan; none when 0). Both run at start
 * and after every reload: a SIGHUP after the EncryptionConfiguration was fixed scans again. */
static void failover_build(daemon_t *d, job *jobs, size_t *n, job *old, size_t n_old, int64_t now)
{
    const dr_conf *c = d->cfg->c;
    for (int k = 0; c->has_failover && k < 2; k++) {
        int64_t every = k ? c->failover.encryption_scan_ms : 10000;
        if (!every)
            continue;
        job *j = &jobs[(*n)++];
        j->d = d;
        j->cj = &c->jobs[c->failover.replicate_i];
        j->kind = k ? DR_JOB_KEYS : DR_JOB_EPOCH;
        j->drill_keys.other = j->drill_keys_snap.other = -1;
        j->primary_i = -1;
        j->cluster_epoch[0] = j->cluster_epoch[1] = -1;
        j->since_ms = now;
        j->run_now = 1;
        own_every(j, every);
        snprintf(j->name, sizeof j->name, "failover");
        dr_backoff_init(&j->backoff, 500, 60000);
        if (!job_carry(j, old, n_old))
            j->prev_ms = now;
        dr_schedule_next(j->sched, now, &j->next_ms);
    }
}

/* Whether cj is the first replicate job from its source (that one probes it: one probe, and one
 * drd_site_up series, per cluster however many jobs replicate from it). */
static int first_of_source(const dr_conf *c, const dr_conf_job *cj)
{
    for (const dr_conf_job *k = c->jobs; k < cj; k++)
        if (k->kind == DR_JOB_REPLICATE && k->source_i == cj->source_i)
            return 0;
    return 1;
}

static int jobs_build(daemon_t *d, job *old, size_t n_old, int64_t now)
{
    const dr_conf *c = d->cfg->c;
    size_t n = 0;
    /* one row per config job, plus a segments row for a snapshot job with segments */
    job *jobs = calloc(4 * c->n_jobs + c->n_peers + 3, sizeof *jobs);
    if (!jobs)
        return dr_error_set(DR_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->n_jobs; i++) {
        for (int part = 0; part < 4; part++) {
            dr_conf_job *cj = &c->jobs[i];
            /* the row itself, then what it implies: segments; verify and probe */
            dr_job_kind kind = cj->kind;
            int64_t every = 0;
            if (part && cj->kind == DR_JOB_SNAPSHOT && cj->segments_ms && part == 1)
                kind = DR_JOB_SEGMENTS;
            else if (part == 1 && cj->kind == DR_JOB_REPLICATE && cj->verify_ms)
                kind = DR_JOB_VERIFY, every = cj->verify_ms;
            else if (part == 2 && cj->kind == DR_JOB_REPLICATE && first_of_source(c, cj))
                kind = DR_JOB_PROBE, every = 5000;
            else if (part == 3 && cj->kind == DR_JOB_SNAPSHOT && first_of_store(c, cj))
                kind = DR_JOB_POINT, every = 10000;
            else if (part)
                continue;
            job *j = &jobs[n++];
            j->d = d;
            j->drill_keys.other = j->drill_keys_snap.other = -1;
            j->cj = cj;
            j->kind = kind;
            j->continuous = j->kind == DR_JOB_REPLICATE || j->kind == DR_JOB_SEGMENTS ||
                            (j->kind == DR_JOB_VOLUME && cj->role == 1);
            j->since_ms = now;
            j->sched = &cj->schedule;
            j->run_now = kind == DR_JOB_PROBE || kind == DR_JOB_POINT;
            if (every)
                own_every(j, every);
            snprintf(j->name, sizeof j->name, "%s", cj->name);
            dr_backoff_init(&j->backoff, 500, 60000);
            if (!job_carry(j, old, n_old) && !j->continuous)
                state_load(d, j, now);
            if (!j->continuous)
                dr_schedule_next(j->sched, now, &j->next_ms);
        }
    }
    peers_build(d, jobs, &n, old, n_old);
    failover_build(d, jobs, &n, old, n_old, now);
    d->jobs = jobs;
    d->n_jobs = n;
    return 0;
}

/* Frees a job table (what jobs_build moved out of it is gone already). */
static void jobs_free(job *jobs, size_t n)
{
    for (size_t i = 0; jobs && i < n; i++) {
        dr_key_counts_free(&jobs[i].drill_keys);
        dr_key_counts_free(&jobs[i].drill_keys_snap);
        free(jobs[i].keys);
    }
    free(jobs);
}

static int any_running(daemon_t *d)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].state == J_RUNNING)
            return 1;
    return 0;
}

/* One daemon per state_dir: a second one started on the same config by mistake refuses. The
 * flock goes with the process (also on kill -9). */
static int lock_state_dir(const drd_config *cfg, int *fd)
{
    char path[1024], pid[32];
    snprintf(path, sizeof path, "%s/drd.lock", cfg->c->state_dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return dr_error_set(DR_EIO, "cannot open '%s': %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t n = read(*fd, pid, sizeof pid - 1);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(*fd);
        *fd = -1;
        return dr_error_set(DR_EBUSY,
                            "another drd run (pid %s) uses state_dir '%s': one daemon per config",
                            pid[0] ? pid : "?", cfg->c->state_dir);
    }
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(*fd, 0) != 0 || pwrite(*fd, pid, (size_t)n, 0) != n)
        dr_warn("cannot write the pid into '%s'", path);
    return 0;
}

static int prepare_dirs(const drd_config *cfg)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/jobs", cfg->c->state_dir);
    int rc = dr_fs_mkdirs(dir, 0700);
    return rc < 0 ? dr_error_wrap(rc, "state_dir '%s'", cfg->c->state_dir) : 0;
}

static void reload(daemon_t *d)
{
    drd_config *n = NULL;
    int rc = drd_config_load(d->path, &n);
    if (rc == 0)
        rc = prepare_dirs(n);
    pthread_mutex_lock(&d->mu);
    if (rc < 0) {
        d->reload_failures++;
        snprintf(d->reload_error, sizeof d->reload_error, "%s", dr_error_msg());
        dr_err("SIGHUP: config refused, the old one keeps running: %s", d->reload_error);
        drd_config_free(n);
    } else {
        d->reload_error[0] = 0;
        drd_config_free(d->pending);
        d->pending = n;
        dr_info("SIGHUP: config %s is good; switching once the running jobs are done", d->path);
    }
    pthread_mutex_unlock(&d->mu);
}

/* With a pending config and no worker left: swap. */
static void reload_switch(daemon_t *d, int64_t now)
{
    job *old = d->jobs;
    size_t n_old = d->n_jobs;
    drd_config *old_cfg = d->cfg;
    pthread_mutex_lock(&d->mu);
    if (strcmp(old_cfg->c->listen ? old_cfg->c->listen : "",
               d->pending->c->listen ? d->pending->c->listen : "") != 0)
        dr_warn("SIGHUP: listen changed; it takes effect at the next start");
    d->cfg = d->pending;
    d->pending = NULL;
    if (jobs_build(d, old, n_old, now) < 0) { /* out of memory: keep the old table */
        d->pending = d->cfg;
        d->cfg = old_cfg;
        d->jobs = old;
        d->n_jobs = n_old;
        pthread_mutex_unlock(&d->mu);
        return;
    }
    d->last_reload_ms = now;
    pthread_mutex_unlock(&d->mu);
    jobs_free(old, n_old);
    drd_config_free(old_cfg);
    dr_info("config reloaded: %zu jobs", d->n_jobs);
}

int drd_daemon_run(drd_config *cfg, const char *path)
{
    static daemon_t d; /* the handler and the workers reach it; one daemon per process */
    dr_http_server *srv = NULL;
    int rc = 0, lock_fd = -1;
    memset(&d, 0, sizeof d);
    pthread_mutex_init(&d.mu, NULL);
    /* glibc gives threads arenas of their own (up to 8 per core), each keeping freed memory; a
     * daemon whose jobs come and go on fresh threads grows by that alone */
    mallopt(M_ARENA_MAX, 2);
    d.cfg = cfg;
    d.path = path;
    d.started_ms = dr_wall_ms();
    drd_signals_install();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    if ((rc = prepare_dirs(cfg)) < 0 || (rc = lock_state_dir(cfg, &lock_fd)) < 0)
        goto out;
    if ((rc = jobs_build(&d, NULL, 0, dr_wall_ms())) < 0)
        goto out;
    if (cfg->c->listen &&
        (rc = dr_http_start(cfg->c->listen, "listen", NULL, handler, &d, &srv)) < 0)
        goto out;
    dr_info("drd run: %zu jobs from %s%s%s", d.n_jobs, path, cfg->c->listen ? ", status on " : "",
            cfg->c->listen ? cfg->c->listen : "");
    int64_t drain_until = 0;
    for (;;) {
        int64_t now = dr_wall_ms();
        if (drd_stop && !d.draining) {
            pthread_mutex_lock(&d.mu);
            d.draining = 1;
            pthread_mutex_unlock(&d.mu);
            drain_until = dr_mono_ms() + d.cfg->c->grace_ms;
            dr_info("SIGTERM: draining (grace %.1fs)", (double)d.cfg->c->grace_ms / 1000.0);
        }
        if (hup && !d.draining) {
            hup = 0;
            reload(&d);
        }
        for (size_t i = 0; i < d.n_jobs; i++)
            job_tick(&d.jobs[i], now);
        if (d.pending && !d.draining && !any_running(&d))
            reload_switch(&d, now);
        if (d.draining && !any_running(&d))
            break;
        if (d.draining && dr_mono_ms() > drain_until) {
            rc = dr_error_set(DR_ETIMEOUT,
                              "drd run: jobs still running after the grace of "
                              "%.1fs; exiting anyway (an unfinished upload never "
                              "becomes visible)",
                              (double)d.cfg->c->grace_ms / 1000.0);
            goto out;
        }
        dr_sleep_ms(TICK_MS);
    }
    dr_info("drd run: stopped");
out:
    dr_http_stop(srv);
    if (lock_fd >= 0)
        close(lock_fd);
    int live = 0;
    for (size_t i = 0; i < d.n_jobs; i++)
        live |= d.jobs[i].thread_live;
    if (!live) { /* no worker can still use them */
        jobs_free(d.jobs, d.n_jobs);
        drd_config_free(d.cfg);
        drd_config_free(d.pending);
    }
    return rc;
}
