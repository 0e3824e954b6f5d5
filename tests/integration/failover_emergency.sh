#!/usr/bin/env bash
# Emergency failover and failback in exact mode:
#  - a writer on the primary east records every acknowledged put and its time; drd run replicates
#    (and records the loss window: the last applied revision and time, when west was last caught
#    up, when east last answered); west's etcd is stopped (SIGSTOP) so that replication falls
#    behind while drd still hears east; kill -9 of east's etcd; drd failover --emergency (without
#    --force: refused) --force promotes west at the last revision it applied (epoch 1), needing
#    nothing from east, and records RPO in seconds: at least the span of the acknowledged writes
#    west lacks, at most the time west's etcd was stopped plus the recorder's probe period;
#  - east comes back (its writes that never reached west still on it); drd failback fences it,
#    lists what it wrote after the promoted revision into divergent.tsv (exactly the acknowledged
#    writes missing on west) and records the RPO in revisions, which equals that count; the step
#    that makes east a standby waits, saying how to reseed it (shown by drd runbook list), goes
#    on by itself once east is reseeded from west, and reverse replication runs;
#  - a planned switchover then returns the roles (epoch 2, east).
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
cd "$H_TMP"
h_etcd_start east "$H_TMP/east"
for i in $(seq 1 30); do h_etcdctl east put "/registry/pods/default/p$i" "pod$i" >/dev/null; done
h_etcd_reserve west
h_run_drd 60 replicate seed --source "$EAST_URL" --data-dir "$H_TMP/west" --name west \
    --initial-cluster "$WEST_INITIAL_CLUSTER" --initial-advertise-peer-urls "$WEST_PEER_URL"
h_assert_eq "$rc" 0 "seed: $err"
h_etcd_start west "$H_TMP/west"
RB=$H_REPO/policies/runbooks
cat >drd.yaml <<YAML
state_dir: $H_TMP/state
clusters:
  east: { endpoints: [$EAST_URL], timeout: 3s }
  west: { endpoints: [$WEST_URL], timeout: 3s }
replicate:
  - { name: dr, mode: exact, source: east, target: west }
failover:
  primary: east
  standby: west
  replicate: dr
  planned: $RB/planned-switchover.yaml
  emergency: $RB/emergency-failover.yaml
  failback: $RB/failback.yaml
  unreachable_for: 2s
YAML
# the hook of start-standby-workloads keeps its context
cat >hook.sh <<HOOK
#!/bin/sh
echo "\$DRD_RPO_SECONDS" >$H_TMP/hook.env
cat >$H_TMP/hook.json
HOOK
chmod +x hook.sh
sed -e "s|command: \[/bin/true\]|command: [$H_TMP/hook.sh]|" "$RB/emergency-failover.yaml" >emergency.yaml
sed -i "s|emergency: .*|emergency: $H_TMP/emergency.yaml|" drd.yaml
h_bg daemon "$(h_drd_path)" run --config drd.yaml
writer() {
    local n=0
    while [[ ! -e "$H_TMP/stop-writer" ]]; do
        n=$((n + 1))
        if ETCDCTL_API=3 etcdctl --endpoints "$EAST_URL" --command-timeout=2s --dial-timeout=1s put "/w/$n" "$n" >/dev/null 2>&1; then
            echo "$n $EPOCHREALTIME" >>"$H_TMP/acked"
        fi
    done
}
: >acked
writer &
WRITER=$!
h_on_exit "touch $H_TMP/stop-writer; wait $WRITER 2>/dev/null || true"
lines_ge() { (($(wc -l <"$1") >= $2)); }
h_wait_until 30 "acknowledged writes" lines_ge acked 100
h_wait_until 30 "the loss-window record" test -s state/jobs/replicate-dr.rpo
# west's etcd stops applying: replication falls behind (those writes are the loss) while drd
# still hears east (its watch stream and its probes)
kill -STOP "$WEST_PID"
h_on_exit "kill -CONT $WEST_PID 2>/dev/null || true"
stalled=$EPOCHREALTIME
sleep 1
# the writer stops first, so that every write east applied was acknowledged (a put in flight at
# the kill could be applied without its answer)
touch stop-writer
wait $WRITER || true
sleep 1
killed=$EPOCHREALTIME
h_kill9 east
sleep 2      # the recorder rewrites its file at most once a second
h_kill9 daemon # what it queued for west must not reach it when west resumes
kill -CONT "$WEST_PID"
acked_n=$(wc -l <acked)

# --emergency needs --force; a planned switchover is refused while east is down
h_run_drd 60 failover --config drd.yaml --emergency
h_assert_eq "$rc" 2 "emergency without --force"
h_assert_contains "$err" "add --force to confirm" "the refusal says why"
h_run_drd 60 failover --config drd.yaml --planned
((rc != 0)) || h_fail "a planned switchover with the primary down"
h_assert_contains "$err" "the primary does not answer" "planned refused: $err"
h_run_drd 30 runbook abort "$(h_drd runbook list --config drd.yaml | awk '{print $1}' | tail -1)" --config drd.yaml
h_run_drd 120 failover --config drd.yaml --emergency --force
h_assert_eq "$rc" 0 "emergency failover: $err / $out"
h_log "$out"
h_assert_contains "$out" "did not answer" "the probes"
h_assert_contains "$out" "RPO unknown until east can be read" "RPO in revisions pending"
promoted=$(h_etcdctl west get --print-value-only /drd/epoch | jq -r .revision)
missing=0
: >missing.txt
while read -r n t; do
    [[ "$(h_etcdctl west get --print-value-only "/w/$n")" == "$n" ]] || { missing=$((missing + 1)); echo "$n $t" >>missing.txt; }
