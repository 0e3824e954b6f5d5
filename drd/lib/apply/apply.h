/*
 * drd/lib/apply: applies a stream of source revisions to an etcd so that each becomes exactly one
 * transaction at exactly its revision (revision-identical), with several requests in flight.
 * Used by exact replication (replicate/exact.c) and by the point-in-time replay of a restore.
 *
 * etcd does not apply concurrent Txn calls in the order they were sent, so each request is a
 * chain of revisions (nested transactions), each guarded by "this revision is not applied yet",
 * starting at the next revision to apply: whichever order etcd applies requests in, each applies
 * exactly the revision that is next, or nothing. The guards are exact because a revision that
 * touches a key of a revision still live (unconfirmed, or in a request in flight) is not admitted
 * until that one retires (dr_apply_admit returns 0). The argument in full: apply.c.
 *
 * Must never apply a revision twice, out of order or split, and never write anything but the
 * admitted revisions' operations. A request that held the next revision and wrote nothing, or an
 * answer with another revision than expected, is DR_EDIVERGED (someone else writes to the
 * target); the caller names the remedy.
 */
#ifndef DRD_APPLY_H
#define DRD_APPLY_H

#include "drd/lib/etcd/etcd.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dr_apply_op {
    int del; /* 1: delete key; 0: put key = value (with lease, 0 for none) */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t lease;
} dr_apply_op;

typedef struct dr_apply dr_apply;

/* An applier on target, which is at revision at. max_txn_ops: the target's --max-txn-ops (a chain
 * stays within it, summed over its levels; a revision with more operations must be applied by the
 * caller: dr_apply_skip). inflight: requests in flight at most (also levels per request). */
int dr_apply_new(dr_etcd *target, int64_t at, int64_t max_txn_ops, size_t inflight, dr_apply **out);
/* Cancels what is in flight. Accepts NULL. */
void dr_apply_free(dr_apply *a);

/* Admits revision rev (the admitted revision + 1) with its operations (copied): 1 when admitted,
 * 0 when it must wait (it touches a key of a live revision, or enough are admitted ahead): call
 * dr_apply_step and try again. DR_EUSAGE for a wrong revision or no operations. */
int dr_apply_admit(dr_apply *a, int64_t rev, const dr_apply_op *ops, size_t n, int64_t arrival_ms);
/* Sends what can be sent, then waits up to wait_ms for one answer and takes it. */
int dr_apply_step(dr_apply *a, int64_t wait_ms);
/* Until nothing is in flight (and, if everything admitted was sent, all of it is applied). */
int dr_apply_drain(dr_apply *a);
/* Everything up to rev-1 applied and nothing in flight; rev was applied by the caller. */
int dr_apply_skip(dr_apply *a, int64_t rev);

/* Every revision <= this one is applied on the target. */
int64_t dr_apply_confirmed(const dr_apply *a);
/* The newest admitted revision. */
int64_t dr_apply_admitted(const dr_apply *a);
size_t dr_apply_inflight(const dr_apply *a);
/* Arrival time of the oldest admitted revision not yet confirmed, or 0. */
int64_t dr_apply_oldest_ms(const dr_apply *a);
/* Counters: events applied, requests that applied a revision, requests that wrote nothing. */
void dr_apply_counts(const dr_apply *a, int64_t *events, int64_t *txns, int64_t *noops);

#endif
