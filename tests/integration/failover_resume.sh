#!/usr/bin/env bash
# A planned switchover in filtered mode (two live clusters, /registry/ replicated) that is killed
# with kill -9 in the middle of a step and resumed:
#  - while the run is stopped, drd runbook list and drd status show the step it was in, and a
#    new drd failover is refused (finish or abort the run first);
#  - drd runbook resume runs that step again and finishes: west is the primary (epoch 1 in both
#    clusters' own /drd/epoch), every /registry/ key of east is on west, west's own keys are
#    untouched, east is resynced from west (its /registry/ equals west's);
#  - a promotion raced by another (the epoch raised behind the run's back) is refused (exit 20);
#  - a failing hook stops a run with its output (message, audit trail), nothing fenced; a
#    hook-http gets the JSON body and fails its step on a non-2xx answer, with the answer;
#  - bad runbooks (unknown step type, missing field) are refused with file:line:column.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
cd "$H_TMP"
h_etcd_start east "$H_TMP/east"
h_etcd_start west "$H_TMP/west"
for i in $(seq 1 40); do h_etcdctl east put "/registry/pods/default/p$i" "pod$i" >/dev/null; done
for i in $(seq 1 5); do h_etcdctl west put "/local/west$i" "w$i" >/dev/null; done
h_etcdctl east put /local/east-only yes >/dev/null
RB=$H_REPO/policies/runbooks
# the start hook blocks until released (the test kills drd while it runs)
sed -e "/name: start-standby-workloads/,/timeout/ s|command: \[/bin/true\]|command: [$H_TMP/slow.sh]|" \
    "$RB/planned-switchover.yaml" >planned.yaml
grep -q slow.sh planned.yaml || h_fail "hook not replaced"
cat >slow.sh <<HOOK
#!/bin/sh
echo "\$DRD_ATTEMPT" >>$H_TMP/slow.attempts
while [ ! -e $H_TMP/release ]; do sleep 0.1; done
echo released
HOOK
chmod +x slow.sh
config() { # STATE_DIR PLANNED_RUNBOOK
    cat <<YAML
state_dir: $1
clusters:
  east: { endpoints: [$EAST_URL] }
  west: { endpoints: [$WEST_URL] }
replicate:
  - { name: dr, mode: filtered, source: east, target: west, prefixes: [/registry/] }
failover:
  primary: east
  standby: west
  replicate: dr
  planned: $2
  emergency: $RB/emergency-failover.yaml
  failback: $RB/failback.yaml
YAML
}
config "$H_TMP/state" "$H_TMP/planned.yaml" >drd.yaml
h_run_drd 60 replicate etcd --mode filtered --prefix /registry/ --name dr --source "$EAST_URL" --target "$WEST_URL" --until-caught-up
h_assert_eq "$rc" 0 "catch up: $err"

h_bg fo "$(h_drd_path)" failover --config drd.yaml --planned
h_wait_until 120 "the run in its slow hook" test -s slow.attempts
h_kill9 fo
h_run_drd 30 runbook list --config drd.yaml
h_assert_contains "$out" "active  east -> west, epoch 1, planned-switchover, step 7/9 start-standby-workloads (running)" "list shows the step it was in"
run=$(awk '{print $1}' <<<"$out")
h_run_drd 30 status --config drd.yaml
h_assert_contains "$out" "last runbook run: $run  active" "drd status (daemon down) shows the run"
h_run_drd 30 failover --config drd.yaml --planned
h_assert_eq "$rc" 18 "a second run while one is unfinished"
h_assert_contains "$err" "run $run is not finished: drd runbook resume $run continues it" "why"
touch release
h_run_drd 300 runbook resume "$run" --config drd.yaml
h_assert_eq "$rc" 0 "resume: $err / $out"
h_assert_contains "$out" "resuming run $run at step 7/9" "resumed where it was"
h_assert_eq "$(cat slow.attempts | tr '\n' ' ')" "1 2 " "the hook ran again, told its attempt"
h_assert_contains "$out" "resynced" "filtered: the old primary resynced"
h_assert_contains "$(h_etcdctl west get --print-value-only /drd/epoch)" '"epoch":1,"primary":"west"' "west's epoch"
h_assert_contains "$(h_etcdctl east get --print-value-only /drd/epoch)" '"epoch":1,"primary":"west"' "east's own epoch"
h_assert_eq "$(h_etcd_count west /registry/)" 40 "every /registry/ key on west"
h_assert_eq "$(h_etcd_count west /local/)" 5 "west's own keys untouched"
h_assert_eq "$(h_etcdctl east get --print-value-only /local/east-only)" yes "east's own key untouched"
h_assert_eq "$(h_etcdctl east get /registry/ --prefix | md5sum)" "$(h_etcdctl west get /registry/ --prefix | md5sum)" "east resynced from west"
h_assert_eq "$(h_etcdctl east alarm list)" "" "east's fence lifted"
h_run_drd 30 runbook show "$run" --config drd.yaml
h_assert_contains "$out" "start-standby-workloads    hook-exec          ok       attempts 2" "show: two attempts"
h_assert_contains "$(cat state/runs/$run/audit.log)" '"event":"resume"' "resume in the audit"
# the stale east refuses to feed west
h_run_drd 60 replicate etcd --mode filtered --prefix /registry/ --name dr --source "$EAST_URL" --target "$WEST_URL" --until-caught-up
h_assert_eq "$rc" 20 "filtered replication from the demoted east: $err"

