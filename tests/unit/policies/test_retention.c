/* Unit tests for policies/retention.c: GFS selection of full snapshots, segment coverage from the
 * oldest kept full, calendar edges (ISO weeks across years), ties, input-order independence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/core/core.h"
#include "policies/policies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)

/* A test history: points with ids stored alongside. */
typedef struct history {
    dr_point *pts;
    char (*ids)[64];
    size_t n, cap;
} history;

static void hist_add(history *h, const char *id, dr_point_kind kind, int64_t rs, int64_t re,
                     int64_t t)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->pts = realloc(h->pts, h->cap * sizeof *h->pts);
        h->ids = realloc(h->ids, h->cap * sizeof *h->ids);
        assert_non_null(h->pts);
        assert_non_null(h->ids);
    }
    snprintf(h->ids[h->n], sizeof h->ids[0], "%s", id);
    h->pts[h->n] = (dr_point){.kind = kind, .rev_start = rs, .rev_end = re, .time_ms = t};
    h->n++;
}

/* ids move with realloc: point at them once the history is complete. */
static void hist_seal(history *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->pts[i].id = h->ids[i];
}

static void hist_free(history *h)
{
    free(h->pts);
    free(h->ids);
}

static void add_full(history *h, const char *id, int64_t rev, int64_t t)
{
    hist_add(h, id, DR_POINT_FULL, rev, rev, t);
}

static dr_retention_decision *plan_ok(const dr_retention *r, history *h)
{
    dr_retention_decision *d = calloc(h->n ? h->n : 1, sizeof *d);
    assert_non_null(d);
    int rc = dr_retention_plan(r, h->pts, h->n, d);
    if (rc != 0)
        fail_msg("dr_retention_plan: %s", dr_error_msg());
    for (size_t i = 0; i < h->n; i++) {
        assert_true(d[i].keep == 0 || d[i].keep == 1);
        assert_true(strlen(d[i].reason) > 0);
        assert_true(strlen(d[i].reason) < sizeof d[i].reason);
    }
    return d;
}

static size_t find(const history *h, const char *id)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->pts[i].id, id) == 0)
            return i;
    fail_msg("no point '%s'", id);
    return 0;
}

/* Asserts exactly the ids in keep (NULL-terminated) are kept. */
static void assert_kept_exactly(const history *h, const dr_retention_decision *d,
                                const char *const *keep)
{
    size_t nk = 0;
    for (; keep[nk]; nk++)
        if (!d[find(h, keep[nk])].keep)
            fail_msg("'%s' deleted (%s), expected kept", keep[nk], d[find(h, keep[nk])].reason);
    size_t kept = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (!d[i].keep)
            continue;
        kept++;
        int listed = 0;
        for (size_t j = 0; j < nk; j++)
            listed |= strcmp(keep[j], h->pts[i].id) == 0;
        if (!listed)
            fail_msg("'%s' kept (%s), expected deleted", h->pts[i].id, d[i].reason);
    }
    assert_int_equal(kept, nk);
}

static int64_t utc(int y, int mo, int d, int hh)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = hh};
    return (int64_t)timegm(&tm) * 1000;
}

