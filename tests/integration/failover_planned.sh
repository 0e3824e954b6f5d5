#!/usr/bin/env bash
# drd failover --planned in exact mode, while a writer runs (its acknowledgements recorded):
#  - --dry-run first: prints the plan, changes nothing (both revisions, state_dir, the store);
#  - the switchover: every write acknowledged is on the new primary, the old primary accepted no
#    write after the fence (its keys are exactly the acknowledged ones), roles swapped (epoch 1
#    names west in both etcds and in the store), hooks ran with the context (env and JSON body);
#  - reverse replication without a reseed: the old primary sits at the revision the new one was
#    promoted at, catches up from there, and HashKV agrees (drd replicate verify);
#  - the stale side refuses: replication from it, snapshots of it (exit 20);
#  - drd run on the same config afterwards replicates west -> east, and its /metrics and drd
#    status show the roles by the epoch (drd_role, drd_epoch), the run's figures
#    (drd_runbook_last_*: RPO 0, an RTO) and the keys a failover back to east would need;
#  - drd runbook list/show, the audit trail; then a planned switchover back (epoch 2, east).
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
cd "$H_TMP"
h_etcd_start east "$H_TMP/east"
for i in $(seq 1 50); do h_etcdctl east put "/registry/pods/default/p$i" "pod$i" >/dev/null; done
h_etcd_reserve west
h_run_drd 60 replicate seed --source "$EAST_URL" --data-dir "$H_TMP/west" --name west \
    --initial-cluster "$WEST_INITIAL_CLUSTER" --initial-advertise-peer-urls "$WEST_PEER_URL"
h_assert_eq "$rc" 0 "seed: $err"
h_etcd_start west "$H_TMP/west"
mkdir -p store
RB=$H_REPO/policies/runbooks
# the shipped runbook with the hooks pointed at this test's scripts
sed -e "0,/command: \[\/bin\/true\]/s||command: [$H_TMP/hook.sh, stop]|" \
    -e "0,/command: \[\/bin\/true\]/s||command: [$H_TMP/hook.sh, start]|" \
    "$RB/planned-switchover.yaml" >planned.yaml
grep -q "hook.sh, start" planned.yaml || h_fail "hooks not replaced"
# the start hook (after the promotion) also stops the old site's writer, as a real runbook's
# hooks must before the old primary's fence is lifted (the writer runs into the fence first)
cat >hook.sh <<HOOK
#!/bin/sh
{ echo "\$1 \$DRD_OPERATION \$DRD_OLD_PRIMARY \$DRD_NEW_PRIMARY \$DRD_EPOCH \$DRD_STEP \$DRD_ATTEMPT"; cat; echo; } >>$H_TMP/hooks.log
if [ "\$1" = start ] && [ "\$DRD_EPOCH" = 1 ]; then
    touch $H_TMP/stop-writer
    i=0; while [ ! -e $H_TMP/writer-done ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i+1)); done
fi
echo "hook \$1 done"
HOOK
chmod +x hook.sh
h_free_port PORT
cat >drd.yaml <<YAML
listen: 127.0.0.1:$PORT
state_dir: $H_TMP/state
clusters:
  east: { endpoints: [$EAST_URL] }
  west: { endpoints: [$WEST_URL] }
stores:
  main: { url: "file://$H_TMP/store", no_encryption: true }
replicate:
  - { name: dr, mode: exact, source: east, target: west }
failover:
  primary: east
  standby: west
  replicate: dr
  planned: $H_TMP/planned.yaml
  emergency: $RB/emergency-failover.yaml
  failback: $RB/failback.yaml
YAML
h_run_drd 60 replicate etcd --source "$EAST_URL" --target "$WEST_URL" --until-caught-up
h_assert_eq "$rc" 0 "catch up: $err"

snapshot_state() {
    echo "east $(h_etcd_revision east) west $(h_etcd_revision west)"
    { find "$H_TMP/state" "$H_TMP/store" 2>/dev/null || true; } | sort
}
# --dry-run: the plan, nothing changed
before=$(snapshot_state)
h_run_drd 60 failover --config drd.yaml --planned --dry-run
h_assert_eq "$rc" 0 "dry run: $err"
h_assert_contains "$out" "dry run of planned-switchover: east is the primary now" "dry run header"
h_assert_contains "$out" "would fence east" "dry run: fence"
h_assert_contains "$out" "would raise epoch 1 (primary west" "dry run: promote"
h_assert_contains "$out" "dry run: nothing was changed" "dry run footer"
h_assert_eq "$(snapshot_state)" "$before" "the dry run changed nothing"
h_assert_eq "$(h_etcdctl east alarm list)" "" "no alarm after the dry run"

