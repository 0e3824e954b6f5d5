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

/* The failover pair's primary now: the cluster the newest epoch record in the two clusters names
 * (read with a short timeout; an unreachable side does not count), failover.primary at epoch 0;
 * -1 without a failover section. The daemon's jobs follow it (docs/runbooks.md, "The daemon
 * after a failover"). */
int drd_failover_primary(const drd_config *cfg, int *primary_i);
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