static void test_refuses_bad_policy(void **state)
{
    (void)state;
    history h = {0};
    add_full(&h, "a", 10, utc(2026, 11, 21, 0));
    hist_seal(&h);
    dr_retention_decision d[1];
    dr_retention zero = {0};
    assert_int_equal(dr_retention_plan(&zero, h.pts, h.n, d), DR_EUSAGE);
    assert_non_null(strstr(dr_error_msg(), "keeps nothing"));
    /* Refused even for an empty store: the policy is wrong, whatever the store holds. */
    assert_int_equal(dr_retention_plan(&zero, NULL, 0, NULL), DR_EUSAGE);
    dr_retention neg = {.keep_last = 3, .keep_daily = -1};
    assert_int_equal(dr_retention_plan(&neg, h.pts, h.n, d), DR_EUSAGE);
    assert_string_equal(dr_error_msg(), "--keep-daily must not be negative (got -1)");
    dr_retention last = {.keep_last = 1};
    assert_int_equal(dr_retention_plan(&last, NULL, 0, NULL), 0);
    assert_int_equal(dr_retention_plan(NULL, h.pts, h.n, d), DR_EUSAGE);

    /* Malformed points. */
    hist_add(&h, "seg", DR_POINT_INCR, 20, 11, utc(2026, 11, 21, 1));
    hist_seal(&h);
    dr_retention_decision d2[2];
    assert_int_equal(dr_retention_plan(&last, h.pts, h.n, d2), DR_EUSAGE);
    assert_non_null(strstr(dr_error_msg(), "segment 'seg' starts after it ends"));
    h.pts[1].rev_start = 11;
    h.pts[1].kind = (dr_point_kind)7;
    assert_int_equal(dr_retention_plan(&last, h.pts, h.n, d2), DR_EUSAGE);
    assert_non_null(strstr(dr_error_msg(), "unknown kind 7"));
    h.pts[1].kind = DR_POINT_INCR;
    h.pts[1].id = NULL;
    assert_int_equal(dr_retention_plan(&last, h.pts, h.n, d2), DR_EUSAGE);
    h.pts[1].id = h.ids[1];
    /* Any 64-bit time has a calendar (64-bit time_t): the extremes plan without overflow. */
    h.pts[0].time_ms = INT64_MAX;
    assert_int_equal(dr_retention_plan(&last, h.pts, h.n, d2), 0);
    h.pts[0].time_ms = INT64_MIN;
    assert_int_equal(dr_retention_plan(&last, h.pts, h.n, d2), 0);
    assert_true(d2[0].keep && d2[1].keep);
    hist_free(&h);
}

static void test_keep_last_only(void **state)
{
    (void)state;
    history h = {0};
    /* Input deliberately not in time order. */
    add_full(&h, "s3", 300, utc(2026, 11, 21, 3));
    add_full(&h, "s1", 100, utc(2026, 11, 21, 1));
    add_full(&h, "s5", 500, utc(2026, 11, 21, 5));
    add_full(&h, "s2", 200, utc(2026, 11, 21, 2));
    add_full(&h, "s4", 400, utc(2026, 11, 21, 4));
    hist_seal(&h);
    dr_retention r = {.keep_last = 2};
    dr_retention_decision *d = plan_ok(&r, &h);
    assert_kept_exactly(&h, d, (const char *const[]){"s5", "s4", NULL});
    assert_string_equal(d[find(&h, "s5")].reason, "keep-last 1/2");
    assert_string_equal(d[find(&h, "s4")].reason, "keep-last 2/2");
    assert_string_equal(d[find(&h, "s1")].reason, "no rule keeps it: keep-last 2/2 taken");
    free(d);

    /* More than the store holds: everything stays. */
    r.keep_last = 10;
    d = plan_ok(&r, &h);
    assert_kept_exactly(&h, d, (const char *const[]){"s1", "s2", "s3", "s4", "s5", NULL});
    assert_string_equal(d[find(&h, "s1")].reason, "keep-last 5/10");
    free(d);
    hist_free(&h);
}

/* ISO-8601 weeks belong to the year of their Thursday (checked with `date -u -d D +%G-W%V`):
 * 2026-12-28 Mon .. 2027-01-03 Sun are 2026-W53, 2027-01-04 is 2027-W01; 2024-12-29 Sun is
 * 2024-W52, 2024-12-30 Mon is 2025-W01. */