# a writer on east, recording each acknowledged write, running into the fence
writer() {
    local n=0
    while [[ ! -e "$H_TMP/stop-writer" ]]; do
        n=$((n + 1))
        if ETCDCTL_API=3 etcdctl --endpoints "$EAST_URL" --command-timeout=3s put "/w/$n" "$n" >/dev/null 2>&1; then
            echo "$n" >>"$H_TMP/acked"
        else
            echo "$n" >>"$H_TMP/refused"
        fi
    done
    touch "$H_TMP/writer-done"
}
: >acked
: >refused
writer &
WRITER=$!
h_on_exit "touch $H_TMP/stop-writer; wait $WRITER 2>/dev/null || true"
lines_ge() { (($(wc -l <"$1") >= $2)); }
h_wait_until 30 "the writer's first acknowledgements" lines_ge acked 20
# replication runs meanwhile (as the standby's daemon would) and keeps running through the
# switchover: the runbook drains alongside it, and it stops by itself (exit 20) once the new
# epoch reaches east through the reverse replication
h_bg repl "$(h_drd_path)" replicate etcd --source "$EAST_URL" --target "$WEST_URL"
sleep 1
h_run_drd 300 failover --config drd.yaml --planned
h_assert_eq "$rc" 0 "planned switchover: $err / $out"
h_wait_exit repl 30 >/dev/null || true
h_assert_eq "$REPL_STATUS" 20 "the forward replication stopped by itself: $(tail -2 "$REPL_LOG")"
# why: the record reached it through its source ("was demoted while replicating"), or the
# standby's own record came first ("the standby ... was promoted"); both name the new epoch
h_assert_contains "$(cat "$REPL_LOG")" "epoch 1 (primary west" "it says why"
grep -qE "was demoted while replicating|was promoted \(epoch 1" "$REPL_LOG" ||
    h_fail "the forward replication's reason names neither path: $(tail -2 "$REPL_LOG")"
h_log "$out"
wait $WRITER || true
(($(wc -l <refused) >= 1)) || h_fail "the writer saw no refusal from the fenced primary"
acked_n=$(wc -l <acked)
h_log "writer: $acked_n acknowledged, $(wc -l <refused) refused"
# every acknowledged write is on the new primary; the old one holds exactly those
missing=0
while read -r n; do
    [[ "$(h_etcdctl west get --print-value-only "/w/$n")" == "$n" ]] || missing=$((missing + 1))
