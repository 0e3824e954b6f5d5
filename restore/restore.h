/*
 * drd restore: a snapshot, or a snapshot plus segments up to a revision, back into an etcd data
 * dir; and drills that prove a backup restores and measure how long it takes.
 *
 * A restore is planned (which full snapshot, which segments), every object of the plan is read
 * back and checked completely before anything is touched, then the snapshot is restored into a
 * new directory next to the target (etcdutl/etcdctl snapshot restore), the segments are replayed
 * through a throw-away etcd on loopback (one transaction per source revision, the revision checked
 * after each), and the directory is renamed into place last.
 * Must never write into a non-empty data dir, never leave a half-restored data dir under the
 * target name, and never talk to an etcd other than its own throw-away one (restore keys: the
 * target it was given).
 */
#ifndef DRD_RESTORE_H
#define DRD_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "drd/lib/etcd/etcd.h"
#include "drd/lib/repo/repo.h"

/* What a restore will do. */
typedef struct dr_restore_plan {
    dr_manifest base;  /* the full snapshot */
    int64_t target;    /* the revision the result holds */
    dr_manifest *segs; /* segments to replay, in order (the first may start before base + 1) */
    size_t n_segs;
} dr_restore_plan;

/* Picks the plan: snapshot (ID or "latest"), else the newest full snapshot at or before revision
 * (> 0) or time_ms (> 0: the point is then the end of the last segment closed at or before it),
 * plus the chain of segments up to the point. DR_ENOTFOUND when no snapshot is old enough or a
 * revision range is in no segment (the message names the gap). */
int dr_restore_plan_make(dr_repo *repo, const char *snapshot, int64_t revision, int64_t time_ms,
                         dr_restore_plan *p);
void dr_restore_plan_free(dr_restore_plan *p);

/* Progress and dry-run lines. */
typedef void (*dr_restore_print)(void *ctx, const char *line);

typedef struct dr_restore_opts {
    const char *data_dir;
    const char *members_dir; /* instead of data_dir, name and peer_urls: every member of
                                initial_cluster into members_dir/<name> (a new multi-member
                                cluster), all from the one restored point */
    const char *name;
    const char *initial_cluster;
    const char *peer_urls;
    int dry_run;
    int64_t bump_revision; /* > 0: etcdutl --bump-revision (where the installed etcd has it) */
    int mark_compacted;
    dr_restore_print print;
    void *ctx;
    dr_progress *progress; /* NULL, or counts the stored bytes read (total: what the plan reads) */
} dr_restore_opts;

typedef struct dr_restore_result {
    int64_t revision;  /* what the data dir holds */
    int64_t replayed;  /* revisions replayed from segments */
    int64_t verify_ms; /* reading and checking the objects */
    int64_t total_ms;
} dr_restore_result;

/* Runs a plan into o->data_dir (see the top of this file). */
int dr_restore_run(dr_repo *repo, const dr_restore_plan *p, const dr_restore_opts *o,
                   dr_restore_result *res);

/* Replays the plan's segments into the etcd at url, which holds the plan's base snapshot:
 * revisions base+1 .. target, one transaction each, revision checked. *replayed may be NULL. */
int dr_restore_replay(dr_repo *repo, const dr_restore_plan *p, const char *url, int64_t *replayed);

/* Restores the keys under prefix, as they were at the plan's point, into the live etcd target:
 * creates the missing ones; with overwrite also restores changed values and deletes keys the
 * point did not have. Every write is guarded (absent / same mod_revision), so a key written
 * meanwhile is left alone and reported (DR_EDIVERGED at the end). o->dry_run prints the plan
 * and writes nothing; o->print gets one line per difference and a summary. */
int dr_restore_keys(dr_repo *repo, const dr_restore_plan *p, const char *prefix,
                    const dr_etcd_opts *target, int overwrite, const dr_restore_opts *o);

/* A drill (progress: NULL, or as dr_restore_opts.progress): restore the plan into a scratch dir,
 * start a throw-away etcd on loopback, check revision, key count, keys per Kubernetes resource
 * (drd/lib/kube) and HashKV against the manifest (the last three for a full snapshot alone: a
 * point past it has other counts), measure the time from start to the first successful read
 * (RTO), record the result in the catalog. The report gives the restored keys per resource at
 * the point next to those recorded with the snapshot ("keys"). Returns 0 when every check
 * passed, DR_ECHECKSUM (or the failure's code) otherwise; *report gets a JSON report either way
 * (caller frees); keys (may be NULL) the restored counts when they were taken (caller frees
 * with dr_key_counts_free; untouched otherwise). */
int dr_drill_run(dr_repo *repo, const dr_restore_plan *p, dr_progress *progress,
                 dr_key_counts *keys, char **report);

/* The encryption keys a drill's report says the restored data needs, as one line ("aesgcm:key1
 * (12), kms:vault (3); 230 values read", "none; 230 values read"): the API server's
 * k8s:enc:<provider>:v<N>:<key>: prefixes of every restored value, counted per provider and key
 * name. DR_ENOTFOUND when the report has none (the drill failed before counting). */
int dr_drill_enc_line(const char *report, char *out, size_t cap);

/* Counts into *c (policies.h dr_k8s_enc_counts, not cleared first) the encryption key names of
 * every value under the prefixes (none: the whole keyspace), read DR_ENC_SCAN_PAGE keys a page
 * at revision rev (0: the newest, pinned by the first page, so every page reads one revision);
 * *at_rev (may be NULL) gets that revision. DR_ECOMPACTED, and etcd's errors. */
#define DR_ENC_SCAN_PAGE 500
struct dr_k8s_enc_counts;
int dr_enc_keys_scan(dr_etcd *e, const char *const *prefixes, size_t n_prefixes, int64_t rev,
                     struct dr_k8s_enc_counts *c, int64_t *at_rev);

#endif