static void test_iso_week_year_boundary(void **state)
{
    (void)state;
    history h = {0};
    add_full(&h, "2024-12-29", 1, utc(2024, 12, 29, 12));
    add_full(&h, "2024-12-30", 2, utc(2024, 12, 30, 12));
    add_full(&h, "2026-12-28", 3, utc(2026, 12, 28, 12));
    add_full(&h, "2026-12-31", 4, utc(2026, 12, 31, 12));
    add_full(&h, "2027-01-01", 5, utc(2027, 1, 1, 12));
    add_full(&h, "2027-01-03", 6, utc(2027, 1, 3, 23));
    add_full(&h, "2027-01-04", 7, utc(2027, 1, 4, 0));
    hist_seal(&h);

    dr_retention r = {.keep_weekly = 10};
    dr_retention_decision *d = plan_ok(&r, &h);
    assert_kept_exactly(
        &h, d, (const char *const[]){"2027-01-04", "2027-01-03", "2024-12-30", "2024-12-29", NULL});
    assert_string_equal(d[find(&h, "2027-01-04")].reason, "weekly 2027-W01 (1/10)");
    assert_string_equal(d[find(&h, "2027-01-03")].reason, "weekly 2026-W53 (2/10)");
    assert_string_equal(d[find(&h, "2024-12-30")].reason, "weekly 2025-W01 (3/10)");
    assert_string_equal(d[find(&h, "2024-12-29")].reason, "weekly 2024-W52 (4/10)");
    assert_string_equal(d[find(&h, "2027-01-01")].reason,
                        "no rule keeps it: weekly 2026-W53 already kept");
    assert_string_equal(d[find(&h, "2026-12-28")].reason,
                        "no rule keeps it: weekly 2026-W53 already kept");
    free(d);

    /* Months and days follow the UTC calendar year, not the ISO one. */
    dr_retention m = {.keep_monthly = 3};
    d = plan_ok(&m, &h);
    assert_kept_exactly(&h, d,
                        (const char *const[]){"2027-01-04", "2026-12-31", "2024-12-30", NULL});
    assert_string_equal(d[find(&h, "2026-12-31")].reason, "monthly 2026-12 (2/3)");
    assert_string_equal(d[find(&h, "2024-12-30")].reason, "monthly 2024-12 (3/3)");
    assert_string_equal(d[find(&h, "2024-12-29")].reason,
                        "no rule keeps it: monthly 2024-12 already kept");
    free(d);

    /* Hours are UTC: 23:xx on 2027-01-03 and 00:xx on 2027-01-04 are different days and hours. */
    dr_retention dh = {.keep_daily = 2, .keep_hourly = 1};
    d = plan_ok(&dh, &h);
    assert_kept_exactly(&h, d, (const char *const[]){"2027-01-04", "2027-01-03", NULL});
    assert_string_equal(d[find(&h, "2027-01-04")].reason,
                        "hourly 2027-01-04T00 (1/1), daily 2027-01-04 (1/2)");
    assert_string_equal(d[find(&h, "2027-01-03")].reason, "daily 2027-01-03 (2/2)");
    assert_string_equal(d[find(&h, "2027-01-01")].reason,
                        "no rule keeps it: hourly 1/1 taken, daily 2/2 taken");
    free(d);
    hist_free(&h);

    /* Before the epoch, half a second before midnight is still 1969-12-31T23. */
    history e = {0};
    add_full(&e, "before", 1, -500);
    add_full(&e, "epoch", 2, 0);
    hist_seal(&e);
    d = plan_ok(&dh, &e);
    assert_kept_exactly(&e, d, (const char *const[]){"epoch", "before", NULL});
    assert_string_equal(d[find(&e, "before")].reason, "daily 1969-12-31 (2/2)");
    free(d);
    hist_free(&e);
}

/* Equal times: the higher revision is newer; equal time and revision: the greater id. */
static void test_ties(void **state)
{
    (void)state;
    int64_t t = utc(2026, 11, 21, 10) + 5 * 60000;
    history h = {0};
    add_full(&h, "lowrev", 100, t);
    add_full(&h, "highrev", 200, t);
    add_full(&h, "a", 50, t - 60000);
    add_full(&h, "b", 50, t - 60000);
    add_full(&h, "older-hour", 40, t - HOUR_MS);
    hist_seal(&h);

    dr_retention r = {.keep_last = 1};
    dr_retention_decision *d = plan_ok(&r, &h);
    assert_kept_exactly(&h, d, (const char *const[]){"highrev", NULL});
    free(d);

    /* Same hour: only the newest of the hour counts; "b" beats "a" on id at equal time and rev. */
    r = (dr_retention){.keep_hourly = 5};
    d = plan_ok(&r, &h);
    assert_kept_exactly(&h, d, (const char *const[]){"highrev", "older-hour", NULL});
    assert_string_equal(d[find(&h, "older-hour")].reason, "hourly 2026-11-21T09 (2/5)");
    assert_string_equal(d[find(&h, "lowrev")].reason,
                        "no rule keeps it: hourly 2026-11-21T10 already kept");
    free(d);

    r = (dr_retention){.keep_last = 3};
    d = plan_ok(&r, &h);
    assert_kept_exactly(&h, d, (const char *const[]){"highrev", "lowrev", "b", NULL});
    free(d);
    hist_free(&h);
}

