/* Unit tests for policies/schedule.c: cron and @every parsing (errors name the field), next runs in
 * UTC, day-of-month/day-of-week either-or, 29 February, time zones from the system's TZif files
 * (transitions and the footer rule after 2037, both hemispheres), DST gaps and repeated hours,
 * and the missed-run accounting. The random comparison with croniter is cron_oracle.py. */
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

/* "2026-03-29T01:00:00Z" -> seconds */
static int64_t utc(const char *iso)
{
    struct tm tm = {0};
    const char *end = strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    assert_non_null(end);
    return (int64_t)timegm(&tm);
}

static dr_tz *zone(const char *name)
{
    char path[256], *data = NULL;
    size_t len = 0;
    dr_tz *z = NULL;
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
    assert_int_equal(dr_fs_read_all(path, 1 << 20, &data, &len), 0);
    assert_int_equal(dr_tz_parse(name, data, len, &z), 0);
    free(data);
    return z;
}

static void refused(const char *text, const char *needle)
{
    dr_schedule s;
    dr_error_clear();
    int rc = dr_schedule_parse(text, &s);
    if (rc != DR_EUSAGE || !strstr(dr_error_msg(), needle))
        fail_msg("'%s': rc %d, message '%s' (wanted '%s')", text, rc, dr_error_msg(), needle);
}

static void test_parse_errors(void **state)
{
    (void)state;
    refused("61 * * * *", "minute field '61': 61 is out of range 0-59");
    refused("* 24 * * *", "hour field '24'");
    refused("* * 0 * *", "day-of-month field '0'");
    refused("* * * 13 *", "month field '13'");
    refused("* * * * 8", "day-of-week field '8'");
    refused("* * * foo *", "month field 'foo': unknown name");
    refused("* * * *", "expected 5 fields");
    refused("* * * * * *", "found 6");
    refused("5-1 * * * *", "minute field '5-1': range goes backwards");
    refused("*/0 * * * *", "minute field '*/0': step must be 1-59");
    refused("1,,2 * * * *", "minute field '1,,2': empty list item");
    refused("1x * * * *", "minute field '1x': unexpected 'x'");
    refused("0 0 31 2,4 *", "day-of-month field '31': never in the months of '2,4'");
    refused("0 0 30 feb *", "never in the months");
    refused("@every", "@every needs a duration");
    refused("@every 10 parsecs", "@every needs a duration");
    refused("@every 500ms", "at least 1s");
    refused("@fortnightly", "unknown shorthand '@fortnightly'");
    refused("CRON_TZ= 0 * * * *", "CRON_TZ= needs a zone name");
    refused("CRON_TZ=../../etc/passwd 0 * * * *", "is not a zone name");
    refused("CRON_TZ=Europe/Berlin @every 1m", "@every does not take a time zone");
    refused("CRON_TZ=Europe/Berlin 0 25 * * *", "schedule 'CRON_TZ=Europe/Berlin 0 25 * * *': "
                                                "hour field '25'");
    dr_schedule s;
    assert_int_equal(dr_schedule_parse("0 0 29 2 *", &s), 0);   /* leap years only: fine */
    assert_int_equal(dr_schedule_parse("0 0 31 2 mon", &s), 0); /* either-or: Mondays */
    assert_int_equal(dr_schedule_parse("CRON_TZ=Europe/Berlin 0 3 * * *", &s), 0);
    assert_string_equal(s.tz_name, "Europe/Berlin");
    int64_t next;
    assert_int_equal(dr_schedule_next(&s, 0, &next), DR_EUSAGE); /* zone not attached */
}

/* The n runs after start (ISO) must be the ISO times in want. */
static void runs(const dr_schedule *s, const char *start, const char *const *want, int n)
{
    int64_t t = utc(start) * 1000;
    for (int i = 0; i < n; i++) {
        assert_int_equal(dr_schedule_next(s, t, &t), 0);
        if (t != utc(want[i]) * 1000) {
            char got[32];
            time_t g = (time_t)(t / 1000);
            strftime(got, sizeof got, "%Y-%m-%dT%H:%M:%SZ", gmtime(&g));
            fail_msg("'%s' run %d after %s: %s, wanted %s", s->text, i + 1, start, got, want[i]);
        }
    }
}

static dr_schedule sched(const char *text, const dr_tz *z)
{
    dr_schedule s;
    if (dr_schedule_parse(text, &s) < 0)
        fail_msg("'%s': %s", text, dr_error_msg());
    dr_schedule_set_tz(&s, z);
    return s;
}