# a promotion raced by another: a hook raises the epoch behind the run's back (as a second
# operator's run would); the promote step refuses, naming both epochs, and nothing is promoted
cat >racing.yaml <<RB
runbook: racing
steps:
  - { name: raise-elsewhere, type: hook-exec, command: [$H_TMP/raise.sh] }
  - { name: promote, type: promote }
RB
cat >raise.sh <<HOOK
#!/bin/sh
ETCDCTL_API=3 etcdctl --endpoints $WEST_URL put /drd/epoch '{"epoch":7,"primary":"west","cluster_id":"1","revision":1,"time_ms":1,"run":"elsewhere"}' >/dev/null
HOOK
chmod +x raise.sh
config "$H_TMP/state4" "$H_TMP/racing.yaml" >racing-cfg.yaml
h_run_drd 60 failover --config racing-cfg.yaml --planned
h_assert_eq "$rc" 20 "a raced promotion: $err"
h_assert_contains "$err" "refusing to promote east: epoch 7 (primary west, cluster 1, run elsewhere) was raised since this run started at epoch 1" "names both epochs"
h_assert_contains "$(h_etcdctl east get --print-value-only /drd/epoch)" '"epoch":1,"primary":"west"' "east not promoted"
h_etcdctl west put /drd/epoch "$(h_etcdctl east get --print-value-only /drd/epoch)" >/dev/null

# a failing hook stops the run with its output; nothing is fenced
cat >failing.yaml <<'RB'
runbook: failing
steps:
  - { name: pre, type: check, checks: [reachable] }
  - { name: hook, type: hook-exec, command: [sh, -c, "echo boom on $DRD_OLD_PRIMARY >&2; exit 3"] }
  - { name: fence, type: fence }
RB
config "$H_TMP/state2" "$H_TMP/failing.yaml" >fail.yaml
h_run_drd 60 failover --config fail.yaml --planned
h_assert_eq "$rc" 1 "failing hook: $err"
h_assert_contains "$err" "failed at step hook: hook sh failed (exit status 3): boom on west" "the hook's output in the error"
frun=$(ls state2/runs | grep planned)
h_assert_contains "$(cat state2/runs/$frun/audit.log)" '"output":"boom on west"' "the hook's output in the audit"
h_assert_eq "$(h_etcdctl west alarm list)" "" "nothing fenced"
h_run_drd 30 runbook abort "$frun" --config fail.yaml
h_assert_eq "$rc" 0 "abort: $err"
h_run_drd 30 runbook resume "$frun" --config fail.yaml
h_assert_eq "$rc" 2 "an aborted run is not resumed"

# hook-http: the JSON body POSTed; a 2xx answer passes, another fails the step with the answer
h_free_port HOOK_PORT
cat >hookd.py <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        open(sys.argv[2], "ab").write(self.path.encode() + b" " + body + b"\n")
        code = 200 if self.path == "/ok" else 503
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"scaled" if code == 200 else b"cluster busy")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
h_bg hookd python3 hookd.py "$HOOK_PORT" "$H_TMP/posted"
h_wait_until 10 "the hook server" bash -c "echo >/dev/tcp/127.0.0.1/$HOOK_PORT"
cat >http.yaml <<RB
runbook: http
steps:
  - { name: ok, type: hook-http, url: "http://127.0.0.1:$HOOK_PORT/ok" }
  - { name: busy, type: hook-http, url: "http://127.0.0.1:$HOOK_PORT/busy", timeout: 5s }
RB
config "$H_TMP/state5" "$H_TMP/http.yaml" >http-cfg.yaml
h_run_drd 60 failover --config http-cfg.yaml --planned
h_assert_eq "$rc" 1 "a hook-http answering 503: $err"
h_assert_contains "$out" "hook http://127.0.0.1:$HOOK_PORT/ok answered 200" "the first hook passed"
h_assert_contains "$err" "failed at step busy: hook http://127.0.0.1:$HOOK_PORT/busy answered 503: cluster busy" "the answer in the error"
h_assert_contains "$(cat posted)" '/ok {"run":"' "the JSON body"
h_assert_contains "$(cat posted)" '"operation":"planned","step":"ok","attempt":1,"old_primary":"west","new_primary":"east","epoch":2' "its context"
h_stop hookd

# bad runbooks: file:line:column, exit 2, nothing started
printf 'runbook: bad\nsteps:\n  - { name: a, type: teleport }\n' >bad1.yaml
printf 'runbook: bad\nsteps:\n  - name: a\n    type: hook-http\n' >bad2.yaml
for b in bad1 bad2; do
    config "$H_TMP/state3" "$H_TMP/$b.yaml" >bad.yaml
    h_run_drd 30 failover --config bad.yaml --planned
    h_assert_eq "$rc" 2 "$b refused"
    h_assert_eq "$(wc -l <<<"$err")" 1 "$b: one line"
done
h_assert_contains "$err" "bad2.yaml:3:5: step a: a hook-http step needs 'url'" "missing field"
config "$H_TMP/state3" "$H_TMP/bad1.yaml" >bad.yaml
h_run_drd 30 failover --config bad.yaml --planned --dry-run
h_assert_contains "$err" "bad1.yaml:3:22: step a: unknown step type 'teleport'" "unknown step type"
[[ ! -e state3/runs ]] || h_fail "a bad runbook left a run behind"
h_pass