/* Fulls at revisions 100, 200, 300; keep-last 2 keeps 300 and 200 (the oldest kept). */
static void test_segments(void **state)
{
    (void)state;
    history h = {0};
    add_full(&h, "f100", 100, utc(2026, 11, 21, 1));
    add_full(&h, "f200", 200, utc(2026, 11, 21, 2));
    add_full(&h, "f300", 300, utc(2026, 11, 21, 3));
    hist_add(&h, "s1-100", DR_POINT_INCR, 1, 100, utc(2026, 11, 21, 1));
    hist_add(&h, "s101-200", DR_POINT_INCR, 101, 200, utc(2026, 11, 21, 2));
    hist_add(&h, "s195-200", DR_POINT_INCR, 195, 200, utc(2026, 11, 21, 2));
    hist_add(&h, "s150-250", DR_POINT_INCR, 150, 250, utc(2026, 11, 21, 2));
    hist_add(&h, "s200-201", DR_POINT_INCR, 200, 201, utc(2026, 11, 21, 2));
    hist_add(&h, "s201-300", DR_POINT_INCR, 201, 300, utc(2026, 11, 21, 3));
    hist_add(&h, "s301-350", DR_POINT_INCR, 301, 350, utc(2026, 11, 21, 4));
    /* A segment's time does not matter, only its revisions. */
    hist_add(&h, "s201-210-oldtime", DR_POINT_INCR, 201, 210, utc(2020, 1, 1, 0));
    hist_seal(&h);

    dr_retention r = {.keep_last = 2};
    dr_retention_decision *d = plan_ok(&r, &h);
    assert_kept_exactly(&h, d,
                        (const char *const[]){"f200", "f300", "s150-250", "s200-201", "s201-300",
                                              "s301-350", "s201-210-oldtime", NULL});
    assert_string_equal(
        d[find(&h, "s101-200")].reason,
        "before the oldest kept full snapshot f200 (rev 200): no kept point needs it");
    assert_string_equal(d[find(&h, "s150-250")].reason,
                        "straddles the oldest kept full snapshot f200 (rev 200): replays from it");
    assert_string_equal(d[find(&h, "s200-201")].reason,
                        "straddles the oldest kept full snapshot f200 (rev 200): replays from it");
    assert_string_equal(
        d[find(&h, "s301-350")].reason,
        "after the oldest kept full snapshot f200 (rev 200): point-in-time restore");
    free(d);

    /* keep-last 3 moves the base to f100: every segment past revision 100 stays. */
    r.keep_last = 3;
    d = plan_ok(&r, &h);
    assert_false(d[find(&h, "s1-100")].keep);
    assert_true(d[find(&h, "s101-200")].keep);
    assert_true(d[find(&h, "s195-200")].keep);
    free(d);

    /* The base is the kept full with the lowest revision even when it is not the oldest in time
     * (a clock step back): segments it needs stay. */
    h.pts[find(&h, "f200")].time_ms = utc(2026, 11, 21, 5);
    r.keep_last = 2;
    d = plan_ok(&r, &h);
    assert_true(d[find(&h, "f200")].keep);
    assert_true(d[find(&h, "f300")].keep);
    assert_false(d[find(&h, "f100")].keep);
    assert_true(d[find(&h, "s201-300")].keep);
    assert_string_equal(
        d[find(&h, "s201-300")].reason,
        "after the oldest kept full snapshot f200 (rev 200): point-in-time restore");
    assert_false(d[find(&h, "s101-200")].keep);
    free(d);
    hist_free(&h);

    /* No full snapshot at all: nothing to decide segments against, they all stay. */
    history g = {0};
    hist_add(&g, "lonely", DR_POINT_INCR, 1, 10, utc(2026, 11, 21, 1));
    hist_seal(&g);
    d = plan_ok(&r, &g);
    assert_true(d[0].keep);
    assert_string_equal(d[0].reason, "no full snapshot in the store: kept until one exists");
    free(d);
    hist_free(&g);
}

