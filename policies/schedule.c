/*
 * Schedules of the daemon's jobs: 5-field cron (optionally in a tz database zone) and @every,
 * the next run after an instant, and the missed-run accounting of a loop that wakes up late.
 *
 * Time zones are parsed from TZif bytes handed in by the caller, never with TZ=/tzset/mktime:
 * those are process-wide state, and the daemon computes schedules while other threads run.
 *
 * Cron in a zone works in "civil seconds" (the wall clock read as if it were UTC) and maps a
 * matching civil time L to the instant it fires, fire(L) = the first instant whose wall clock
 * reads L or later. fire() is non-decreasing in L, which gives the DST rules for free: civil
 * times inside a spring-forward gap all fire at the end of the gap (once: the next run must be
 * strictly later), and civil times of a repeated hour fire at their first occurrence only.
 *
 * Must never: read files or the clock, or return a run at or before the instant asked about.
 */
#include "policies/policies.h"
#include "drd/core/core.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_S 86400LL

/* ---- the proleptic Gregorian calendar on day numbers (day 0 = 1970-01-01) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    /* Count years from March, so that the leap day is the last day of a year. */
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                   /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
    static const int len[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m];
}

/* 0 = Sunday; day 0 was a Thursday. */
static int weekday(int64_t day)
{
    return (int)(((day % 7) + 11) % 7);
}

/* ---- time zones ---- */

/* A POSIX TZ rule date: Jn (1-365, no leap day), n (0-365) or Mm.w.d; time: seconds after local
 * midnight (may be negative or past 24 h in TZif version 3). */
typedef struct rule_date {
    char kind; /* 'J', 'N', 'M' */
    int n, m, w, d;
    int32_t time;
} rule_date;

struct dr_tz {
    char name[64];
    size_t n;
    int64_t *at;  /* transition instants, ascending */
    int32_t *off; /* the offset from at[i] on */
    int32_t off0; /* before the first transition */
    int has_rule; /* footer: std_off always, DST between start and end when has_dst */
    int has_dst;
    int32_t std_off, dst_off;
    rule_date start, end;
};

void dr_tz_free(dr_tz *z)
{
    if (!z)
        return;
    free(z->at);
    free(z->off);
    free(z);
}

const char *dr_tz_name(const dr_tz *z)
{
    return z ? z->name : "UTC";
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* [+-]hh[:mm[:ss]] with hh up to 167; *p advanced. */
static int tz_hms(const char **p, int32_t *out)
{
    const char *s = *p;
    int sign = 1;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*s))
        return -1;
    long v[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        int digits = 0;
        while (isdigit((unsigned char)*s) && digits < 3)
            v[i] = v[i] * 10 + (*s++ - '0'), digits++;
        if (!digits || (i ? v[i] > 59 : v[i] > 167))
            return -1;
        if (*s != ':' || i == 2)
            break;
        s++;
    }
    *out = (int32_t)(sign * (v[0] * 3600 + v[1] * 60 + v[2]));
    *p = s;
    return 0;
}

static int tz_abbr(const char **p)
{
    const char *s = *p;
    if (*s == '<') {
        while (*s && *s != '>')
            s++;
        if (*s != '>')
            return -1;
        *p = s + 1;
        return 0;
    }
    while (isalpha((unsigned char)*s))
        s++;
    if (s - *p < 3)
        return -1;
    *p = s;
    return 0;
}

static int tz_rule_date(const char **p, rule_date *r)
{
    const char *s = *p;
    char *end;
    memset(r, 0, sizeof *r);
    r->time = 7200;
    if (*s == 'M') {
        r->kind = 'M';
        r->m = (int)strtol(s + 1, &end, 10);
        if (*end != '.')
            return -1;
        r->w = (int)strtol(end + 1, &end, 10);
        if (*end != '.')
            return -1;
        r->d = (int)strtol(end + 1, &end, 10);
        if (r->m < 1 || r->m > 12 || r->w < 1 || r->w > 5 || r->d < 0 || r->d > 6)
            return -1;
    } else {
        r->kind = *s == 'J' ? 'J' : 'N';
        if (*s == 'J')
            s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        r->n = (int)strtol(s, &end, 10);
        if (r->n > 365 || (r->kind == 'J' && r->n < 1))
            return -1;
    }
    s = end;
    if (*s == '/') {
        s++;
        if (tz_hms(&s, &r->time) < 0)
            return -1;
    }
    *p = s;
    return 0;
}

