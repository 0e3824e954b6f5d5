#!/usr/bin/env bash
# scripts/demo, with this build's drd (DRD: the demo skips its own build): it must finish with
# exit 0 after the daemon has taken a snapshot, passed a drill, printed `drd status`, and the
# standby matched the primary.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fail() { echo "FAIL: demo: $*" >&2; exit 1; }
[[ -x "${DRD:-}" ]] || fail "set DRD to the drd binary"
out=$(DRD=$DRD timeout 300 bash "$ROOT/scripts/demo" 2>&1)
rc=$?
printf '%s\n' "$out" | tail -n 60
((rc == 0)) || fail "scripts/demo exited with $rc"
for want in "==> drd status --config drd.yaml" "daemon: running" "snapshot primary: " "drill proof: " \
    "store local: newest restorable revision" "job drill proof: done" "demo: standby matches primary" \
    "drd exited with status 0"; do
    grep -qF -- "$want" <<<"$out" || fail "the demo's output lacks '$want'"
done
grep -qE '^drd_drill_rto_seconds\{name="proof"\} [0-9.]+$' <<<"$out" || fail "no drill RTO among the metrics"
echo "PASS: demo"