/* Long ids are cut at the reason's size, never overflow it. */
static void test_long_ids(void **state)
{
    (void)state;
    history h = {0};
    char id[64];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = 0;
    add_full(&h, id, 100, utc(2026, 11, 21, 1));
    id[0] = 'y';
    add_full(&h, id, 200, utc(2026, 11, 21, 2));
    hist_add(&h, "seg", DR_POINT_INCR, 50, 150, utc(2026, 11, 21, 1));
    hist_seal(&h);
    /* A stored id can be longer than our test buffer: point one at a long string. */
    static char longid[600];
    memset(longid, 'z', sizeof longid - 1);
    h.pts[0].id = longid;
    dr_retention r = {.keep_last = 5,
                      .keep_hourly = 5,
                      .keep_daily = 5,
                      .keep_weekly = 5,
                      .keep_monthly = 1000000000};
    dr_retention_decision *d = plan_ok(&r, &h);
    size_t s = find(&h, "seg");
    assert_true(d[s].keep);
    assert_int_equal(strlen(d[s].reason), sizeof d[s].reason - 1);
    assert_memory_equal(d[s].reason, "straddles the oldest kept full snapshot zzz", 43);
    free(d);
    hist_free(&h);
}

/* ---- a synthetic history: a full every hour for 60 days, a segment between each two ---- */

#define NFULL (60 * 24)
static const int64_t T0 = 1788220800000LL; /* 2026-09-01T00:00:00Z (date -u -d 2026-09-01 +%s) */

static int64_t full_rev(int i)
{
    return 1000 + 10 * (int64_t)i;
}

static history synthetic(void)
{
    history h = {0};
    char id[64];
    for (int i = 0; i < NFULL; i++) {
        snprintf(id, sizeof id, "full-%04d", i);
        add_full(&h, id, full_rev(i), T0 + i * HOUR_MS);
        /* segment i: the events after full i up to the next full (or 5 past the last one) */
        snprintf(id, sizeof id, "seg-%04d", i);
        hist_add(&h, id, DR_POINT_INCR, full_rev(i) + 1,
                 i + 1 < NFULL ? full_rev(i + 1) : full_rev(i) + 5,
                 T0 + i * HOUR_MS + HOUR_MS - 1000);
    }
    hist_seal(&h);
    return h;
}

/* The expected set, computed another way: a full is kept by a calendar rule when it is the newest
 * of its bucket and fewer than N distinct buckets are newer than its own. Buckets from integer
 * arithmetic (weeks: days since the epoch, 1970-01-01 being a Thursday, so Monday-based week
 * number = floor((days + 3) / 7)); months from gmtime. */
static int64_t bucket_of(int rule, int64_t ms)
{
    int64_t s = ms / 1000;
    switch (rule) {
    case 0:
        return s / 3600;
    case 1:
        return s / 86400;
    case 2:
        return (s / 86400 + 3) / 7;
    default: {
        time_t tt = (time_t)s;
        struct tm tm;
        gmtime_r(&tt, &tm);
        return (int64_t)tm.tm_year * 12 + tm.tm_mon;
    }
    }
}

static void expected_set(const history *h, const dr_retention *r, int *keep)
{
    int want[4] = {r->keep_hourly, r->keep_daily, r->keep_weekly, r->keep_monthly};
    size_t nf = 0, *fi = calloc(h->n, sizeof *fi);
    int64_t *b = calloc(4 * h->n, sizeof *b);
    int *newest = calloc(4 * h->n, sizeof *newest);
    assert_true(fi && b && newest);
    for (size_t i = 0; i < h->n; i++) {
        keep[i] = 0;
        if (h->pts[i].kind == DR_POINT_FULL)
            fi[nf++] = i;
    }
    for (int rule = 0; rule < 4; rule++)
        for (size_t x = 0; x < nf; x++)
            b[rule * nf + x] = bucket_of(rule, h->pts[fi[x]].time_ms);
    /* newest[rule][x]: no full of the same bucket is newer than x */
    for (int rule = 0; rule < 4; rule++)
        for (size_t x = 0; x < nf; x++) {
            newest[rule * nf + x] = 1;
            for (size_t y = 0; y < nf; y++)
                if (b[rule * nf + y] == b[rule * nf + x] &&
                    h->pts[fi[y]].time_ms > h->pts[fi[x]].time_ms)
                    newest[rule * nf + x] = 0;
        }
    for (size_t x = 0; x < nf; x++) {
        const dr_point *p = &h->pts[fi[x]];
        int newer = 0;
        for (size_t y = 0; y < nf; y++)
            newer += h->pts[fi[y]].time_ms > p->time_ms;
        if (newer < r->keep_last)
            keep[fi[x]] = 1;
        for (int rule = 0; rule < 4; rule++) {
            /* distinct buckets holding a newer full = their newest members newer than x */
            int nb = 0;
            for (size_t y = 0; y < nf; y++)
                nb += newest[rule * nf + y] && b[rule * nf + y] != b[rule * nf + x] &&
                      h->pts[fi[y]].time_ms > p->time_ms;
            if (newest[rule * nf + x] && nb < want[rule])
                keep[fi[x]] = 1;
        }
    }
    int64_t base = INT64_MAX;
    for (size_t i = 0; i < h->n; i++)
        if (keep[i] && h->pts[i].rev_end < base)
            base = h->pts[i].rev_end;
    for (size_t i = 0; i < h->n; i++)
        if (h->pts[i].kind == DR_POINT_INCR)
            keep[i] = h->pts[i].rev_end > base;
    free(fi);
    free(b);
    free(newest);
}