/* The footer rule, e.g. "CET-1CEST,M3.5.0,M10.5.0/3" or "<+0530>-5:30". POSIX offsets count
 * west of Greenwich, ours east. */
static int tz_parse_rule(dr_tz *z, const char *s)
{
    int32_t v;
    if (!*s)
        return 0; /* no rule: the last transition's offset holds */
    if (tz_abbr(&s) < 0 || tz_hms(&s, &v) < 0)
        return -1;
    z->std_off = -v;
    z->has_rule = 1;
    if (!*s)
        return 0;
    if (tz_abbr(&s) < 0)
        return -1;
    z->dst_off = z->std_off + 3600;
    if (*s && *s != ',') {
        if (tz_hms(&s, &v) < 0)
            return -1;
        z->dst_off = -v;
    }
    if (*s != ',')
        return -1;
    s++;
    if (tz_rule_date(&s, &z->start) < 0 || *s != ',')
        return -1;
    s++;
    if (tz_rule_date(&s, &z->end) < 0 || *s)
        return -1;
    z->has_dst = 1;
    return 0;
}

/* The local midnight (civil seconds) of a rule date in year y, plus its time. */
static int64_t rule_civil(const rule_date *r, int64_t y)
{
    int64_t jan1 = days_from_civil(y, 1, 1), day;
    if (r->kind == 'J')
        day = jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
    else if (r->kind == 'N')
        day = jan1 + r->n;
    else {
        int64_t first = days_from_civil(y, r->m, 1);
        int dd = 1 + (r->d - weekday(first) + 7) % 7 + 7 * (r->w - 1);
        while (dd > month_days(y, r->m))
            dd -= 7;
        day = first + dd - 1;
    }
    return day * DAY_S + r->time;
}

/* The two rule transitions of year y as instants: *ts into DST, *te back to standard time. */
static void rule_year(const dr_tz *z, int64_t y, int64_t *ts, int64_t *te)
{
    *ts = rule_civil(&z->start, y) - z->std_off;
    *te = rule_civil(&z->end, y) - z->dst_off;
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    int m, d;
    civil_from_days(floor_div(t, DAY_S), &y, &m, &d);
    return y;
}

static int32_t rule_offset(const dr_tz *z, int64_t t)
{
    if (!z->has_dst)
        return z->std_off;
    int64_t ts, te;
    rule_year(z, year_of(t + z->std_off), &ts, &te);
    int dst = ts < te ? (t >= ts && t < te) : !(t >= te && t < ts);
    return dst ? z->dst_off : z->std_off;
}

int32_t dr_tz_offset(const dr_tz *z, int64_t t)
{
    if (!z)
        return 0;
    if (z->n == 0)
        return z->has_rule ? rule_offset(z, t) : z->off0;
    if (t < z->at[0])
        return z->off0;
    if (t >= z->at[z->n - 1] && z->has_rule)
        return rule_offset(z, t);
    size_t lo = 0, hi = z->n; /* largest i with at[i] <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->off[lo];
}

/* The first transition strictly after t: 1 with *at and the offset from then on, 0 when none. */
static int tz_next_transition(const dr_tz *z, int64_t t, int64_t *at, int32_t *off)
{
    if (!z)
        return 0;
    if (z->n && t < z->at[z->n - 1]) {
        size_t lo = 0, hi = z->n - 1; /* smallest i with at[i] > t */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (z->at[mid] > t)
                hi = mid;
            else
                lo = mid + 1;
        }
        *at = z->at[lo];
        *off = z->off[lo];
        return 1;
    }
    if (!z->has_rule || !z->has_dst)
        return 0;
    int64_t best = INT64_MAX;
    int32_t boff = 0;
    for (int64_t y = year_of(t) - 1; y <= year_of(t) + 1; y++) {
        int64_t ts, te;
        rule_year(z, y, &ts, &te);
        if (ts > t && ts < best)
            best = ts, boff = z->dst_off;
        if (te > t && te < best)
            best = te, boff = z->std_off;
    }
    *at = best;
    *off = boff;
    return 1;
}

