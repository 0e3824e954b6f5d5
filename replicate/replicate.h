/*
 * replicate: the live standby. Streams every etcd revision from a source (primary) to a target
 * (standby), in one of two modes:
 *
 *  exact     the target is dedicated: seeded from a snapshot of the source, then every source
 *            revision becomes exactly one target transaction, checked by header.revision. The
 *            target's own revision is the cursor.
 *  filtered  the target has other writers: keys under the prefixes (minus excludes, optionally
 *            rewritten) are copied; each transaction also writes the cursor key
 *            /drd/replicate/<name>/revision, guarded by its previous value.
 *
 * This module must never write to the source, never overwrite a target that does not match
 * (it raises an alarm instead), and never hold more than a bounded amount of events in memory.
 */
#ifndef DRD_REPLICATE_H
#define DRD_REPLICATE_H

#include "drd/core/core.h"
#include "drd/lib/etcd/etcd.h"

#include <signal.h>
#include <stdint.h>

typedef enum { DR_REPL_EXACT = 0, DR_REPL_FILTERED = 1 } dr_repl_mode;

typedef struct dr_repl_opts {
    dr_etcd_opts source;
    dr_etcd_opts target;
    dr_repl_mode mode;
    const char *name; /* cursor name (filtered); NULL: "default" */
    const char **prefixes;
    size_t n_prefixes;
    const char **excludes;
    size_t n_excludes;
    const char *dest_prefix;     /* NULL: no rewrite; needs exactly one prefix */
    int64_t max_txn_ops;         /* the target's --max-txn-ops, at least 2; 0: 128 */
    int window;                  /* transactions in flight, 1..1024; 0: 8 */
    int until_caught_up;         /* return 0 once every source revision seen at start is applied */
    volatile sig_atomic_t *stop; /* set by a signal handler: drain and return 0 */
    /* Fencing epochs (drd/lib/epoch): every session starts by checking that the source is the
     * primary of the newest epoch either side records (DR_ESTALE otherwise, naming both). A
     * planned switchover drains the last revisions after raising the epoch for the target:
     * epoch_handover is that epoch (0: none). */
    int64_t epoch_handover;
} dr_repl_opts;

/* Live counters of a running replication: written by the replication's threads (the watch reader
 * and the applier), read by any thread (a status server). Atomic, so a reader never sees a torn
 * or stale value; plain reads and writes of the fields are atomic loads and stores. */
typedef struct dr_repl_stats {
    _Atomic int state;               /* dr_repl_state */
    _Atomic int64_t source_revision; /* newest source revision seen (only grows in a session) */
    _Atomic int64_t applied_revision;
    _Atomic int64_t lag_ms; /* age of the oldest source revision not yet applied */
    _Atomic int64_t events_total;
    _Atomic int64_t txns_total;
    _Atomic int64_t resyncs_total;
    _Atomic int64_t reconnects_total;
    _Atomic int64_t leases_granted_total;
    _Atomic int64_t retries_total; /* transactions refused by their ordering guard and resent */
    _Atomic int64_t start_ms;
} dr_repl_stats;

typedef enum {
    DR_REPL_STARTING = 0,
    DR_REPL_SYNCING,   /* initial copy / resync (filtered) */
    DR_REPL_STREAMING, /* watching and applying */
    DR_REPL_RECONNECTING,
    DR_REPL_ALARM, /* stopped: diverged, not seeded or compacted past the cursor (exact) */
    DR_REPL_STOPPED
} dr_repl_state;

const char *dr_repl_state_name(int state);

/* Validate options (prefix/exclude/dest-prefix combinations, ranges; 0 and NULL mean the
 * defaults). 0 or DR_EUSAGE. dr_repl_run, _status_get and _verify check them too. */
int dr_repl_check_opts(const dr_repl_opts *o);

/* Whether the source key is one o replicates (filtered mode: under a prefix, not excluded, not
 * drd's own cursor or epoch record): 1 or 0, DR_ENOMEM. */
int dr_repl_key_replicated(const dr_repl_opts *o, const uint8_t *key, size_t key_len);

/* Run replication until stopped (or caught up). Reconnects with backoff on network errors.
 * Returns 0, or DR_EDIVERGED / DR_ENOTSEEDED / DR_ECOMPACTED (exact-mode alarms, message names
 * the reseed command), DR_ETOOMANYOPS, DR_EUSAGE, or a connection error when the endpoints are
 * unreachable at start. stats may be NULL. */
int dr_repl_run(const dr_repl_opts *o, dr_repl_stats *stats);

/* One replication job's series in /metrics. */
typedef struct dr_repl_metrics_job {
    const dr_repl_stats *stats;
    const char *name;   /* label name */
    int64_t max_lag_ms; /* drd_replicate_max_lag_seconds; 0: not checked, no series */
    int ready;          /* drd_replicate_ready: what /readyz says of the job */
    int alarm;          /* drd_replicate_alarm: the alarm's error code while stopped by one; 0 */
} dr_repl_metrics_job;

/* Prometheus text for n replication jobs (metric names drd_replicate_*, label name), appended
 * to b: each family once, with every job's series, as the text format requires. */
int dr_repl_metrics(const dr_repl_metrics_job *jobs, size_t n, dr_buf *b);

/* One-shot status: source revision, applied revision (target revision in exact mode, cursor in
 * filtered mode), lag. JSON or text into b. */
typedef struct dr_repl_status {
    int64_t source_revision;
    int64_t applied_revision;
    int64_t lag_revisions;
    int64_t source_compact_revision;
    const char *state; /* "in-sync", "lagging", "not-seeded", "diverged", "no-cursor" */
} dr_repl_status;
int dr_repl_status_get(const dr_repl_opts *o, dr_repl_status *st);

/* Compare source and target at the target's applied revision: HashKV when the compact revisions
 * match (exact mode), else a paged key-by-key comparison. 0 when equal, DR_EDIVERGED otherwise
 * (message names the first difference). *compared gets the revision compared. */
int dr_repl_verify(const dr_repl_opts *o, int64_t *compared, int64_t *nkeys);

/* Seed: snapshot the source into a fresh data dir for a standby etcd (via etcdctl/etcdutl
 * snapshot restore). Refuses a non-empty data dir. With members_dir instead of data_dir, name and
 * peer URLs, every member of initial_cluster ("a=http://..,b=http://..") gets members_dir/<name>,
 * all from one snapshot (one stream from the source), as a new multi-member standby needs. */
typedef struct dr_repl_seed_opts {
    dr_etcd_opts source;
    const char *data_dir;
    const char *name;
    const char *initial_cluster;
    const char *initial_advertise_peer_urls;
    const char *members_dir;
} dr_repl_seed_opts;
int dr_repl_seed(const dr_repl_seed_opts *o, int64_t *revision);

#endif
