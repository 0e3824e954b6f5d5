/*
 * Retention planning: which full snapshots and segments of a store to keep.
 *
 * Full snapshots follow grandfather-father-son rules as restic and borg apply them: sorted newest
 * first, keep-last takes the N newest, and each calendar rule (UTC hour, UTC day, ISO-8601 week,
 * UTC month) takes the newest snapshot of each distinct bucket until N buckets are taken.
 * Segments are kept from the oldest kept full snapshot onward, so that every point from there to
 * the newest segment can be restored (as pgBackRest keeps WAL from its oldest retained backup).
 *
 * Must never: delete a segment a kept point may replay, depend on the current time or on the
 * order of its input, or do I/O. docs/retention.md is the user-facing description.
 */
#include "policies/policies.h"
#include "drd/core/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RULE_LAST, RULE_HOURLY, RULE_DAILY, RULE_WEEKLY, RULE_MONTHLY, NRULES };

static const char *const rule_name[NRULES] = {"keep-last", "hourly", "daily", "weekly", "monthly"};

/* A full snapshot with its calendar buckets, e.g. "2026-11-21T10", "2026-11-21", "2026-W47",
 * "2026-11" (rule_last has none). */
typedef struct full {
    const dr_point *p;
    size_t idx;
    char bucket[NRULES][32];
} full;

DR_PRINTF(4, 5)
static void addf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (*len + 1 >= cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *len += (size_t)n;
    if (*len > cap - 1)
        *len = cap - 1;
}

