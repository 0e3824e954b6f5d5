/*
 * Private to replicate/: the watch reader thread with its bounded queue, the lease mirror, and
 * the two mode loops. Nothing outside this folder includes it.
 */
#ifndef DRD_REPL_INT_H
#define DRD_REPL_INT_H

#include "replicate/replicate.h"
#include "drd/lib/epoch/epoch.h"

#include <pthread.h>

/* ---- when source revisions were first known to exist ---- */

/* (head revision, time first seen) pairs, both increasing. A revision was first known to exist
 * at the time of the first mark at or above it; its lag counts from then. Marks closer than
 * REPL_MARK_MS are one mark (the earlier time: the lag is overstated by that at most); when the
 * array is full, neighbours merge the same way, halving the resolution. Not locked (repl_head). */
enum { REPL_MARKS = 512, REPL_MARK_MS = 100, REPL_POLL_MS = 500 };
typedef struct repl_marks {
    struct {
        int64_t rev, ms;
    } m[REPL_MARKS];
    size_t lo, n; /* live marks are m[lo..n) */
} repl_marks;
/* The source's newest revision was rev at time ms (a lower or equal rev adds nothing). */
void repl_marks_note(repl_marks *k, int64_t rev, int64_t ms);
/* Drops the marks of revisions at or below applied: never asked for again. */
void repl_marks_forget(repl_marks *k, int64_t applied);
/* When rev was first known to exist; now_ms when no mark covers it. */
int64_t repl_marks_first_seen(const repl_marks *k, int64_t rev, int64_t now_ms);

/* The source's head over a whole replication (dr_repl_run owns it, sessions come and go): the
 * marks, fed by the revision in each watch response's header (the source's newest when it was
 * sent), and by a thread of its own that asks the source's Status (its own connection, 2 s
 * timeout) whenever nothing was noted for REPL_POLL_MS: while the reader's queue is full and it
 * reads nothing, and while a session reconnects. So revisions that wait at the source count
 * their wait in the lag, however small the queue (it bounds memory, not the lag it can show). */
typedef struct repl_head repl_head;
/* Starts the poller on the source. DR_ENOMEM, or a thread that cannot start (DR_EGENERIC). */
int repl_head_new(const dr_etcd_opts *source, dr_repl_stats *st, repl_head **out);
void repl_head_free(repl_head *h);
void repl_head_note(repl_head *h, int64_t rev);
/* When rev was first known to exist, or 0 when not yet; forgets the revisions up to the
 * stats' applied revision first. */
int64_t repl_head_first_seen(repl_head *h, int64_t rev);

/* ---- watch reader: source watch -> bounded queue (backpressure, not buffering) ---- */

/* The queue's bound, in res_bytes' estimate of the events' size (reader.c). */
#define REPL_QUEUE_BYTES (4u << 20)

typedef struct rq_item {
    dr_etcd_watch_res res;
    size_t bytes;
    int64_t arrival_ms; /* when its first revision was first known to exist (repl_head) */
    struct rq_item *next;
} rq_item;

typedef struct reader {
    dr_etcd_watch *w;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rq_item *head, *tail;
    size_t bytes, max_bytes;
    int rc; /* first error of the reader thread, with its message in err */
    char err[1024];
    int stop, started;
    dr_repl_stats *stats;
    uint64_t src_cluster; /* the source's cluster ID: an epoch record in the stream naming another
                             cluster stops the session (DR_ESTALE; drd/lib/epoch) */
    int64_t src_epoch; /* the source's own record at start: older ones in its history count not */
    char src_ep[128];
    repl_head *src_head; /* dr_repl_run's */
} reader;

/* 1 when a progress notification the reader asked for (WatchProgressRequest) means "every event
 * at or below its revision was sent" on an etcd of this version ("3.5.17"); 0 when not or unknown.
 * Before 3.4.31 / 3.5.13 etcd answers the request on a path that can overtake events still queued
 * for the watcher, with the store's current revision (etcd-io/etcd#15220, fixed in 3.4.25 / 3.5.8;
 * #17557 in 3.4.31 / 3.5.13): the bounds Kubernetes uses for the same trust. */
int repl_progress_trusted(const char *version);

/* Opens the watch from start_rev over [key, end) and starts the thread. DR_ECOMPACTED with
 * *compact_rev set when start_rev is compacted. */
int reader_start(reader *r, dr_etcd *src, const void *key, size_t klen, const void *end,
                 size_t elen, int64_t start_rev, dr_repl_stats *stats, repl_head *head,
                 int64_t *compact_rev);
/* Next item, waiting up to wait_ms. Returns 1 with *out, 0 on timeout, or the reader's error. */
int reader_pop(reader *r, int64_t wait_ms, rq_item **out);
/* Arrival time (repl_head: when its revision was first known to exist) of the oldest queued
 * item, or 0. */