done <acked
h_log "acknowledged $acked_n, missing on west $missing, promoted at $promoted"
((missing > 0)) || h_fail "the test lost nothing: replication was not behind"
# RPO in seconds: known at once; every missing write was acknowledged after T0 (caught up) and
# before T1 (east last heard); T1 - T0 covers their span and is not much more than the stall
erun=$(h_drd runbook list --config drd.yaml | awk '/emergency/ {print $1}')
rec=state/runs/$erun/run
field() { awk -v k="$1" '$1 == k {print $2}' "$rec"; }
rpo_ms=$(field rpo_ms)
R=$(field applied_rev)
h_log "recorded: R $R at $(field applied_ms), T0 $(field caught_up_ms), T1 $(field heard_ms), rpo_ms $rpo_ms; stalled $stalled, killed $killed"
((rpo_ms >= 0)) || h_fail "RPO in seconds not known: $out"
((R > 0 && R <= promoted)) || h_fail "recorded last applied revision $R (promoted at $promoted)"
first=$(head -1 missing.txt | cut -d' ' -f2)
last=$(tail -1 missing.txt | cut -d' ' -f2)
awk -v r="$rpo_ms" -v a="$first" -v b="$last" 'BEGIN {exit !(r / 1000 >= b - a)}' ||
    h_fail "RPO ${rpo_ms}ms is less than the missing writes' span ($first .. $last)"
awk -v t0="$(field caught_up_ms)" -v a="$first" 'BEGIN {exit !(t0 / 1000 <= a)}' ||
    h_fail "T0 $(field caught_up_ms) is after the first missing write's acknowledgement $first"
awk -v t1="$(field heard_ms)" -v b="$last" 'BEGIN {exit !(t1 / 1000 >= b)}' ||
    h_fail "T1 $(field heard_ms) is before the last missing write's acknowledgement $last"
awk -v r="$rpo_ms" -v s="$stalled" -v k="$killed" 'BEGIN {exit !(r / 1000 <= k - s + 1)}' ||
    h_fail "RPO ${rpo_ms}ms is much more than the stall ($stalled .. $killed)"
secs=$(awk -v r="$rpo_ms" 'BEGIN {printf "%.3f", r / 1000}')
h_assert_contains "$out" "RPO in seconds at most ${secs}s: west applied revision $R at 20" "the record names R and T"
h_assert_eq "$(cat hook.env)" "$secs" "the hook's DRD_RPO_SECONDS"
h_assert_contains "$(cat hook.json)" "\"rpo_seconds\":$secs,\"loss_window\":{\"applied_revision\":$R," "the hook's JSON body"
h_run_drd 30 runbook show "$erun" --config drd.yaml
h_assert_contains "$out" "RPO unknown, at most ${secs}s" "runbook show: RPO seconds"
h_assert_contains "$out" "loss window: writes east acknowledged after 20" "runbook show: the window"
h_run_drd 30 status --config drd.yaml --json
h_assert_contains "$out" "\"rpo_seconds\":$secs,\"rto_seconds\"" "status: RPO seconds"
h_assert_contains "$out" "\"loss_window\":{\"applied_revision\":$R," "status: the window"
h_etcdctl west put /after/failover yes >/dev/null || h_fail "west refuses writes after promotion"

# east comes back; failback: fence, list, wait for the reseed
h_etcd_start east "$H_TMP/east"
h_bg failback "$(h_drd_path)" failback --config drd.yaml
h_wait_until 60 "failback waiting for the reseed" bash -c "'$(h_drd_path)' runbook list --config '$H_TMP/drd.yaml' 2>/dev/null | grep -q 'waiting: reseed east from west'"
run=$(h_drd runbook list --config drd.yaml | awk '/failback/ {print $1}')
h_assert_contains "$(h_etcdctl east alarm list)" "alarm:CORRUPT" "east fenced"
div=state/runs/$run/divergent.tsv
h_assert_eq "$(grep -vc '^#' "$div")" "$missing" "divergent events = acknowledged writes missing on west"
while read -r n _; do
    [[ "$(h_etcdctl west get --print-value-only "/w/$n")" == "$n" ]] || grep -q "put	/w/$n	" "$div" || h_fail "/w/$n missing on west and not listed"
done <acked
h_assert_contains "$(h_drd runbook show "$run" --config drd.yaml)" "RPO $missing revisions" "recorded RPO = writes really missing"
# reseed east from west
h_etcd_stop east
mv "$H_TMP/east" "$H_TMP/east.diverged"
h_run_drd 60 replicate seed --source "$WEST_URL" --data-dir "$H_TMP/east" --name east \
    --initial-cluster "$EAST_INITIAL_CLUSTER" --initial-advertise-peer-urls "$EAST_PEER_URL"
h_assert_eq "$rc" 0 "reseed east: $err"
h_etcd_start east "$H_TMP/east"
h_wait_exit failback 120 || h_fail "failback: $(tail -5 "$FAILBACK_LOG")"
h_assert_contains "$(cat "$FAILBACK_LOG")" "run $run: done" "failback done"
h_assert_eq "$(h_etcdctl east get --print-value-only /after/failover)" yes "east follows west"
# and the roles back
h_run_drd 300 failover --config drd.yaml --planned
h_assert_eq "$rc" 0 "switchover back: $err"
h_assert_contains "$(h_etcdctl east get --print-value-only /drd/epoch)" '"epoch":2,"primary":"east"' "epoch 2"
h_pass