static void test_next_utc(void **state)
{
    (void)state;
    dr_schedule s = sched("0 3 * * *", NULL);
    runs(&s, "2026-12-02T08:00:00Z",
         (const char *[]){"2026-12-03T03:00:00Z", "2026-12-04T03:00:00Z"}, 2);
    runs(&s, "2026-12-03T03:00:00Z", (const char *[]){"2026-12-04T03:00:00Z"}, 1); /* strictly */
    int64_t t;
    assert_int_equal(dr_schedule_next(&s, utc("2026-12-03T02:59:59Z") * 1000 + 999, &t), 0);
    assert_int_equal(t, utc("2026-12-03T03:00:00Z") * 1000);
    s = sched("*/20 9-10 * jan-feb MON-fri", NULL);
    runs(&s, "2027-02-26T10:50:00Z", /* Friday; then the weekend and March are skipped */
         (const char *[]){"2028-01-03T09:00:00Z", "2028-01-03T09:20:00Z"}, 2);
    s = sched("0 0 13 * 5", NULL); /* the 13th or a Friday */
    runs(&s, "2026-11-10T00:00:00Z",
         (const char *[]){"2026-11-13T00:00:00Z", "2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z",
                          "2026-12-04T00:00:00Z", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z"},
         6);
    s = sched("0 0 29 2 *", NULL); /* 2100 is not a leap year */
    runs(&s, "2096-03-01T00:00:00Z", (const char *[]){"2104-02-29T00:00:00Z"}, 1);
    s = sched("30 * * * 7", NULL); /* 7 is Sunday */
    runs(&s, "2026-12-05T23:59:00Z", (const char *[]){"2026-12-06T00:30:00Z"}, 1);
    s = sched("@weekly", NULL);
    runs(&s, "2026-12-02T08:00:00Z", (const char *[]){"2026-12-06T00:00:00Z"}, 1);
    s = sched("@hourly", NULL);
    runs(&s, "1969-12-31T23:30:00Z", (const char *[]){"1970-01-01T00:00:00Z"}, 1);
    s = sched("@every 30s", NULL);
    runs(&s, "2026-12-02T08:00:00Z",
         (const char *[]){"2026-12-02T08:00:30Z", "2026-12-02T08:01:00Z"}, 2);
    s = sched("@every 7m", NULL); /* multiples of 7 minutes since the epoch */
    assert_int_equal(dr_schedule_next(&s, 0, &t), 0);
    assert_int_equal(t, 420000);
}

static void test_zones(void **state)
{
    (void)state;
    dr_tz *ber = zone("Europe/Berlin"), *ny = zone("America/New_York"),
          *syd = zone("Australia/Sydney"), *kol = zone("Asia/Kolkata");
    assert_string_equal(dr_tz_name(ber), "Europe/Berlin");
    assert_string_equal(dr_tz_name(NULL), "UTC");
    assert_int_equal(dr_tz_offset(NULL, 0), 0);
    assert_int_equal(dr_tz_offset(ber, utc("2026-01-15T12:00:00Z")), 3600);
    assert_int_equal(dr_tz_offset(ber, utc("2026-07-15T12:00:00Z")), 7200);
    /* table transitions */
    assert_int_equal(dr_tz_offset(ber, utc("2026-03-29T00:59:59Z")), 3600);
    assert_int_equal(dr_tz_offset(ber, utc("2026-03-29T01:00:00Z")), 7200);
    /* after the file's last transition (2037): the footer rule */
    assert_int_equal(dr_tz_offset(ber, utc("2040-03-25T00:59:59Z")), 3600);
    assert_int_equal(dr_tz_offset(ber, utc("2040-03-25T01:00:00Z")), 7200);
    assert_int_equal(dr_tz_offset(ber, utc("2040-10-28T00:59:59Z")), 7200);
    assert_int_equal(dr_tz_offset(ber, utc("2040-10-28T01:00:00Z")), 3600);
    assert_int_equal(dr_tz_offset(ny, utc("2050-11-06T05:59:59Z")), -4 * 3600);
    assert_int_equal(dr_tz_offset(ny, utc("2050-11-06T06:00:00Z")), -5 * 3600);
    assert_int_equal(dr_tz_offset(syd, utc("2050-07-01T00:00:00Z")), 10 * 3600);
    assert_int_equal(dr_tz_offset(syd, utc("2050-01-01T00:00:00Z")), 11 * 3600);
    assert_int_equal(dr_tz_offset(kol, utc("2050-01-01T00:00:00Z")), 5 * 3600 + 1800);
    /* a run at 03:00 in Sydney across the April change back (2050-04-03, 03:00 -> 02:00) */
    dr_schedule s = sched("CRON_TZ=Australia/Sydney 0 3 * * *", syd);
    runs(&s, "2050-04-01T12:00:00Z",
         (const char *[]){"2050-04-01T16:00:00Z", "2050-04-02T17:00:00Z"}, 2);
    /* garbage is refused */
    dr_tz *bad = NULL;
    assert_int_equal(dr_tz_parse("x", "TZif2", 5, &bad), DR_EUSAGE);
    assert_null(bad);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(dr_fs_read_all("/usr/share/zoneinfo/Europe/Berlin", 1 << 20, &data, &len), 0);
    for (size_t cut = 0; cut < len; cut += 37) { /* truncations never crash */
        if (dr_tz_parse("cut", data, cut, &bad) == 0)
            dr_tz_free(bad);
        bad = NULL;
    }
    free(data);
    dr_tz_free(ber);
    dr_tz_free(ny);
    dr_tz_free(syd);
    dr_tz_free(kol);
}

static void test_dst(void **state)
{
    (void)state;
    dr_tz *ber = zone("Europe/Berlin");
    /* 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00Z; 02:30 does not exist: runs once at 03:00 */
    dr_schedule s = sched("CRON_TZ=Europe/Berlin 30 2 * * *", ber);
    runs(&s, "2026-03-28T12:00:00Z",
         (const char *[]){"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}, 2);
    s = sched("CRON_TZ=Europe/Berlin */15 2 * * *", ber); /* four runs in the gap: one */
    runs(&s, "2026-03-29T00:00:00Z",
         (const char *[]){"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"}, 2);
    s = sched("CRON_TZ=Europe/Berlin 0 3 * * *", ber); /* 03:00 exists on the change day */
    runs(&s, "2026-03-28T12:00:00Z",
         (const char *[]){"2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"}, 2);
    /* 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00Z; 02:30 happens twice: runs at the first */
    s = sched("CRON_TZ=Europe/Berlin 30 2 * * *", ber);
    runs(&s, "2026-10-24T12:00:00Z",
         (const char *[]){"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}, 2);
    /* started in the second pass of the repeated hour: 02:30 already ran */
    runs(&s, "2026-10-25T01:10:00Z", (const char *[]){"2026-10-26T01:30:00Z"}, 1);
    s = sched("CRON_TZ=Europe/Berlin 0 * * * *", ber); /* hourly: 02:00 once */
    runs(&s, "2026-10-24T23:30:00Z",
         (const char *[]){"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"},
         3);
    s = sched("CRON_TZ=Europe/Berlin 0 2 * * *", ber); /* the same in 2040, from the rule */
    runs(&s, "2040-03-24T12:00:00Z",
         (const char *[]){"2040-03-25T01:00:00Z", "2040-03-26T00:00:00Z"}, 2);
    runs(&s, "2040-10-27T12:00:00Z",
         (const char *[]){"2040-10-28T00:00:00Z", "2040-10-29T01:00:00Z"}, 2);
    dr_tz_free(ber);
}

static void test_catch_up(void **state)
{
    (void)state;
    dr_schedule s = sched("@every 10s", NULL);
    dr_schedule_tick k;
    /* the loop woke up on time: one due run, nothing missed */
    assert_int_equal(dr_schedule_catch_up(&s, 90000, 100200, 1000, &k), 0);
    assert_int_equal(k.newest_ms, 100000);
    assert_int_equal(k.due_ms, 100000);
    assert_int_equal(k.missed, 0);
    assert_int_equal(k.next_ms, 110000);
    /* down from 0 to 100 s: ten instants, the newest runs, nine missed */
    assert_int_equal(dr_schedule_catch_up(&s, 0, 100500, 1000, &k), 0);
    assert_int_equal(k.due_ms, 100000);
    assert_int_equal(k.missed, 9);
    /* the newest is too old for the grace: all ten missed, nothing runs */
    assert_int_equal(dr_schedule_catch_up(&s, 0, 100500, 100, &k), 0);
    assert_int_equal(k.due_ms, 0);
    assert_int_equal(k.newest_ms, 100000);
    assert_int_equal(k.missed, 10);
    /* nothing new */
    assert_int_equal(dr_schedule_catch_up(&s, 100000, 105000, 1000, &k), 0);
    assert_int_equal(k.newest_ms, 0);
    assert_int_equal(k.due_ms, 0);
    assert_int_equal(k.missed, 0);
    assert_int_equal(k.next_ms, 110000);
    /* cron: three days of a minutely job */
    s = sched("* * * * *", NULL);
    int64_t t0 = utc("2026-12-01T00:00:00Z") * 1000;
    assert_int_equal(dr_schedule_catch_up(&s, t0, t0 + 3 * 86400000LL + 5000, 60000, &k), 0);
    assert_int_equal(k.due_ms, t0 + 3 * 86400000LL);
    assert_int_equal(k.missed, 3 * 1440 - 1);
    assert_int_equal(k.next_ms, t0 + 3 * 86400000LL + 60000);
    s = sched("0 3 * * *", NULL);
    assert_int_equal(dr_schedule_catch_up(&s, t0, t0 + 10 * 86400000LL, 60000, &k), 0);
    assert_int_equal(k.missed, 10);
    assert_int_equal(k.due_ms, 0);
    assert_int_equal(k.newest_ms, t0 + 9 * 86400000LL + 3 * 3600000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_next_utc),
        cmocka_unit_test(test_zones),        cmocka_unit_test(test_dst),
        cmocka_unit_test(test_catch_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
