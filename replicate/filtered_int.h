/*
 * Private to filtered.c and resync.c: the state of one filtered-mode session.
 */
#ifndef DRD_REPL_FILTERED_INT_H
#define DRD_REPL_FILTERED_INT_H

#include "repl_int.h"

/*
 * The batch ring: fs.ring[cap], slots [head, head + count) in use in source-revision order, the
 * others B_FREE. Each batch is one transaction: the whole revisions (first_rev..last_rev) plus
 * "cursor = last_rev", guarded by "cursor == prev_cursor" (the previous slot's last_rev, or
 * fs.confirmed for the head). So at most one batch in flight can hold its guard at a time, and the
 * target applies them in ring order however etcd orders the pipelined calls.
 *
 *                  submit (built by the run loop)
 *     B_FREE -----------------------------------------> B_INFLIGHT <---------+
 *       ^                                                |     |             |
 *       | retire: only the head, in ring order;          | ok  | refused,    | resend: it is the
 *       | fs.confirmed = last_rev, head++, count--       |     | !after_pred | head, or its
 *       |                                                v     v             | predecessor was
 *     B_OK <---------------------------------------------+   B_RETRY -------+ resent in the same
 *            guard held, or refused with cursor == last_rev                     pass
 *            (it was applied already)
 *
 *   refused with after_pred set (its predecessor was applied when it was sent, so the guard had
 *   to hold): someone else moved the cursor -> DR_EDIVERGED, the session ends. A failed call
 *   (not a refused guard) ends the session as well; the next one restarts from the cursor on the
 *   target, so nothing in the ring has to survive it.
 *
 * Invariants: a slot is B_OK only if every slot before it is applied on the target (guards
 * chain); B_RETRY slots are resent only from the head on, in order (resending one behind a slot
 * that is not in flight would only be refused again); fs.confirmed is the cursor on the target
 * once every reply has come back, and fs.chain the cursor the newest submitted batch writes.
 */
enum { B_FREE = 0, B_INFLIGHT, B_OK, B_RETRY };

/* A transaction's keys and values at most: etcd refuses a request over its --max-request-bytes
 * (default 1.5 MiB), so batches (and resync's writes) close at --max-txn-ops or at this size,
 * whichever comes first (the budget of drd/lib/apply too). One revision larger than this still
 * goes alone: the source took it in one request. */
#define TXN_BYTES (1u << 20)

typedef struct fbatch {
    dr_etcd_txn *txn;
    int64_t first_rev, last_rev, prev_cursor;
    int state;      /* B_* */
    int after_pred; /* sent when its predecessor was known to be applied (or it is the head) */
    int64_t arrival_ms;
    size_t nevents;
} fbatch;

typedef struct fs {
    const dr_repl_opts *o;
    dr_repl_stats *st;
    dr_etcd *src, *tgt;
    dr_etcd_pipe *pipe;
    leases *ls;
    char ck[512];
    size_t ckl;
    fbatch *ring;
    size_t cap, head, count;
    int64_t confirmed; /* cursor value known to be on the target */
    int64_t chain;     /* cursor value the last submitted transaction writes */
    int64_t last_cursor_write_ms;
    /* keys of the batch being built, to close it before a key repeats (etcd refuses that) */
    uint64_t *keyset;
    size_t keyset_cap, keyset_n;
    dr_buf kbuf;
} fs;

/* Resync (resync.c): copy the mapped ranges at the source's current revision, delete what the
 * source no longer has, then write the cursor; sets f->confirmed = f->chain = that revision. */
int repl_resync(fs *f);

#endif
