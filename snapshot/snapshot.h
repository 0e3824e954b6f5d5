/*
 * drd snapshot: full etcd snapshots and revision segments into a repository (drd/lib/repo), and
 * their management (list, verify, get, delete, prune).
 *
 * save:   Maintenance.Snapshot -> [bolt revision scan, sha256] -> tar entry "etcd.db" -> zstd ->
 *         AES-256-GCM -> store; then HashKV and key count at the snapshot's revision go into the
 *         manifest. One pass, no temp file, memory bounded by the filters' buffers.
 * follow: a watch from the newest stored revision + 1; events grouped by revision into segments
 *         cut every period or size limit; resumes from the store after a crash; starts with a
 *         full snapshot when the store has none or the watch is compacted.
 * Must never make a snapshot or segment visible before it is complete, and never write a
 * segment that does not start right after the previous one.
 */
#ifndef DRD_SNAPSHOT_H
#define DRD_SNAPSHOT_H

#include <signal.h>
#include <stdint.h>

#include "drd/lib/etcd/etcd.h"
#include "drd/lib/repo/repo.h"
#include "policies/policies.h"

typedef struct dr_snapshot_save_opts {
    dr_compress compression;
    const char *labels;    /* "k=v,k2=v2" or NULL */
    dr_progress *progress; /* NULL, or counts the bytes streamed from etcd (total: its size) */
} dr_snapshot_save_opts;

/* Takes a full snapshot of etcd into the repository under the "save" lock (DR_EBUSY when another
 * save holds it). *m gets the manifest of the new snapshot. */
int dr_snapshot_save(dr_repo *repo, dr_etcd *etcd, const dr_snapshot_save_opts *o, dr_manifest *m);

typedef struct dr_snapshot_follow_opts {
    dr_compress compression;
    int64_t segment_period_ms;   /* cut a segment after this long (default 10 s) */
    uint64_t segment_max_bytes;  /* or when its events reach this size (default 64 MiB) */
    volatile sig_atomic_t *stop; /* set by SIGTERM/SIGINT: the open segment is committed, then 0 */
    int64_t until_revision;      /* > 0: stop once a segment ending at or after it is committed */
    /* NULL, or 1 while the follow sets itself up or takes a full snapshot as its base (the store
     * holds none, or etcd compacted past it), 0 while it streams segments and once it returns:
     * a scheduler keeps other snapshots and drills from starting meanwhile */
    _Atomic int *in_base;
} dr_snapshot_follow_opts;

/* Runs until *stop (or until_revision): returns 0 after a clean stop. */
int dr_snapshot_follow(dr_repo *repo, dr_etcd *etcd, const dr_snapshot_follow_opts *o);

/* Reads an object completely and checks everything that can be checked without etcd: stored size
 * and sha256, authentication of every chunk, the archive, the plain payload's size and sha256
 * against the manifest, the inner manifest against the outer one, and for segments the revision
 * records (contiguous, inside the manifest's range). */
int dr_snapshot_verify(dr_repo *repo, const dr_manifest *m);

/* Writes the plain etcd snapshot file of a full snapshot to path (atomically: nothing at path
 * unless every check passed). */
int dr_snapshot_get(dr_repo *repo, const dr_manifest *m, const char *path);

/* Retention: decides for every object in the repository (after a sync) and, unless dry_run,
 * deletes what the plan says. print gets one line per object ("keep|delete ID: reason"). */
typedef void (*dr_snapshot_print)(void *ctx, const char *line);
int dr_snapshot_prune(dr_repo *repo, const dr_retention *policy, int dry_run,
                      dr_snapshot_print print, void *ctx, int *deleted);

/* Checks the chain of segments for gaps and overlaps; print gets a line per problem. Returns
 * 0 when the chain from the oldest full snapshot on is contiguous, DR_ECHECKSUM otherwise. */
int dr_snapshot_check_chain(dr_repo *repo, dr_snapshot_print print, void *ctx);

#endif
