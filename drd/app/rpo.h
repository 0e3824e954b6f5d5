/*
 * The loss window of an emergency failover, as the replication saw it (docs/runbooks.md, "What
 * an emergency failover loses"). etcd keeps no time per revision, so a replication records it
 * while it runs: a recorder thread beside dr_repl_run reads its stats, probes the primary, and
 * keeps <state_dir>/jobs/replicate-<name>.rpo; the emergency runbook reads that file.
 */
#ifndef DRD_APP_RPO_H
#define DRD_APP_RPO_H

#include "drd/app/daemon.h"

/* What the file says (times: ms since the epoch on this machine's clock; 0: not known). */
typedef struct drd_rpo_marks {
    char source[64], target[64]; /* the clusters replicated from and to */
    int64_t applied_rev;         /* R: the newest revision applied to the target */
    int64_t applied_ms;          /* T: when the recorder first saw it applied (within 0.1 s) */
    /* T0: a probe sent at caught_up_ms found the primary at caught_up_rev, which the target had
     * applied since: every write the primary acknowledged before caught_up_ms is on the target */
    int64_t caught_up_rev, caught_up_ms;
    int64_t heard_ms; /* T1: the primary last answered (a probe, or the watch stream moved) */
} drd_rpo_marks;

typedef struct drd_rpo_recorder drd_rpo_recorder;

/* <state_dir>/jobs/replicate-<job>.rpo */
void drd_rpo_path(const drd_config *cfg, const char *job, char *buf, size_t cap);

/* Starts recording for a replication from source_name (opts: source) to target_name whose
 * stats the caller's dr_repl_run fills. The file is rewritten (0600, atomically) at most once a
 * second, off the apply path; the marks start from what path already holds for the same pair.
 * Caller stops and frees with drd_rpo_stop (NULL-safe), after dr_repl_run returns or before. */
int drd_rpo_start(const char *path, const dr_etcd_opts *source, const char *source_name,
                  const char *target_name, const dr_repl_stats *stats, drd_rpo_recorder **out);
void drd_rpo_stop(drd_rpo_recorder *r);

/* Reads path. DR_ENOTFOUND when there is none; DR_EPROTO when it does not parse. */
int drd_rpo_read(const char *path, drd_rpo_marks *m);

#endif
