# shellcheck shell=bash
# tests/harness/emergency.sh: the emergency failover shared by tests/integration/failover_emergency.sh
# (exact mode) and failover_emergency_filtered.sh (filtered mode). Source it after etcd.sh; call
# the functions from the test's main shell, in $H_TMP, with east (the primary) and west (the
# standby) running and em_config's drd.yaml.
#
#   em_config MODE...     writes drd.yaml: clusters east and west, the replicate job dr from east
#                         to west with MODE... ("mode: exact", "mode: filtered, prefixes: [...]"),
#                         the failover's runbooks from policies/runbooks/, the emergency one a copy
#                         whose start-standby-workloads hook keeps its context (hook.env: its
#                         DRD_RPO_SECONDS, hook.json: its JSON body)
#   em_write_and_stall PREFIX   drd run replicates (h_bg daemon) while a writer puts PREFIX<n> = <n>
#                         on east and records each acknowledged n and its time in acked; once the
#                         loss-window record exists, west's etcd is stopped (SIGSTOP: replication
#                         falls behind while drd still hears east), then the writer stops (every
#                         write east applied was acknowledged). Sets stalled (the stop's time).
#   em_kill               kill -9 of east's etcd and of drd run (what it queued for west must not
#                         reach it), west resumes. Sets killed (the kill's time) and acked_n.
#   em_failover           --emergency without --force and --planned are refused, then
#                         --emergency --force promotes west. Sets out, erun (the run), promoted
#                         (the revision in west's /drd/epoch).
#   em_missing PREFIX     the acknowledged writes missing on west: missing (their count, > 0),
#                         missing.txt ("n time" lines)
#   em_check_divergent RUN PREFIX   (below)
#   em_check_rpo_seconds  the RPO in seconds of run erun: known at once, covering the missing
#                         writes' span and not much more than the stall; in the run's output, the
#                         hook's environment and JSON body, runbook show and status --json. Sets
#                         R (the last applied revision recorded) and secs.

em_config() {
    local rb=$H_REPO/policies/runbooks
    cat >"$H_TMP/drd.yaml" <<YAML
state_dir: $H_TMP/state
clusters:
  east: { endpoints: [$EAST_URL], timeout: 3s }
  west: { endpoints: [$WEST_URL], timeout: 3s }
replicate:
  - { name: dr, $*, source: east, target: west }
failover:
  primary: east
  standby: west
  replicate: dr
  planned: $rb/planned-switchover.yaml
  emergency: $H_TMP/emergency.yaml
  failback: $rb/failback.yaml
  unreachable_for: 2s
YAML
    cat >"$H_TMP/hook.sh" <<HOOK
#!/bin/sh
echo "\$DRD_RPO_SECONDS" >$H_TMP/hook.env
cat >$H_TMP/hook.json
HOOK
    chmod +x "$H_TMP/hook.sh"
    sed -e "s|command: \[/bin/true\]|command: [$H_TMP/hook.sh]|" "$rb/emergency-failover.yaml" >"$H_TMP/emergency.yaml"
    grep -q hook.sh "$H_TMP/emergency.yaml" || h_fail "hook not replaced"
}

_em_writer() {
    local n=0
    while [[ ! -e "$H_TMP/stop-writer" ]]; do
        n=$((n + 1))
        if ETCDCTL_API=3 etcdctl --endpoints "$EAST_URL" --command-timeout=2s --dial-timeout=1s put "$1$n" "$n" >/dev/null 2>&1; then
            echo "$n $EPOCHREALTIME" >>"$H_TMP/acked"
        fi
    done
}

_em_lines_ge() { (($(wc -l <"$1") >= $2)); }

em_write_and_stall() {
    h_bg daemon "$(h_drd_path)" run --config "$H_TMP/drd.yaml"
    : >"$H_TMP/acked"
    _em_writer "$1" &
    _EM_WRITER=$!
    h_on_exit "touch $H_TMP/stop-writer; wait $_EM_WRITER 2>/dev/null || true"
    h_wait_until 30 "acknowledged writes" _em_lines_ge "$H_TMP/acked" 100
    h_wait_until 30 "the loss-window record" test -s "$H_TMP/state/jobs/replicate-dr.rpo"
    kill -STOP "$WEST_PID"
    h_on_exit "kill -CONT $WEST_PID 2>/dev/null || true"
    stalled=$EPOCHREALTIME
    sleep 1
    # the writer stops first: a put in flight at the kill could be applied without its answer
    touch "$H_TMP/stop-writer"
    wait "$_EM_WRITER" || true
}

em_kill() {
    sleep 1
    killed=$EPOCHREALTIME
    h_kill9 east
    sleep 2 # the recorder rewrites its file at most once a second
    h_kill9 daemon
    kill -CONT "$WEST_PID"
    acked_n=$(wc -l <"$H_TMP/acked")
}

em_failover() {
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
    erun=$(h_drd runbook list --config drd.yaml | awk '/emergency/ {print $1}')
    promoted=$(h_etcdctl west get --print-value-only /drd/epoch | jq -r .revision)
}

