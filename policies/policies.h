/*
 * policies: the policy model of drd (retention of snapshots and segments; later schedules,
 * filters, runbook steps).
 *
 * Pure logic: nothing here does I/O, reads the clock or touches a store. Callers hand in what the
 * store holds and get back decisions they carry out themselves. A plan must never delete a point
 * that a restore of a kept point needs (see docs/retention.md).
 */
#ifndef DRD_POLICIES_H
#define DRD_POLICIES_H

#include <stddef.h>
#include <stdint.h>

/* ---- retention ---- */

typedef enum { DR_POINT_FULL = 0, DR_POINT_INCR = 1 } dr_point_kind;

/* One object of the snapshot store, as retention sees it.
 *  - DR_POINT_FULL: a full snapshot at revision rev_end (rev_start is ignored); time_ms is its
 *    creation time.
 *  - DR_POINT_INCR: a segment holding revisions [rev_start, rev_end]; time_ms is the time of its
 *    last event (or its close).
 * Times are wall-clock milliseconds since the epoch; their UTC calendar gives the buckets. */
typedef struct dr_point {
    const char *id; /* borrowed; printed in reasons */
    dr_point_kind kind;
    int64_t rev_start, rev_end;
    int64_t time_ms;
} dr_point;

/* Counts of full snapshots to keep per rule; 0 disables a rule, negative is refused. */
typedef struct dr_retention {
    int keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly;
} dr_retention;

/* The decision for one point: keep (1) or delete (0), and why in one line, e.g.
 * "keep-last 1/3, daily 2026-11-21 (2/7)". */
typedef struct dr_retention_decision {
    int keep;
    char reason[160];
} dr_retention_decision;

/* Decides which points to keep under policy r (grandfather-father-son for full snapshots, every
 * segment after the oldest kept full snapshot for point-in-time restore; docs/retention.md).
 * pts holds n points in any order; out (n entries, caller-owned) gets out[i] for pts[i]. The plan
 * depends only on the points (never on the current time) and not on their order.
 * Returns 0, DR_EUSAGE when every keep option is 0 (refusing to delete everything), an option is
 * negative, or a point is malformed (no id, unknown kind, rev_start > rev_end for a segment, time
 * outside the calendar), DR_ENOMEM. On error out is left undefined. */
int dr_retention_plan(const dr_retention *r, const dr_point *pts, size_t n,
                      dr_retention_decision *out);

#endif
