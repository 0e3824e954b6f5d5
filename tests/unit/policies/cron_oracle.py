#!/usr/bin/python3
"""The cron schedule of policies/schedule.c checked against an independent implementation,
python3-croniter (Debian), over random expressions and start times.

usage: cron_oracle.py CRON_NEXT [--seed S] [--exprs N] [--starts K] [--runs R]
For each of N random 5-field expressions (numbers, names, ranges, steps, lists) and K random start
instants in 1975-2090, the R successive next runs from cron-next (drd's code) must equal
croniter's. Zones: UTC, and fixed-offset zones through CRON_TZ= (Asia/Kolkata +05:30,
America/Argentina/Buenos_Aires -03:00, for the instants after their last change); DST rules are
covered by the cmocka tests, where croniter's own handling of them differs from ours by design.
Expressions drd refuses as never matching (31 in February only, ...) are counted and skipped.
croniter 1.3.5 has a bug of its own: with a day-of-month list holding a day that the current month
lacks (31 in February), its next run skips the 1st of the following month. When croniter and drd
disagree, a third opinion decides: a day-by-day scan over the sets croniter's own parser expands
(croniter.expand), with cron's either-or rule for day-of-month and day-of-week. Only when that
scan agrees with drd is the case counted as croniter's bug (and reported); otherwise the test fails.
Exits non-zero on the first disagreement, printing it.
"""
import argparse
import datetime
import random
import subprocess
import sys
from zoneinfo import ZoneInfo

from croniter import croniter

FIELDS = [  # lo, hi, names (value of names[0] is lo)
    (0, 59, None),
    (0, 23, None),
    (1, 31, None),
    (1, 12, ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]),
    (0, 7, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
]
ZONES = [
    ("UTC", 0),
    ("Asia/Kolkata", datetime.datetime(1946, 1, 1).timestamp()),
    ("America/Argentina/Buenos_Aires", datetime.datetime(2010, 1, 1).timestamp()),
]


def value(rng, lo, hi, names, start=None):
    """A value in [start or lo, hi], as a number or (sometimes) a name."""
    v = rng.randint(lo if start is None else start, hi)
    if names and v - lo < len(names) and rng.random() < 0.25:
        return v, names[v - lo] if rng.random() < 0.5 else names[v - lo].upper()
    return v, str(v)


def item(rng, lo, hi, names):
    r = rng.random()
    if r < 0.30:
        return "*"
    if r < 0.55:
        return value(rng, lo, hi, names)[1]
    if r < 0.67:
        a, at = value(rng, lo, hi, names)
        b, bt = value(rng, lo, hi, names, start=a)
        return "%s-%s" % (at, bt)
    if r < 0.82:
        return "*/%d" % rng.randint(1, max(1, (hi - lo) // 2 + 1))
    if r < 0.92:
        a = rng.randint(lo, hi)
        b = rng.randint(a, hi)
        return "%d-%d/%d" % (a, b, rng.randint(1, max(1, (hi - lo) // 2)))
    return "%d/%d" % (rng.randint(lo, hi), rng.randint(1, max(1, (hi - lo) // 2)))


def field(rng, lo, hi, names):
    if rng.random() < 0.15:
        return ",".join(item(rng, lo, hi, names) for _ in range(rng.randint(2, 4)))
    return item(rng, lo, hi, names)


def expression(rng):
    f = [field(rng, *spec) for spec in FIELDS]
    # keep most schedules frequent enough to be interesting
    if rng.random() < 0.5:
        f[3] = "*"
    if rng.random() < 0.5:
        f[2] = "*"
    return " ".join(f)


def scan(expr, start, tz, runs):
    """The next runs after start by brute force over croniter's expansion of expr."""
    ex, _ = croniter.expand(expr)
    sets = [None if "*" in e else {int(v) % 7 if i == 4 else int(v) for v in e}
            for i, e in enumerate(ex)]
    minute, hour, dom, month, dow = sets
    out, t = [], start
    day = datetime.datetime.fromtimestamp(start, tz).date()
    while len(out) < runs:
        wd = (day.weekday() + 1) % 7
        by_dom = dom is None or day.day in dom
        by_dow = dow is None or wd in dow
        ok_day = (by_dom or by_dow) if dom is not None and dow is not None else by_dom and by_dow
        if (month is None or day.month in month) and ok_day:
            for h in sorted(hour) if hour is not None else range(24):
                for m in sorted(minute) if minute is not None else range(60):
                    ts = int(datetime.datetime(day.year, day.month, day.day, h, m,
                                               tzinfo=tz).timestamp())
                    if ts > t and len(out) < runs:
                        out.append(ts)
                        t = ts
        day += datetime.timedelta(days=1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prog")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--exprs", type=int, default=1500)
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    cases = []
    for _ in range(a.exprs):
        expr = expression(rng)
        zone, since = ZONES[0] if rng.random() < 0.7 else rng.choice(ZONES[1:])
        for _ in range(a.starts):
            start = rng.randint(int(max(since, 157766400)), 3786912000)  # 1975 .. 2090
            if rng.random() < 0.3:
                start -= start % 60  # on a minute boundary
            cases.append((expr, zone, start))
    text = "".join("%s%s\t%d\t%d\n" % ("" if z == "UTC" else "CRON_TZ=%s " % z, e, s, a.runs)
                   for e, z, s in cases)
    out = subprocess.run([a.prog], input=text, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    if len(lines) != len(cases):
        sys.exit("cron-next answered %d lines for %d cases" % (len(lines), len(cases)))
    compared = refused = croniter_bugs = 0
    exprs = set()
    for (expr, zone, start), line in zip(cases, lines):
        if line.startswith("error:"):
            if "never in the months" not in line:
                sys.exit("drd refused %r: %s" % (expr, line))
            refused += 1
            continue
        ours = [int(x) for x in line.split()]
        tz = ZoneInfo(zone)
        it = croniter(expr, datetime.datetime.fromtimestamp(start, tz))
        try:
            theirs = [int(it.get_next(float)) for _ in range(a.runs)]
        except Exception as e:  # croniter gives up on some rare schedules
            theirs = ["croniter: %s" % e]
        if ours != theirs and scan(expr, start, tz, a.runs) == ours:
            if not croniter_bugs:
                print("croniter differs, a scan of its own expansion agrees with drd: %r from %s"
                      % (expr, datetime.datetime.fromtimestamp(start, tz).isoformat()))
            croniter_bugs += 1
        elif ours != theirs:
            fmt = lambda ts: [t if isinstance(t, str) else
                              datetime.datetime.fromtimestamp(t, tz).isoformat() for t in ts]
            sys.exit("MISMATCH %r in %s from %s:\n  drd      %s\n  croniter %s" % (
                expr, zone, datetime.datetime.fromtimestamp(start, tz).isoformat(), fmt(ours),
                fmt(theirs)))
        compared += len(ours)
        exprs.add((expr, zone))
    print("cron oracle: %d expressions, %d start times, %d next runs compared: equal to "
          "croniter's, or in %d start times (croniter's own bugs: the month-end skip, giving up) to a scan of its expansion; "
          "%d never-matching expressions refused" % (len(exprs), len(cases) - refused, compared,
                                                     croniter_bugs, refused))


if __name__ == "__main__":
    main()