done <acked
h_assert_eq "$missing" 0 "acknowledged writes missing on west"
h_assert_eq "$(h_etcd_count east /w/)" "$acked_n" "keys on the old primary = acknowledged writes"
h_assert_eq "$(h_etcd_count west /w/)" "$acked_n" "keys on the new primary = acknowledged writes"
# roles swapped: epoch 1 names west everywhere; the reverse replication left east at west's rev
h_assert_contains "$(h_etcdctl west get --print-value-only /drd/epoch)" '"epoch":1,"primary":"west"' "west's epoch"
h_assert_contains "$(h_etcdctl east get --print-value-only /drd/epoch)" '"epoch":1,"primary":"west"' "east's epoch (replicated)"
h_assert_contains "$(cat store/drd-epoch/00000000000000000001)" '"epoch":1,"primary":"west"' "the store's epoch"
h_assert_eq "$(h_etcdctl east alarm list)" "" "east's fence lifted after the epoch"
h_assert_contains "$out" "no reseed" "reverse replication without a reseed"
h_assert_contains "$out" "RPO 0 revisions" "RPO recorded"
h_assert_eq "$(h_etcd_revision east)" "$(h_etcd_revision west)" "old primary at the new one's revision"
h_run_drd 60 replicate verify --source "$WEST_URL" --target "$EAST_URL"
h_assert_eq "$rc" 0 "HashKV west vs east: $err"
# reverse replication continues from there
h_etcdctl west put /after/switch yes >/dev/null
h_run_drd 60 replicate etcd --source "$WEST_URL" --target "$EAST_URL" --until-caught-up
h_assert_eq "$rc" 0 "reverse replication: $err"
h_assert_eq "$(h_etcdctl east get --print-value-only /after/switch)" yes "reverse replicated"
# the daemon, on the same config, reads its role from the epoch: it replicates west -> east now
h_bg daemon "$(h_drd_path)" run --config drd.yaml
h_etcdctl west put /after/daemon yes >/dev/null
h_wait_until 60 "the daemon replicating west -> east" bash -c "[[ \$(ETCDCTL_API=3 etcdctl --endpoints '$EAST_URL' get --print-value-only /after/daemon) == yes ]]"
h_assert_contains "$(cat "$DAEMON_LOG")" "the epoch names west the primary: replicating west -> east" "the daemon says so"
scrape() { curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics"; }
in_scrape() { grep -qxF "$1" <<<"$(scrape)"; }
h_wait_until 30 "west the primary in /metrics" in_scrape 'drd_role{cluster="west",role="primary"} 1'
m=$(scrape)
h_assert_contains "$m" $'\ndrd_epoch 1\n' "drd_epoch"
h_assert_contains "$m" 'drd_role{cluster="east",role="standby"} 1' "east the standby"
h_assert_contains "$m" 'operation="planned",status="done",old_primary="east",new_primary="west"} 1' "the run in /metrics"
h_assert_contains "$m" $'\ndrd_runbook_last_epoch 1\n' "the run's epoch"
h_assert_contains "$m" $'\ndrd_runbook_last_rpo_revisions 0\n' "the run's RPO"
h_assert_contains "$m" $'\ndrd_runbook_last_rpo_seconds 0.000\n' "the run's RPO in seconds"
grep -qE '^drd_runbook_last_rto_seconds [0-9]+\.[0-9]{3}$' <<<"$m" || h_fail "no RTO series"
grep -qE '^drd_runbook_last_finish_timestamp_seconds [0-9]{10}\.[0-9]{3}$' <<<"$m" || h_fail "no finish time"
status_has() { h_drd status --config drd.yaml | grep -qF "$1"; }
h_wait_until 30 "drd status: the keys east would need" status_has "encryption keys in use on east"
h_run_drd 30 status --config drd.yaml
h_assert_contains "$out" "roles (epoch 1): east standby (holds epoch 1), west primary (holds epoch 1)" "drd status: roles"
h_assert_contains "$out" "done  east -> west, epoch 1, planned-switchover, RPO 0 revisions, RTO " "drd status: the run"
h_stop daemon
# hooks: env and JSON body
h_assert_contains "$(cat hooks.log)" "stop planned east west 1 stop-primary-writers 1" "stop hook env"
h_assert_contains "$(cat hooks.log)" "start planned east west 1 start-standby-workloads 1" "start hook env"
h_assert_contains "$(cat hooks.log)" '"old_primary":"east","new_primary":"west","epoch":1' "hook JSON body"
# the stale side refuses
h_run_drd 60 replicate etcd --source "$EAST_URL" --target "$WEST_URL" --until-caught-up
h_assert_eq "$rc" 20 "replication from the demoted east: $err"
h_run_drd 60 snapshot save --etcd "$EAST_URL" --store "file://$H_TMP/store" --no-encryption --catalog "$H_TMP/c.db"
h_assert_eq "$rc" 20 "snapshot of the demoted east: $err"
# the record: list, show, audit
h_run_drd 30 runbook list --config drd.yaml
h_assert_contains "$out" "done  east -> west, epoch 1, planned-switchover" "runbook list"
h_assert_contains "$out" "RPO 0 revisions" "runbook list RPO"
run=$(awk '{print $1}' <<<"$out")
h_run_drd 30 runbook show "$run" --config drd.yaml
h_assert_contains "$out" "promote-standby            promote            ok" "show"
audit=state/runs/$run/audit.log
h_assert_eq "$(grep -c '"event":"ok"' "$audit")" 9 "nine steps ok in the audit"
h_assert_contains "$(cat "$audit")" '"output":"hook stop done"' "hook output in the audit"
h_assert_contains "$(cat "$audit")" '"who":"' "who in the audit"
h_assert_eq "$(stat -c %a "$audit") $(stat -c %a state/runs/$run/state)" "600 600" "state files 0600"

# and back: east becomes the primary again (epoch 2), from the same config
h_run_drd 300 failover --config drd.yaml --planned
h_assert_eq "$rc" 0 "switchover back: $err"
h_assert_contains "$out" "west is the primary now" "back: roles read from the epoch"
h_assert_contains "$(h_etcdctl east get --print-value-only /drd/epoch)" '"epoch":2,"primary":"east"' "epoch 2"
h_assert_eq "$(h_etcd_revision east)" "$(h_etcd_revision west)" "aligned again"
h_run_drd 60 replicate etcd --source "$EAST_URL" --target "$WEST_URL" --until-caught-up
h_assert_eq "$rc" 0 "forward replication again: $err"
h_pass