static void test_synthetic_gfs(void **state)
{
    (void)state;
    history h = synthetic();
    dr_retention r = {
        .keep_last = 3, .keep_hourly = 24, .keep_daily = 7, .keep_weekly = 4, .keep_monthly = 6};
    dr_retention_decision *d = plan_ok(&r, &h);

    int *exp = calloc(h.n, sizeof *exp);
    assert_non_null(exp);
    expected_set(&h, &r, exp);
    for (size_t i = 0; i < h.n; i++)
        if (exp[i] != d[i].keep)
            fail_msg("%s: expected %s, got %s (%s)", h.pts[i].id, exp[i] ? "keep" : "delete",
                     d[i].keep ? "keep" : "delete", d[i].reason);

    /* By hand (the last full, 1439, is 2026-10-30T23:00Z, a Friday of 2026-W44):
     *  hourly 24: 1416..1439 (2026-10-30, every hour), keep-last 3 among them;
     *  daily 7: 23:00 of 10-30 .. 10-24: 1439, 1415, 1391, 1367, 1343, 1319, 1295;
     *  weekly 4: W44 1439, W43 (ends Sun 10-25) 1319, W42 (10-18) 1151, W41 (10-11) 983;
     *  monthly 6: only two months: 1439, 2026-09-30T23 719.
     * Segments: from the oldest kept full (719) on: seg-0719 .. seg-1439. */
    const char *const hand[] = {"full-1295", "full-1319", "full-1343", "full-1367", "full-1391",
                                "full-1415", "full-1151", "full-0983", "full-0719"};
    char id[32];
    size_t kept_full = 0, kept_seg = 0;
    for (size_t i = 0; i < h.n; i++) {
        if (!d[i].keep)
            continue;
        if (h.pts[i].kind == DR_POINT_FULL)
            kept_full++;
        else
            kept_seg++;
    }
    assert_int_equal(kept_full, 24 + 9);
    assert_int_equal(kept_seg, NFULL - 719);
    for (int i = 1416; i < NFULL; i++) {
        snprintf(id, sizeof id, "full-%04d", i);
        assert_true(d[find(&h, id)].keep);
    }
    for (size_t i = 0; i < sizeof hand / sizeof hand[0]; i++)
        assert_true(d[find(&h, hand[i])].keep);
    assert_true(d[find(&h, "seg-0719")].keep);
    assert_false(d[find(&h, "seg-0718")].keep);

    assert_string_equal(d[find(&h, "full-1439")].reason,
                        "keep-last 1/3, hourly 2026-10-30T23 (1/24), daily 2026-10-30 (1/7), "
                        "weekly 2026-W44 (1/4), monthly 2026-10 (1/6)");
    assert_string_equal(d[find(&h, "full-1437")].reason,
                        "keep-last 3/3, hourly 2026-10-30T21 (3/24)");
    assert_string_equal(d[find(&h, "full-1319")].reason,
                        "daily 2026-10-25 (6/7), weekly 2026-W43 (2/4)");
    assert_string_equal(d[find(&h, "full-0719")].reason, "monthly 2026-09 (2/6)");
    assert_string_equal(d[find(&h, "full-1414")].reason,
                        "no rule keeps it: keep-last 3/3 taken, hourly 24/24 taken, daily "
                        "2026-10-29 already kept, weekly 2026-W44 already kept, monthly "
                        "2026-10 already kept");
    assert_string_equal(
        d[find(&h, "seg-0718")].reason,
        "before the oldest kept full snapshot full-0719 (rev 8190): no kept point needs it");
    assert_string_equal(
        d[find(&h, "seg-0719")].reason,
        "after the oldest kept full snapshot full-0719 (rev 8190): point-in-time restore");

    /* Pruning again what the first plan kept deletes nothing. */
    history again = {0};
    for (size_t i = 0; i < h.n; i++)
        if (d[i].keep)
            hist_add(&again, h.pts[i].id, h.pts[i].kind, h.pts[i].rev_start, h.pts[i].rev_end,
                     h.pts[i].time_ms);
    hist_seal(&again);
    dr_retention_decision *d2 = plan_ok(&r, &again);
    for (size_t i = 0; i < again.n; i++)
        if (!d2[i].keep)
            fail_msg("second prune deletes %s (%s)", again.pts[i].id, d2[i].reason);
    free(d2);
    hist_free(&again);

    /* Other policies agree with the independent computation too. */
    const dr_retention others[] = {
        {.keep_daily = 10},
        {.keep_weekly = 3, .keep_monthly = 1},
        {.keep_last = 100, .keep_weekly = 52},
        {.keep_hourly = 48, .keep_monthly = 2},
        {.keep_monthly = 1},
    };
    for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
        dr_retention_decision *o = plan_ok(&others[k], &h);
        expected_set(&h, &others[k], exp);
        for (size_t i = 0; i < h.n; i++)
            if (exp[i] != o[i].keep)
                fail_msg("policy %zu, %s: expected %s, got %s (%s)", k, h.pts[i].id,
                         exp[i] ? "keep" : "delete", o[i].keep ? "keep" : "delete", o[i].reason);
        free(o);
    }
    free(exp);
    free(d);
    hist_free(&h);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The same points in other orders get the same decisions and reasons, point by point. */
