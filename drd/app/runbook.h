/*
 * The runbook runner (docs/runbooks.md): runs a runbook (policies/) step by step against the
 * config's two sites, with its state in <state_dir>/runs/<run id>/ so that a run killed at any
 * moment resumes from the step it was in. Used by drd failover, drd failback and drd runbook, and
 * read by drd status and the daemon's /status.
 */
#ifndef DRD_APP_RUNBOOK_H
#define DRD_APP_RUNBOOK_H

#include "drd/app/daemon.h"

typedef enum { DRD_OP_PLANNED = 0, DRD_OP_EMERGENCY, DRD_OP_FAILBACK } drd_op;

/* Starts a run of the config's runbook for op (dry_run: prints the plan and runs the read-only
 * checks, writes nothing). Returns 0 when the run is done, else the failing step's code (the
 * run stays resumable). */
int drd_runbook_start(drd_config *cfg, drd_op op, int dry_run);
/* drd runbook resume / abort / list / show. */
int drd_runbook_resume(drd_config *cfg, const char *run);
int drd_runbook_abort(drd_config *cfg, const char *run);
int drd_runbook_list(drd_config *cfg);
int drd_runbook_show(drd_config *cfg, const char *run);
/* The newest run in words (json: one JSON value, "null" when none) for drd status and /status.
 * Appends to b; never fails for a missing run. */
void drd_runbook_status(const drd_config *cfg, dr_buf *b, int json);

/* The figures of the newest run (the one drd_runbook_status shows), for the daemon's metrics:
 * 0 and *f, DR_ENOTFOUND when there is none. */
typedef struct drd_runbook_figures {
    char id[96], old_primary[64], new_primary[64];
    const char *operation;            /* planned, emergency, failback (static) */
    const char *status;               /* active, done, failed, aborted (static) */
    int64_t epoch;                    /* the epoch it raised (failback: the one it kept) */
    int64_t rpo_revs, rpo_ms, rto_ms; /* -1: not known (rto: no promotion yet, or failback) */
    int64_t started_ms, finished_ms;  /* finished_ms 0: still active */
} drd_runbook_figures;
int drd_runbook_figures_get(const drd_config *cfg, drd_runbook_figures *f);

/* The failover pair's primary now: the cluster the newest epoch record in the two clusters names
 * (read with a short timeout; an unreachable side does not count), failover.primary at epoch 0;
 * -1 without a failover section. The daemon's jobs follow it (docs/runbooks.md, "The daemon
 * after a failover"). */
int drd_failover_primary(const drd_config *cfg, int *primary_i);
/* The same, with the newest epoch (0: none recorded) and the epoch each cluster of the pair
 * holds (seen[0]: failover.primary's cluster, seen[1]: the standby's; -1: it did not answer). */
int drd_failover_roles(const drd_config *cfg, int *primary_i, int64_t *epoch, int64_t seen[2]);
/* The failover's replicate job from cluster a to cluster b (a prefix rewrite turned around in
 * the other direction). */
void drd_failover_repl_opts(const drd_config *cfg, int a, int b, dr_repl_opts *o);

/* ---- steps in files of their own ---- */

/* Shows line as the running step's reason (drd status, /status). */
typedef void (*drd_say_fn)(void *arg, const char *line);

/* final-volume-sync (runbook_volume.c): until deadline_ms, waits until every volume pair of the
 * config holds a complete copy whose sync started after fence_ms (role serve: the copies here),
 * or pushes it now (role push: the source is here); the reasons through say. 0 with a line per
 * volume in res (none configured: says so), DR_ETIMEOUT naming the volume that still waits and
 * why, a push's error no retry mends. dry_run: what it would wait for, without pushing. */
int drd_runbook_volumes(const drd_config *cfg, int64_t fence_ms, int64_t deadline_ms, int dry_run,
                        drd_say_fn say, void *arg, char *res, size_t cap);

#endif