int64_t reader_oldest_ms(reader *r);
void reader_stop(reader *r);
void rq_item_free(rq_item *it);

/* ---- event cursor over popped items: whole revisions at a time ---- */
typedef struct evcur {
    rq_item *items[8]; /* items the current revision spans (a revision is nearly always in one) */
    size_t n_items;
    rq_item *cur;
    size_t idx;
    const dr_etcd_event **evs; /* events of the current revision */
    size_t n_evs, cap_evs;
    int64_t rev;
    int64_t arrival_ms;
    int64_t progress_rev; /* revision of the last progress notification consumed */
} evcur;

/* Gathers the next revision's events. Returns 1 (evs/n_evs/rev set), 0 when nothing is queued
 * within wait_ms, or an error. Items of the previous revision are freed. */
int evcur_next(evcur *c, reader *r, int64_t wait_ms);
void evcur_free(evcur *c);

/* ---- lease mirror: target leases with the source's ids, kept alive while the source has them,
 * revoked once the source no longer has them and no key is attached on the target ---- */
typedef struct leases leases;
int leases_new(leases **out, dr_etcd *src, dr_etcd *tgt, dr_repl_stats *stats);
/* Load every lease the target has (exact mode: they are all ours). */
int leases_adopt_all(leases *l);
/* Make sure lease id exists on the target (grant it with the source's ttl). */
int leases_ensure(leases *l, int64_t id);
void leases_free(leases *l);

/* ---- mode loops (exact.c, filtered.c) and session helpers (replicate.c, reader.c) ---- */
int repl_run_exact(const dr_repl_opts *o, dr_repl_stats *st, repl_head *head, dr_etcd *src,
                   dr_etcd *tgt, int first);
int repl_run_filtered(const dr_repl_opts *o, dr_repl_stats *st, repl_head *head, dr_etcd *src,
                      dr_etcd *tgt, int first);
/* Source compact revision (probe: a watch from revision 1 is cancelled with it). */
int repl_compact_revision(dr_etcd *e, int64_t *out);
/* *out = *o with the defaults filled in (name, window, max_txn_ops), then checked. */
int repl_opts_resolve(const dr_repl_opts *o, dr_repl_opts *out);
/* Raise a stat to v unless it is already higher (several threads see source revisions). */
void repl_stat_max(_Atomic int64_t *stat, int64_t v);
/* Is rc a network problem worth a reconnect (vs an alarm or a usage error)? */
int repl_is_transient(int rc);
void repl_set_lag(dr_repl_stats *st, int64_t oldest_ms);

/* ---- reading both sides (compare.c) ---- */

/* A paged cursor over [key, end) at a revision (0: newest): one page in memory. */
typedef struct pager {
    dr_etcd *e;
    dr_buf next;
    uint8_t end[1024];
    size_t end_len;
    int64_t rev;
    dr_etcd_range_res page;
    size_t i;
    int done;
} pager;
/* prefix NULL or "": every key. */
int repl_pager_init(pager *p, dr_etcd *e, const char *prefix, int64_t rev);
/* Makes the current key available (reads the next page when needed); sets done at the end. */
int repl_pager_fill(pager *p);
/* The current key after repl_pager_fill, NULL when done. Borrowed from the page. */
const dr_etcd_kv *repl_pager_cur(pager *p);
void repl_pager_free(pager *p);
/* Byte strings in etcd's key order (memcmp, shorter first on a tie); either may be empty. */
int repl_kv_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);
int repl_same_bytes(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);
/* Target keys resync and compare leave alone: drd's cursors and the mapped excludes. */
int repl_target_ignored(const dr_repl_opts *o, const uint8_t *k, size_t kl);

/* Filtered-mode key mapping: 1 and the target key in out when k is replicated, else 0. */
int repl_map_key(const dr_repl_opts *o, const uint8_t *k, size_t kl, dr_buf *out);
/* The cursor key of a filtered replication. */
void repl_cursor_key(const dr_repl_opts *o, char *out, size_t cap);
/* Read the filtered cursor: 1 and *rev when present, 0 when absent. */
int repl_read_cursor(const dr_repl_opts *o, dr_etcd *tgt, int64_t *rev);

#define REPL_CURSOR_ROOT "/drd/replicate/"

/* Key-by-key comparison of source at srev and target at trev (0 = newest) over the replicated
 * ranges; exact mode also compares create/mod revision and version. DR_EDIVERGED names the first
 * difference. */
int repl_compare(const dr_repl_opts *o, dr_etcd *src, dr_etcd *tgt, int64_t srev, int64_t trev,
                 int64_t *nkeys);
#endif