int dr_tz_parse(const char *name, const void *data, size_t len, dr_tz **out)
{
    const unsigned char *p = data, *end = p + len;
    dr_tz *z = NULL;
    int rc = 0;
    *out = NULL;
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        goto bad;
    int version = p[4] ? p[4] - '0' : 1;
    int wide = 0;
    if (version >= 2) { /* skip the 32-bit block: its sizes are in the first header */
        uint32_t c[6];
        for (int i = 0; i < 6; i++)
            c[i] = be32(p + 20 + 4 * i);
        uint64_t v1 =
            (uint64_t)c[3] * 5 + (uint64_t)c[4] * 6 + c[5] + (uint64_t)c[2] * 8 + c[1] + c[0];
        if (v1 > len - 44)
            goto bad;
        p += 44 + v1;
        if (end - p < 44 || memcmp(p, "TZif", 4) != 0)
            goto bad;
        wide = 1;
    }
    uint32_t isutcnt = be32(p + 20), isstdcnt = be32(p + 24), leapcnt = be32(p + 28),
             timecnt = be32(p + 32), typecnt = be32(p + 36), charcnt = be32(p + 40);
    size_t tsz = wide ? 8 : 4;
    p += 44;
    if (leapcnt) {
        rc = dr_error_set(DR_EUSAGE,
                          "time zone '%s' counts leap seconds (a right/ zone): use the "
                          "zone without them",
                          name);
        goto out;
    }
    if (typecnt == 0 || typecnt > 256 || timecnt > 100000 || charcnt > 65536 ||
        (size_t)(end - p) < timecnt * (tsz + 1) + typecnt * 6 + charcnt + isstdcnt + isutcnt)
        goto bad;
    z = calloc(1, sizeof *z);
    if (!z || (timecnt && (!(z->at = calloc(timecnt, sizeof *z->at)) ||
                           !(z->off = calloc(timecnt, sizeof *z->off))))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(z->name, sizeof z->name, "%s", name);
    const unsigned char *times = p, *idx = p + timecnt * tsz, *types = idx + timecnt;
    for (uint32_t i = 0; i < timecnt; i++) {
        z->at[i] = wide ? be64(times + 8 * i) : (int32_t)be32(times + 4 * i);
        if (idx[i] >= typecnt || (i && z->at[i] <= z->at[i - 1]))
            goto bad;
        z->off[i] = (int32_t)be32(types + 6 * idx[i]);
    }
    z->n = timecnt;
    z->off0 = (int32_t)be32(types); /* RFC 8536: type 0 before the first transition */
    p = types + typecnt * 6 + charcnt + isstdcnt + isutcnt;
    if (wide && p < end && *p == '\n') {
        const unsigned char *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
        char rule[128];
        if (!nl || (size_t)(nl - p - 1) >= sizeof rule)
            goto bad;
        memcpy(rule, p + 1, (size_t)(nl - p - 1));
        rule[nl - p - 1] = 0;
        if (tz_parse_rule(z, rule) < 0) {
            /* an exotic rule: keep the last transition's offset for ever */
            z->has_rule = z->has_dst = 0;
            dr_warn("time zone '%s': rule '%s' not understood, offsets after %lld use the last "
                    "transition's",
                    name, rule, (long long)(z->n ? z->at[z->n - 1] : 0));
        }
    }
    *out = z;
    z = NULL;
    goto out;
bad:
    rc = dr_error_set(DR_EUSAGE, "time zone '%s': not a valid TZif file", name);
out:
    dr_tz_free(z);
    return rc;
}

/* The first instant whose wall clock in z reads L (civil seconds) or later: for a time in a
 * spring-forward gap the end of the gap, for a repeated time its first occurrence. Walks the
 * spans of constant offset from well before L (offsets lie within -26 h .. +26 h). */
static int64_t fire_time(const dr_tz *z, int64_t L)
{
    int64_t s = L - 2 * DAY_S, t;
    int32_t o = dr_tz_offset(z, s), no;
    for (;;) {
        int64_t u = L - o;
        int has = tz_next_transition(z, s, &t, &no);
        if (u < s)
            return s; /* L lies in the gap before this span */
        if (!has || u < t)
            return u;
        s = t;
        o = no;
    }
}

/* ---- cron ---- */

typedef struct field {
    const char *name;
    int lo, hi;
    const char *const *names; /* index lo.. */
} field;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const field fields[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, dow_names},
};