em_missing() {
    local n t
    missing=0
    : >"$H_TMP/missing.txt"
    while read -r n t; do
        [[ "$(h_etcdctl west get --print-value-only "$1$n")" == "$n" ]] || {
            missing=$((missing + 1))
            echo "$n $t" >>"$H_TMP/missing.txt"
        }
    done <"$H_TMP/acked"
    h_log "acknowledged $acked_n, missing on west $missing, promoted at $promoted"
    ((missing > 0)) || h_fail "the test lost nothing: replication was not behind"
}

# a field of the run's record (state/runs/RUN/run)
em_field() { awk -v k="$1" '$1 == k {print $2}' "$H_TMP/state/runs/${2:-$erun}/run"; }

# Every missing write was acknowledged after T0 (caught up) and before T1 (east last heard);
# T1 - T0 covers their span and is not much more than the stall.
em_check_rpo_seconds() {
    local rpo_ms first last t0 t1
    rpo_ms=$(em_field rpo_ms)
    R=$(em_field applied_rev)
    t0=$(em_field caught_up_ms)
    t1=$(em_field heard_ms)
    h_log "recorded: R $R at $(em_field applied_ms), T0 $t0, T1 $t1, rpo_ms $rpo_ms; stalled $stalled, killed $killed"
    ((rpo_ms >= 0)) || h_fail "RPO in seconds not known: $out"
    ((R > 0 && R <= promoted)) || h_fail "recorded last applied revision $R (promoted at $promoted)"
    first=$(head -1 "$H_TMP/missing.txt" | cut -d' ' -f2)
    last=$(tail -1 "$H_TMP/missing.txt" | cut -d' ' -f2)
    awk -v r="$rpo_ms" -v a="$first" -v b="$last" 'BEGIN {exit !(r / 1000 >= b - a)}' ||
        h_fail "RPO ${rpo_ms}ms is less than the missing writes' span ($first .. $last)"
    awk -v t0="$t0" -v a="$first" 'BEGIN {exit !(t0 / 1000 <= a)}' ||
        h_fail "T0 $t0 is after the first missing write's acknowledgement $first"
    awk -v t1="$t1" -v b="$last" 'BEGIN {exit !(t1 / 1000 >= b)}' ||
        h_fail "T1 $t1 is before the last missing write's acknowledgement $last"
    awk -v r="$rpo_ms" -v s="$stalled" -v k="$killed" 'BEGIN {exit !(r / 1000 <= k - s + 1)}' ||
        h_fail "RPO ${rpo_ms}ms is much more than the stall ($stalled .. $killed)"
    secs=$(awk -v r="$rpo_ms" 'BEGIN {printf "%.3f", r / 1000}')
    h_assert_contains "$out" "RPO in seconds at most ${secs}s: west applied revision $R at 20" "the record names R and T"
    h_assert_eq "$(cat "$H_TMP/hook.env")" "$secs" "the hook's DRD_RPO_SECONDS"
    h_assert_contains "$(cat "$H_TMP/hook.json")" "\"rpo_seconds\":$secs,\"loss_window\":{\"applied_revision\":$R," "the hook's JSON body"
    h_run_drd 30 runbook show "$erun" --config drd.yaml
    h_assert_contains "$out" "RPO unknown, at most ${secs}s" "runbook show: RPO seconds"
    h_assert_contains "$out" "loss window: writes east acknowledged after 20" "runbook show: the window"
    h_run_drd 30 status --config drd.yaml --json
    h_assert_contains "$out" "\"rpo_seconds\":$secs,\"rto_seconds\"" "status: RPO seconds"
    h_assert_contains "$out" "\"loss_window\":{\"applied_revision\":$R," "status: the window"
}

# em_check_divergent RUN PREFIX: the failback run RUN listed exactly the acknowledged writes
# missing on west into its divergent.tsv (one put of PREFIX<n> each, nothing else), kept their keys
# and values in divergent.jsonl (0600), and recorded that many revisions as the RPO.
em_check_divergent() {
    local div=$H_TMP/state/runs/$1/divergent.tsv n
    [[ -f "$div" ]] || h_fail "run $1 left no divergent.tsv"
    h_assert_eq "$(grep -vc '^#' "$div")" "$missing" "divergent events = acknowledged writes missing on west"
    local vals=${div%.tsv}.jsonl kv
    [[ -f "$vals" ]] || h_fail "run $1 left no divergent.jsonl"
    h_assert_eq "$(stat -c %a "$vals")" 600 "divergent.jsonl's mode"
    h_assert_eq "$(wc -l <"$vals")" "$missing" "divergent.jsonl: one line per event"
    kv=$(jq -r 'select(.event == "put") | [(.key | @base64d), (.value | @base64d)] | @tsv' "$vals")
    while read -r n _; do
        grep -q "	put	$2$n	" "$div" || h_fail "$2$n missing on west and not listed in $div"
        grep -qx "$2$n	$n" <<<"$kv" || h_fail "$2$n's value not kept in $vals"
    done <"$H_TMP/missing.txt"
    h_assert_contains "$(h_drd runbook show "$1" --config "$H_TMP/drd.yaml")" "RPO $missing revisions" "recorded RPO = writes really missing"
    h_assert_eq "$(em_field rpo_revs "$1")" "$missing" "the run's rpo_revs"
}
