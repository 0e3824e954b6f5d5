/*
 * The replication's loss-window marks (rpo.h): a recorder thread per replication that reads the
 * replication's stats (atomics) every 100 ms and probes the primary every 250 ms, and keeps the
 * marks in a small state file for the emergency runbook.
 *
 * Why a probe: a watch response's header revision is the primary's revision when it queued the
 * response, and the primary may acknowledge more writes before it is sent, so a caught-up watch
 * says nothing exact about time. A linearizable Range sent at time t answers with a revision that
 * holds every write the primary acknowledged before t; once the standby has applied that
 * revision, no write acknowledged before t can be lost (T0 = t). The watch stream still counts
 * as the primary answering (T1): it moves with every write.
 *
 *   recording --(every 100 ms: stats read; every 250 ms: probe)--> recording
 *             --(marks changed, 1 s since the last write)--> file rewritten --> recording
 *             --(stop)--> file rewritten if changed --> stopped
 *
 * Must never block or slow the replication (it only reads atomics), write the file more than
 * about once a second, or move a mark backwards in time.
 */
#include "drd/app/rpo.h"
#include "drd/core/core.h"
#include "drd/lib/epoch/epoch.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 100
#define PROBE_MS 250
#define WRITE_MS 1000
#define PENDING 256 /* probes waiting for the standby to apply their revision (64 s) */

typedef struct probe {
    int64_t rev, sent_ms;
} probe;

struct drd_rpo_recorder {
    char path[1024];
    dr_etcd_opts source;
    const dr_repl_stats *stats;
    drd_rpo_marks m;
    probe pending[PENDING];
    size_t head, n;
    _Atomic int stop;
    pthread_t thread;
};

void drd_rpo_path(const drd_config *cfg, const char *job, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/jobs/replicate-%s.rpo", cfg->c->state_dir, job);
}

static int marks_write(const char *path, const drd_rpo_marks *m)
{
    char text[512];
    int n =
        snprintf(text, sizeof text,
                 "source %s\ntarget %s\napplied_rev %" PRId64 "\napplied_ms %" PRId64
                 "\ncaught_up_rev %" PRId64 "\ncaught_up_ms %" PRId64 "\nheard_ms %" PRId64 "\n",
                 m->source, m->target, m->applied_rev, m->applied_ms, m->caught_up_rev,
                 m->caught_up_ms, m->heard_ms);
    return dr_fs_write_atomic(path, text, (size_t)n, 0600);
}

int drd_rpo_read(const char *path, drd_rpo_marks *m)
{
    char *text = NULL, *save = NULL;
    size_t len = 0;
    int rc = dr_fs_read_all(path, 4096, &text, &len);
    if (rc < 0)
        return rc;
    memset(m, 0, sizeof *m);
    int seen = 0;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char k[32], v[64] = "";
        if (sscanf(l, "%31s %63s", k, v) != 2)
            continue;
        int64_t n = strtoll(v, NULL, 10);
        if (!strcmp(k, "source"))
            snprintf(m->source, sizeof m->source, "%s", v);
        else if (!strcmp(k, "target"))
            snprintf(m->target, sizeof m->target, "%s", v);
        else if (!strcmp(k, "applied_rev"))
            m->applied_rev = n;
        else if (!strcmp(k, "applied_ms"))
            m->applied_ms = n;
        else if (!strcmp(k, "caught_up_rev"))
            m->caught_up_rev = n;
        else if (!strcmp(k, "caught_up_ms"))
            m->caught_up_ms = n;
        else if (!strcmp(k, "heard_ms"))
            m->heard_ms = n;
        else
            continue;
        seen++;
    }
    free(text);
    if (seen != 7 || !m->source[0] || !m->target[0])
        return dr_error_set(DR_EPROTO, "'%s' is not a replication's loss-window file", path);
    return 0;
}

/* The primary's revision now, by a linearizable read (it holds every acknowledged write). */
static int probe_primary(dr_etcd **e, const dr_etcd_opts *o, int64_t *rev)
{
    dr_etcd_range_req q = {.key = DR_EPOCH_KEY, .key_len = strlen(DR_EPOCH_KEY), .count_only = 1};
    dr_etcd_range_res res;
    int rc = *e ? 0 : dr_etcd_open(e, o);
    if (rc == 0 && (rc = dr_etcd_range(*e, &q, &res)) == 0) {
        *rev = res.header.revision;
        dr_etcd_range_res_free(&res);
    }
    if (rc < 0) { /* reconnect at the next probe */
        dr_etcd_close(*e);
        *e = NULL;
    }
    return rc;
}