/* A number or a name of field f at *p; -1 when there is none. */
static int field_value(const field *f, const char **p, const char *item, int *v)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long n = 0;
        while (isdigit((unsigned char)*s) && n < 1000)
            n = n * 10 + (*s++ - '0');
        if (n < f->lo || n > f->hi)
            return dr_error_set(DR_EUSAGE, "%s field '%s': %ld is out of range %d-%d", f->name,
                                item, n, f->lo, f->hi);
        *v = (int)n;
    } else if (f->names && isalpha((unsigned char)*s)) {
        int k = -1;
        int count = f->hi == 7 ? 7 : f->hi - f->lo + 1;
        for (int i = 0; i < count && k < 0; i++)
            if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3]))
                k = i;
        if (k < 0)
            return dr_error_set(DR_EUSAGE, "%s field '%s': unknown name", f->name, item);
        *v = k + f->lo;
        s += 3;
    } else {
        return dr_error_set(DR_EUSAGE, "%s field '%s': expected a number%s, '*', a range or a step",
                            f->name, item, f->names ? " or a name" : "");
    }
    *p = s;
    return 0;
}

/* One field (comma-separated items) into a bit set. */
static int parse_field(const field *f, const char *text, uint64_t *bits)
{
    char buf[128];
    int rc = 0;
    *bits = 0;
    if (strlen(text) >= sizeof buf)
        return dr_error_set(DR_EUSAGE, "%s field is too long", f->name);
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    if (!*buf || buf[0] == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,"))
        return dr_error_set(DR_EUSAGE, "%s field '%s': empty list item", f->name, text);
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        const char *s = item;
        int lo, hi, step = 1, range = 0;
        if (*s == '*') {
            lo = f->lo;
            hi = f->hi; /* day-of-week: 0-7 (7 is Sunday again), as croniter reads it */
            s++;
            range = 1;
        } else {
            if ((rc = field_value(f, &s, item, &lo)) < 0)
                return rc;
            hi = lo;
            if (*s == '-') {
                s++;
                if ((rc = field_value(f, &s, item, &hi)) < 0)
                    return rc;
                if (hi < lo)
                    return dr_error_set(DR_EUSAGE, "%s field '%s': range goes backwards", f->name,
                                        item);
                range = 1;
            }
        }
        if (*s == '/') {
            s++;
            if (!isdigit((unsigned char)*s))
                return dr_error_set(DR_EUSAGE, "%s field '%s': step must be a number", f->name,
                                    item);
            long n = 0;
            while (isdigit((unsigned char)*s) && n < 1000)
                n = n * 10 + (*s++ - '0');
            if (n < 1 || n > f->hi)
                return dr_error_set(DR_EUSAGE, "%s field '%s': step must be 1-%d", f->name, item,
                                    f->hi);
            step = (int)n;
            if (!range) /* "a/n": from a to the end */
                hi = f->hi;
        }
        if (*s)
            return dr_error_set(DR_EUSAGE, "%s field '%s': unexpected '%s'", f->name, item, s);
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ull << (f->hi == 7 && v == 7 ? 0 : v);
    }
    return 0;
}

