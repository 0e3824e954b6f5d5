#!/usr/bin/env python3
"""Checks drd's alerting rules and Grafana dashboard (docs/deploy/prometheus/).

  check_monitoring.py static RULES DASHBOARD
      the dashboard's structure: unique panel ids, panels inside the 24-column grid and not
      overlapping, every panel with a PromQL target, every template variable used defined;
      every metric the rules and the dashboard name is one drd's source prints (daemon.c,
      daemon_volume.c, replicate.c) or Prometheus makes (up, ALERTS).
  check_monitoring.py live PROMETHEUS_URL RULES DASHBOARD
      against a real Prometheus that scrapes a running daemon with prometheus.yml and loads
      RULES: every selector of every rule and dashboard target (template variables
      as .*) matches series (so the metric is exported and the labels it filters on exist with
      those values), every label an annotation names is on those series, and every rule is
      evaluated without error.
  check_monitoring.py alerts PROMETHEUS_URL
      prints the alerts pending or firing, one "NAME LABELS" per line.
Exits 1 with one line per problem.
"""
import json
import os
import re
import sys
import urllib.parse
import urllib.request

import yaml

SELECTOR = re.compile(r'(?<![.\w])(drd_[a-z0-9_]+|up|ALERTS)\b(\{[^}]*\})?')
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
VAR = re.compile(r'\$\{?([a-zA-Z_][a-zA-Z0-9_]*)')
LABELREF = re.compile(r'\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)')
BUILTIN = {'up', 'ALERTS'}
problems = []


def rules_of(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    for g in doc['groups']:
        for r in g['rules']:
            yield r


def targets_of(path):
    with open(path) as f:
        dash = json.load(f)
    for p in dash['panels']:
        for t in p.get('targets', []):
            yield p['title'], t['expr']


def selectors(expr):
    """(metric, matcher string) for every drd/up/ALERTS selector; template variables as .*"""
    expr = re.sub(r"\$\{?instance\}?", ".*", expr)
    for m in SELECTOR.finditer(expr):
        # annotation queries are printf formats with single quotes
        yield m.group(1), (m.group(2) or '').replace("='%s'", '=~".*"').replace("'", '"')


def exported_names(src_files):
    names = set()
    for path in src_files:
        text = open(path).read()
        names |= set(re.findall(r'"(drd_[a-z0-9_]+)', text))
        # replicate.c's table of families: {"lag_seconds", "gauge", ...}
        names |= {'drd_replicate_' + n for n in re.findall(r'\{"([a-z0-9_]+)", "(?:gauge|counter)"', text)}
    return names


def check_static(rules, dashboard, src_files):
    known = exported_names(src_files) | BUILTIN
    used = set()
    for r in rules_of(rules):
        for m, _ in selectors(r['expr'] + ' ' + json.dumps(r.get('annotations', {}))):
            used.add((m, 'rule ' + r.get('alert', r.get('record', '?'))))
    with open(dashboard) as f:
        dash = json.load(f)
    defined = {v['name'] for v in dash.get('templating', {}).get('list', [])} | {'__all'}
    ids, cells = set(), {}
    for p in dash['panels']:
        if p['id'] in ids:
            problems.append(f"dashboard: panel id {p['id']} twice")
        ids.add(p['id'])
        g = p['gridPos']
        if g['x'] < 0 or g['w'] <= 0 or g['x'] + g['w'] > 24 or g['h'] <= 0:
            problems.append(f"dashboard: panel '{p['title']}' outside the 24-column grid: {g}")
        for x in range(g['x'], g['x'] + g['w']):
            for y in range(g['y'], g['y'] + g['h']):
                if (x, y) in cells:
                    problems.append(f"dashboard: panels '{cells[(x, y)]}' and '{p['title']}' overlap")
                    break
                cells[(x, y)] = p['title']
            else:
                continue
            break
        if p['type'] != 'row' and not p.get('targets'):
            problems.append(f"dashboard: panel '{p['title']}' has no query")
        for v in VAR.findall(json.dumps(p)):
            if v not in defined and not v.startswith('__'):
                problems.append(f"dashboard: panel '{p['title']}' uses ${v}, which is not defined")
    for title, expr in targets_of(dashboard):
        for m, _ in selectors(expr):
            used.add((m, f"dashboard panel '{title}'"))
    for m, where in sorted(used):
        if m not in known:
            problems.append(f"{where}: metric {m} is not one drd exports")
    return {m for m, _ in used}


def api(base, path, **params):
    url = base.rstrip('/') + path + ('?' + urllib.parse.urlencode(params, doseq=True) if params else '')
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.load(r)
    if doc.get('status') != 'success':
        raise RuntimeError(f"{url}: {doc}")
    return doc['data']


def check_live(base, rules, dashboard):
    series_cache = {}

    def series(metric, matchers):
        sel = metric + (matchers or '')
        if sel not in series_cache:
            series_cache[sel] = api(base, '/api/v1/series', **{'match[]': sel})
        return series_cache[sel]

    def check_expr(where, expr, label_refs=()):
        labels = {'alertname', 'severity'}
        for metric, matchers in selectors(expr):
            found = series(metric, matchers)
            if not found:
                names = MATCHER.findall(matchers or '')
                problems.append(f"{where}: {metric}{matchers} matches no series scraped from drd"
                                + (f" (labels filtered on: {', '.join(n for n, _, _ in names)})" if names else ''))
            for s in found:
                labels |= set(s)
        for ref in label_refs:
            if ref not in labels:
                problems.append(f"{where}: annotation names $labels.{ref}, which none of its series has "
                                f"(they have: {', '.join(sorted(labels))})")

    for r in rules_of(rules):
        text = json.dumps(r.get('annotations', {}))
        # absent(X) is meant to match nothing while all is well: check X's metric name only
        expr = re.sub(r'absent\((\w+)\{[^}]*\}\)', r'absent(\1)', r['expr'])
        check_expr('rule ' + r['alert'], expr + ' ' + ' '.join(m + s for m, s in selectors(text)),
                   LABELREF.findall(text))
    for title, expr in targets_of(dashboard):
        check_expr(f"dashboard panel '{title}'", expr)
    loaded = 0
    for g in api(base, '/api/v1/rules')['groups']:
        for r in g['rules']:
            loaded += 1
            if r.get('health') != 'ok':
                problems.append(f"rule {r['name']}: health {r.get('health')}: {r.get('lastError')}")
    want = sum(1 for _ in rules_of(rules))
    if loaded != want:
        problems.append(f"Prometheus loaded {loaded} rules, the file has {want}")


def main(argv):
    if len(argv) == 4 and argv[1] == 'static':
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
        srcs = [os.path.join(root, p) for p in ('drd/app/daemon.c', 'drd/app/daemon_volume.c',
                                                  'drd/app/daemon_keys.c', 'replicate/replicate.c')]
        used = check_static(argv[2], argv[3], srcs)
        if not problems:
            print(f"static: {len(used)} metrics named, all exported by drd's source")
    elif len(argv) == 5 and argv[1] == 'live':
        check_live(argv[2], argv[3], argv[4])
    elif len(argv) == 3 and argv[1] == 'alerts':
        for a in api(argv[2], '/api/v1/alerts')['alerts']:
            lab = dict(a['labels'])
            print(lab.pop('alertname'), a['state'], json.dumps(lab, sort_keys=True))
        return 0
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