/* Buckets of a time in ms since the epoch; DR_EUSAGE when the calendar cannot hold it. */
static int fill_buckets(full *f)
{
    int64_t ms = f->p->time_ms;
    time_t s = (time_t)(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
    struct tm tm;
    if (!gmtime_r(&s, &tm))
        return dr_error_set(DR_EUSAGE, "snapshot '%s' has a time out of range (%lld ms)", f->p->id,
                            (long long)ms);
    f->bucket[RULE_LAST][0] = 0;
    /* Literal formats (one call each) keep the format checker able to see them. */
    if (!strftime(f->bucket[RULE_HOURLY], sizeof f->bucket[0], "%Y-%m-%dT%H", &tm) ||
        !strftime(f->bucket[RULE_DAILY], sizeof f->bucket[0], "%Y-%m-%d", &tm) ||
        !strftime(f->bucket[RULE_WEEKLY], sizeof f->bucket[0], "%G-W%V", &tm) ||
        !strftime(f->bucket[RULE_MONTHLY], sizeof f->bucket[0], "%Y-%m", &tm))
        return dr_error_set(DR_EUSAGE, "snapshot '%s' has a time out of range (%lld ms)", f->p->id,
                            (long long)ms);
    return 0;
}

/* Newest first: by time, then by revision, then by id; the input index only separates exact
 * duplicates, so the order (and every reason naming a snapshot) is independent of input order. */
static int newer_first(const void *a, const void *b)
{
    const full *x = a, *y = b;
    int c;
    if (x->p->time_ms != y->p->time_ms)
        return x->p->time_ms > y->p->time_ms ? -1 : 1;
    if (x->p->rev_end != y->p->rev_end)
        return x->p->rev_end > y->p->rev_end ? -1 : 1;
    c = strcmp(x->p->id, y->p->id);
    if (c)
        return c > 0 ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static int check_policy(const dr_retention *r, int want[NRULES])
{
    static const char *const opt[NRULES] = {"--keep-last", "--keep-hourly", "--keep-daily",
                                            "--keep-weekly", "--keep-monthly"};
    int any = 0;
    want[RULE_LAST] = r->keep_last;
    want[RULE_HOURLY] = r->keep_hourly;
    want[RULE_DAILY] = r->keep_daily;
    want[RULE_WEEKLY] = r->keep_weekly;
    want[RULE_MONTHLY] = r->keep_monthly;
    for (int k = 0; k < NRULES; k++) {
        if (want[k] < 0)
            return dr_error_set(DR_EUSAGE, "%s must not be negative (got %d)", opt[k], want[k]);
        any |= want[k] > 0;
    }
    if (!any)
        return dr_error_set(DR_EUSAGE,
                            "retention policy keeps nothing: refusing to delete every "
                            "snapshot\nHINT: set at least one of --keep-last, "
                            "--keep-hourly, --keep-daily, --keep-weekly, --keep-monthly");
    return 0;
}

static int check_point(const dr_point *p, size_t i)
{
    if (!p->id)
        return dr_error_set(DR_EUSAGE, "retention: point %zu has no id", i);
    if (p->kind != DR_POINT_FULL && p->kind != DR_POINT_INCR)
        return dr_error_set(DR_EUSAGE, "retention: point '%s' has unknown kind %d", p->id,
                            (int)p->kind);
    if (p->kind == DR_POINT_INCR && p->rev_start > p->rev_end)
        return dr_error_set(DR_EUSAGE, "retention: segment '%s' starts after it ends (%lld > %lld)",
                            p->id, (long long)p->rev_start, (long long)p->rev_end);
    return 0;
}

/* Applies the rules to the sorted fulls, writing their decisions. */
static void plan_fulls(const int want[NRULES], full *f, size_t nf, dr_retention_decision *out)
{
    int taken[NRULES] = {0};
    const char *last[NRULES] = {NULL};
    for (size_t k = 0; k < nf; k++) {
        dr_retention_decision *d = &out[f[k].idx];
        char why_not[sizeof d->reason];
        size_t len = 0, wlen = 0;
        why_not[0] = 0;
        d->keep = 0;
        d->reason[0] = 0;
        for (int r = 0; r < NRULES; r++) {
            const char *b = f[k].bucket[r];
            if (want[r] == 0)
                continue;
            if (r == RULE_LAST) {
                if (taken[r] < want[r]) {
                    taken[r]++;
                    addf(d->reason, sizeof d->reason, &len, "%s%s %d/%d", len ? ", " : "",
                         rule_name[r], taken[r], want[r]);
                } else {
                    addf(why_not, sizeof why_not, &wlen, "%s%s %d/%d taken", wlen ? ", " : "",
                         rule_name[r], want[r], want[r]);
                }
            } else if (last[r] && strcmp(last[r], b) == 0) {
                addf(why_not, sizeof why_not, &wlen, "%s%s %s already kept", wlen ? ", " : "",
                     rule_name[r], b);
            } else if (taken[r] < want[r]) {
                taken[r]++;
                last[r] = b;
                addf(d->reason, sizeof d->reason, &len, "%s%s %s (%d/%d)", len ? ", " : "",
                     rule_name[r], b, taken[r], want[r]);
            } else {
                addf(why_not, sizeof why_not, &wlen, "%s%s %d/%d taken", wlen ? ", " : "",
                     rule_name[r], want[r], want[r]);
            }
        }
        if (len) {
            d->keep = 1;
        } else if (k == 0) {
            /* Unreachable with a valid policy (every rule takes the newest), kept as a guard. */
            d->keep = 1;
            addf(d->reason, sizeof d->reason, &len, "newest full snapshot");
        } else {
            addf(d->reason, sizeof d->reason, &len, "no rule keeps it: %s", why_not);
        }
    }
}

/* Segment decisions against the kept full with the lowest revision (base, NULL when none). */
static void plan_segments(const dr_point *pts, size_t n, const dr_point *base,
                          dr_retention_decision *out)
{
    for (size_t i = 0; i < n; i++) {
        const dr_point *p = &pts[i];
        dr_retention_decision *d = &out[i];
        char *s = d->reason;
        size_t cap = sizeof d->reason, len = 0;
        if (p->kind != DR_POINT_INCR)
            continue;
        s[0] = 0;
        if (!base) {
            d->keep = 1;
            addf(s, cap, &len, "no full snapshot in the store: kept until one exists");
        } else if (p->rev_end <= base->rev_end) {
            d->keep = 0;
            addf(s, cap, &len,
                 "before the oldest kept full snapshot %s (rev %lld): no kept point needs it",
                 base->id, (long long)base->rev_end);
        } else if (p->rev_start <= base->rev_end) {
            d->keep = 1;
            addf(s, cap, &len,
                 "straddles the oldest kept full snapshot %s (rev %lld): replays from it", base->id,
                 (long long)base->rev_end);
        } else {
            d->keep = 1;
            addf(s, cap, &len,
                 "after the oldest kept full snapshot %s (rev %lld): point-in-time restore",
                 base->id, (long long)base->rev_end);
        }
    }
}

int dr_retention_plan(const dr_retention *r, const dr_point *pts, size_t n,
                      dr_retention_decision *out)
{
    int rc = 0;
    int want[NRULES];
    full *f = NULL;
    size_t nf = 0;
    const dr_point *base = NULL;

    if (!r || (n && (!pts || !out))) {
        rc = dr_error_set(DR_EUSAGE, "retention: missing policy, points or decisions");
        goto out;
    }
    rc = check_policy(r, want);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        rc = check_point(&pts[i], i);
        if (rc < 0)
            goto out;
        nf += pts[i].kind == DR_POINT_FULL;
    }
    f = calloc(nf ? nf : 1, sizeof *f);
    if (!f) {
        rc = dr_error_set(DR_ENOMEM, "retention: out of memory for %zu snapshots", nf);
        goto out;
    }
    nf = 0;
    for (size_t i = 0; i < n; i++) {
        if (pts[i].kind != DR_POINT_FULL)
            continue;
        f[nf].p = &pts[i];
        f[nf].idx = i;
        rc = fill_buckets(&f[nf]);
        if (rc < 0)
            goto out;
        nf++;
    }
    qsort(f, nf, sizeof *f, newer_first);
    plan_fulls(want, f, nf, out);

    /* The base of point-in-time restore: the kept full with the lowest revision (in one cluster's
     * history also the oldest in time); on equal revisions the older in sort order. */
    for (size_t k = 0; k < nf; k++)
        if (out[f[k].idx].keep && (!base || f[k].p->rev_end <= base->rev_end))
            base = f[k].p;
    plan_segments(pts, n, base, out);
out:
    free(f);
    return rc;
}