static const struct {
    const char *name, *cron;
} shorthands[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static int parse_cron(const char *text, dr_schedule *s)
{
    char buf[128];
    char *f[6];
    int n = 0, rc = 0;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        if (n < 6)
            f[n++] = t;
        else
            n++;
    if (n == 1 && f[0][0] == '@') {
        for (size_t i = 0; i < sizeof shorthands / sizeof shorthands[0]; i++)
            if (strcmp(f[0], shorthands[i].name) == 0)
                return parse_cron(shorthands[i].cron, s);
        return dr_error_set(DR_EUSAGE,
                            "unknown shorthand '%s' (@every D, @hourly, @daily, "
                            "@weekly, @monthly, @yearly)",
                            f[0]);
    }
    if (n != 5)
        return dr_error_set(DR_EUSAGE,
                            "expected 5 fields (minute hour day-of-month month "
                            "day-of-week), found %d",
                            n);
    uint64_t b[5];
    for (int i = 0; i < 5; i++)
        if ((rc = parse_field(&fields[i], f[i], &b[i])) < 0)
            return rc;
    s->kind = DR_SCHED_CRON;
    s->minutes = b[0];
    s->hours = (uint32_t)b[1];
    s->doms = (uint32_t)b[2];
    s->months = (uint16_t)b[3];
    s->dows = (uint8_t)b[4];
    s->dom_star = s->doms == 0xfffffffeu;
    s->dow_star = s->dows == 0x7f;
    if (s->dow_star && !s->dom_star) {
        /* only the days of the month choose: some chosen month must have one of them (2000 is a
         * leap year: 29 February counts) */
        int ok = 0;
        for (int m = 1; m <= 12 && !ok; m++)
            if (s->months >> m & 1)
                ok = (s->doms & (uint32_t)((2ull << month_days(2000, m)) - 2)) != 0;
        if (!ok)
            return dr_error_set(DR_EUSAGE, "day-of-month field '%s': never in the months of '%s'",
                                f[2], f[3]);
    }
    return 0;
}

int dr_schedule_parse(const char *text, dr_schedule *out)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    while (*text == ' ' || *text == '\t')
        text++;
    if (strlen(text) >= sizeof out->text)
        return dr_error_set(DR_EUSAGE, "schedule is too long (%zu characters)", strlen(text));
    snprintf(out->text, sizeof out->text, "%s", text);
    const char *rest = text;
    if (strncmp(rest, "CRON_TZ=", 8) == 0) {
        rest += 8;
        size_t l = strcspn(rest, " \t");
        if (l == 0 || l >= sizeof out->tz_name)
            return dr_error_set(DR_EUSAGE,
                                "schedule '%s': CRON_TZ= needs a zone name such as "
                                "Europe/Berlin",
                                text);
        memcpy(out->tz_name, rest, l);
        out->tz_name[l] = 0;
        int ok = out->tz_name[0] != '/';
        for (const char *c = out->tz_name; *c; c++)
            ok &= isalnum((unsigned char)*c) || strchr("/_-+", *c) != NULL;
        if (!ok) /* also keeps the name from leaving the zoneinfo directory */
            return dr_error_set(DR_EUSAGE, "schedule '%s': '%s' is not a zone name", text,
                                out->tz_name);
        if (strcmp(out->tz_name, "UTC") == 0)
            out->tz_name[0] = 0;
        rest += l;
        while (*rest == ' ' || *rest == '\t')
            rest++;
    }
    if (strncmp(rest, "@every", 6) == 0 && (rest[6] == ' ' || rest[6] == '\t' || !rest[6])) {
        const char *d = rest + 6;
        while (*d == ' ' || *d == '\t')
            d++;
        if (out->tz_name[0])
            return dr_error_set(DR_EUSAGE, "schedule '%s': @every does not take a time zone", text);
        if (!*d || (rc = dr_parse_duration_ms(d, "@every", &out->every_ms)) < 0) {
            dr_error_clear();
            return dr_error_set(DR_EUSAGE,
                                "schedule '%s': @every needs a duration such as 30s, "
                                "5m or 1h",
                                text);
        }
        if (out->every_ms < 1000)
            return dr_error_set(DR_EUSAGE, "schedule '%s': @every must be at least 1s", text);
        out->kind = DR_SCHED_EVERY;
        return 0;
    }
    if ((rc = parse_cron(rest, out)) < 0)
        return dr_error_wrap(rc, "schedule '%s'", text);
    return 0;
}

void dr_schedule_set_tz(dr_schedule *s, const dr_tz *tz)
{
    s->tz = tz;
}