static void test_order_independent(void **state)
{
    (void)state;
    history h = synthetic();
    /* Add ties so the order of equal times matters. */
    hist_add(&h, "tie-a", DR_POINT_FULL, full_rev(NFULL - 1), full_rev(NFULL - 1),
             T0 + (NFULL - 1) * HOUR_MS);
    hist_add(&h, "tie-b", DR_POINT_FULL, full_rev(NFULL - 1), full_rev(NFULL - 1),
             T0 + (NFULL - 1) * HOUR_MS);
    hist_seal(&h);
    dr_retention r = {
        .keep_last = 2, .keep_hourly = 24, .keep_daily = 7, .keep_weekly = 4, .keep_monthly = 6};
    dr_retention_decision *ref = plan_ok(&r, &h);
    assert_true(ref[find(&h, "tie-b")].keep);
    assert_string_equal(ref[find(&h, "tie-b")].reason,
                        "keep-last 1/2, hourly 2026-10-30T23 (1/24), daily 2026-10-30 (1/7), "
                        "weekly 2026-W44 (1/4), monthly 2026-10 (1/6)");
    assert_string_equal(ref[find(&h, "tie-a")].reason, "keep-last 2/2");

    dr_point *perm = malloc(h.n * sizeof *perm);
    dr_retention_decision *d = calloc(h.n, sizeof *d);
    assert_non_null(perm);
    assert_non_null(d);
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 5; round++) {
        memcpy(perm, h.pts, h.n * sizeof *perm);
        if (round == 0) {
            for (size_t i = 0; i < h.n / 2; i++) { /* reversed */
                dr_point t = perm[i];
                perm[i] = perm[h.n - 1 - i];
                perm[h.n - 1 - i] = t;
            }
        } else {
            for (size_t i = h.n - 1; i > 0; i--) { /* Fisher-Yates */
                size_t j = (size_t)(xorshift(&seed) % (i + 1));
                dr_point t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
        }
        assert_int_equal(dr_retention_plan(&r, perm, h.n, d), 0);
        for (size_t i = 0; i < h.n; i++) {
            size_t o = find(&h, perm[i].id);
            assert_int_equal(d[i].keep, ref[o].keep);
            assert_string_equal(d[i].reason, ref[o].reason);
        }
    }
    free(perm);
    free(d);
    free(ref);
    hist_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_bad_policy),
        cmocka_unit_test(test_keep_last_only),
        cmocka_unit_test(test_iso_week_year_boundary),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_long_ids),
        cmocka_unit_test(test_synthetic_gfs),
        cmocka_unit_test(test_order_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