/* Probes whose revision the standby has applied move T0 forward. */
static int settle(drd_rpo_recorder *r, int64_t applied)
{
    int moved = 0;
    while (r->n && r->pending[r->head].rev <= applied) {
        const probe *p = &r->pending[r->head];
        if (p->sent_ms > r->m.caught_up_ms) {
            r->m.caught_up_ms = p->sent_ms;
            r->m.caught_up_rev = p->rev;
            moved = 1;
        }
        r->head = (r->head + 1) % PENDING;
        r->n--;
    }
    return moved;
}

static void *recorder_main(void *arg)
{
    drd_rpo_recorder *r = arg;
    dr_etcd *e = NULL;
    int64_t last_src = r->stats->source_revision, last_probe = 0, last_write = 0;
    int dirty = 0;
    dr_etcd_opts o = r->source;
    if (!o.timeout_ms || o.timeout_ms > 1000)
        o.timeout_ms = 1000; /* a dead primary must not hold the marks back */
    for (;;) {
        int stop = atomic_load(&r->stop);
        int64_t now = dr_wall_ms(), mono = dr_mono_ms();
        int64_t applied = r->stats->applied_revision, src = r->stats->source_revision;
        if (applied > 0 && applied != r->m.applied_rev) {
            r->m.applied_rev = applied;
            r->m.applied_ms = now;
            dirty = 1;
        }
        if (src != last_src) { /* a watch response arrived since the last look */
            last_src = src;
            if (src > 0 && now > r->m.heard_ms) {
                r->m.heard_ms = now;
                dirty = 1;
            }
        }
        if (!stop && mono - last_probe >= PROBE_MS) {
            int64_t rev = 0, sent = dr_wall_ms();
            last_probe = mono;
            if (probe_primary(&e, &o, &rev) == 0) {
                if (r->n == PENDING) { /* far behind: the oldest goes, T0 stays older */
                    r->head = (r->head + 1) % PENDING;
                    r->n--;
                }
                r->pending[(r->head + r->n) % PENDING] = (probe){rev, sent};
                r->n++;
                r->m.heard_ms = dr_wall_ms();
                dirty = 1;
            }
            dr_error_clear();
        }
        dirty |= settle(r, applied);
        if (dirty && (stop || mono - last_write >= WRITE_MS)) {
            if (marks_write(r->path, &r->m) < 0) {
                dr_warn("cannot record the replication's loss window: %s", dr_error_msg());
                dr_error_clear();
            }
            last_write = mono;
            dirty = 0;
        }
        if (stop)
            break;
        dr_sleep_ms(POLL_MS);
    }
    dr_etcd_close(e);
    return NULL;
}

int drd_rpo_start(const char *path, const dr_etcd_opts *source, const char *source_name,
                  const char *target_name, const dr_repl_stats *stats, drd_rpo_recorder **out)
{
    drd_rpo_recorder *r = calloc(1, sizeof *r);
    drd_rpo_marks old;
    *out = NULL;
    if (!r)
        return dr_error_set(DR_ENOMEM, "out of memory");
    snprintf(r->path, sizeof r->path, "%s", path);
    r->source = *source;
    r->stats = stats;
    if (drd_rpo_read(path, &old) == 0 && !strcmp(old.source, source_name) &&
        !strcmp(old.target, target_name))
        r->m = old; /* a restarted replication keeps what the last one learned */
    dr_error_clear();
    snprintf(r->m.source, sizeof r->m.source, "%s", source_name);
    snprintf(r->m.target, sizeof r->m.target, "%s", target_name);
    if (pthread_create(&r->thread, NULL, recorder_main, r) != 0) {
        free(r);
        return dr_error_set(DR_ENOMEM, "cannot start a thread");
    }
    *out = r;
    return 0;
}

void drd_rpo_stop(drd_rpo_recorder *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    free(r);
}