static int day_matches(const dr_schedule *s, int64_t day, int dom)
{
    int by_dom = s->doms >> dom & 1, by_dow = s->dows >> weekday(day) & 1;
    if (s->dom_star && s->dow_star)
        return 1;
    if (s->dom_star)
        return by_dow;
    if (s->dow_star)
        return by_dom;
    return by_dom || by_dow;
}

/* The first civil time >= L (civil seconds, whole minutes) that matches the fields; 0 and
 * *found = 0 when none within ten years. */
static int64_t next_civil(const dr_schedule *s, int64_t L, int *found)
{
    int64_t day = floor_div(L, DAY_S);
    int64_t sod = L - day * DAY_S;
    int hour = (int)(sod / 3600), min = (int)(sod % 3600 / 60);
    int64_t last_day = day + 3700;
    *found = 0;
    while (day <= last_day) {
        int64_t y;
        int m, d;
        civil_from_days(day, &y, &m, &d);
        if (!(s->months >> m & 1)) {
            day += month_days(y, m) - d + 1;
            hour = min = 0;
            continue;
        }
        if (day_matches(s, day, d)) {
            for (int h = hour; h < 24; h++) {
                if (!(s->hours >> h & 1))
                    continue;
                for (int mi = h == hour ? min : 0; mi < 60; mi++)
                    if (s->minutes >> mi & 1) {
                        *found = 1;
                        return day * DAY_S + h * 3600 + mi * 60;
                    }
            }
        }
        day++;
        hour = min = 0;
    }
    return 0;
}

int dr_schedule_next(const dr_schedule *s, int64_t after_ms, int64_t *next_ms)
{
    if (s->kind == DR_SCHED_EVERY) {
        *next_ms = (floor_div(after_ms, s->every_ms) + 1) * s->every_ms;
        return 0;
    }
    if (s->tz_name[0] && !s->tz)
        return dr_error_set(DR_EUSAGE, "schedule '%s': time zone '%s' is not loaded", s->text,
                            s->tz_name);
    int64_t t = floor_div(after_ms, 1000);
    /* fire() is non-decreasing in L, so the answer is the first matching L with fire(L) > t. In
     * UTC that is the first minute after t; in a zone, start three hours before the wall clock
     * at t (more than any DST shift), which takes in a repeated hour whose first pass is past. */
    int64_t L = floor_div(t, 60) * 60 + 60;
    if (s->tz)
        L = floor_div(t + dr_tz_offset(s->tz, t), 60) * 60 - 3 * 3600;
    for (;;) {
        int found;
        L = next_civil(s, L, &found);
        if (!found)
            break;
        int64_t f = s->tz ? fire_time(s->tz, L) : L;
        if (f > t) {
            *next_ms = f * 1000;
            return 0;
        }
        L += 60;
    }
    return dr_error_set(DR_ENOTFOUND, "schedule '%s': no run within ten years", s->text);
}

int dr_schedule_catch_up(const dr_schedule *s, int64_t prev_ms, int64_t now_ms, int64_t grace_ms,
                         dr_schedule_tick *out)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    int64_t t = prev_ms;
    if (now_ms > prev_ms) {
        if (s->kind == DR_SCHED_EVERY) {
            int64_t first = (floor_div(prev_ms, s->every_ms) + 1) * s->every_ms;
            if (first <= now_ms) {
                out->newest_ms = floor_div(now_ms, s->every_ms) * s->every_ms;
                out->missed = (out->newest_ms - first) / s->every_ms + 1;
            }
        } else {
            for (;;) {
                int64_t nx;
                if (out->missed == 1000000 && t < now_ms - 2 * DAY_S * 1000)
                    t = now_ms - 2 * DAY_S * 1000; /* stop counting, still find the newest */
                if ((rc = dr_schedule_next(s, t, &nx)) < 0)
                    return rc;
                if (nx > now_ms)
                    break;
                t = out->newest_ms = nx;
                if (out->missed < 1000000)
                    out->missed++;
            }
        }
        if (out->newest_ms && now_ms - out->newest_ms <= grace_ms) {
            out->due_ms = out->newest_ms;
            out->missed--;
        }
    }
    return dr_schedule_next(s, now_ms > prev_ms ? now_ms : prev_ms, &out->next_ms);
}
