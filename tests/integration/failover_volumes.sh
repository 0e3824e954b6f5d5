#!/usr/bin/env bash
# drd failover --planned with a volume pair (docs/runbooks.md, "Volumes in a switchover"), two
# daemons on loopback: east's pushes its PVC (a directory) on "@every 2s", west's serves.
#  - the runbook runs with west's config (role serve). With east's daemon stopped, the step
#    final-volume-sync waits ("newest complete copy started before the fence at ...") and fails
#    after its timeout with that reason; nothing is promoted and the run is resumable;
#  - resumed, it shows the reason in drd status; east's daemon back, it passes once a copy whose
#    sync started after the fence is published (status.json's start after the fence step's end),
#    and the file the stop-writers hook wrote just before the fence is in the copy that a hook
#    materialises (drd replicate volume promote) into west's data dir;
#  - back again with the roles swapped as the docs say (west pushes, east serves over its old
#    data moved to current/): run with a role push row, the step pushes itself, by delta;
#  - a config without volume pairs: the step says so.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/volume.sh"

v_setup
cd "$H_TMP"
h_etcd_start east "$H_TMP/east"
for i in $(seq 1 20); do h_etcdctl east put "/registry/pods/default/p$i" "pod$i" >/dev/null; done
h_etcd_start_seeded west east
h_free_port PE
h_free_port PW
h_free_port PV
A=$H_TMP/east-data       # east's PVC, the application's data
ROOT=$H_TMP/west-volumes # west's copy store
LIVE=$H_TMP/west-data    # west's application data dir, filled by the failover
mkdir -p "$A/db" "$ROOT" store
for i in 1 2 3; do head -c 300000 /dev/urandom >"$A/db/seg$i"; done
echo v1 >"$A/app.conf"
DRDBIN=$(h_drd_path)
RB=$H_REPO/policies/runbooks

# hooks: "stop DIR" is the application's last write before its writers stop; "promote ROOT DIR"
# materialises the volume's latest copy (the documented hook)
cat >hook.sh <<HOOK
#!/bin/sh
case "\$1" in
stop) date +%s%N >"\$2/last-write"; echo "writers stopped" ;;
promote) exec "$DRDBIN" replicate volume promote --root "\$2" --name pvc-data --to "\$3" ;;
esac
HOOK
chmod +x hook.sh
# runbook STOP_DIR PROMOTE_ROOT PROMOTE_TO VOLUME_TIMEOUT > file: the shipped planned runbook
runbook() {
    sed -e "0,/command: \[\/bin\/true\]/s||command: [$H_TMP/hook.sh, stop, $1]|" \
        -e "0,/command: \[\/bin\/true\]/s||command: [$H_TMP/hook.sh, promote, $2, $3]|" \
        -e "/name: volumes/,/timeout/ s|timeout: 10m|timeout: $4|" "$RB/planned-switchover.yaml"
}
runbook "$A" "$ROOT" "$LIVE" 20s >planned.yaml
grep -q "timeout: 20s" planned.yaml || h_fail "volumes timeout not replaced"
grep -q "hook.sh, promote" planned.yaml || h_fail "hooks not replaced"

common() {
    cat <<YAML
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
  planned: $1
  emergency: $RB/emergency-failover.yaml
  failback: $RB/failback.yaml
YAML
}
{
    echo "listen: 127.0.0.1:$PW"
    common "$H_TMP/planned.yaml"
    echo "volumes:"
    echo "  - { name: pvc-data, role: serve, listen: \"127.0.0.1:$PV\", root: $ROOT, psk_file: $PSK }"
} >west.yaml
cat >east.yaml <<YAML
listen: 127.0.0.1:$PE
state_dir: $H_TMP/state-east
volumes:
  - { name: pvc-data, role: push, source: $A, to: "127.0.0.1:$PV", psk_file: $PSK,
      schedule: "@every 2s" }
YAML
common "$H_TMP/planned.yaml" >novol.yaml

up() { [[ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/healthz")" == 200 ]]; }
latest() { readlink "$ROOT/pvc-data/latest" 2>/dev/null | sed 's|^copies/||'; }
has_copy() { [[ -n "$(latest)" ]]; }

h_log "a config without volume pairs: nothing to sync"
h_run_drd 60 failover --config novol.yaml --planned --dry-run
h_assert_eq "$rc" 0 "dry run without volumes: $err"
h_assert_contains "$out" "no volume pairs in the config (volumes:): nothing to sync" "no pairs"

h_log "east pushes to west; then east's daemon stops: no more pushes"
h_bg westd h_drd run --config west.yaml
h_wait_until 30 "west's daemon up" up "$PW"
h_bg eastd h_drd run --config east.yaml
h_wait_until 30 "east's daemon up" up "$PE"
h_wait_until 60 "a copy at west" has_copy
h_stop eastd
first=$(latest)
h_run_drd 60 failover --config west.yaml --planned --dry-run
h_assert_eq "$rc" 0 "dry run: $err"
h_assert_contains "$out" "would wait: volume pvc-data: newest complete copy started before the fence at" "dry run: what the step waits for"
h_assert_contains "$out" "copy $first" "dry run: names the copy"

h_log "the switchover: final-volume-sync waits for a copy after the fence, and times out"
h_run_drd 120 failover --config west.yaml --planned
h_assert_eq "$rc" 6 "the run fails at the volumes step with DR_ETIMEOUT: $out / $err"
h_assert_contains "$out" "FAILED: volume pvc-data: newest complete copy started before the fence at" "the reason"
h_assert_contains "$out" "(copy $first, started" "names the copy"
h_assert_contains "$out" "(the step's timeout is over)" "says it timed out"
h_assert_contains "$err" "failed at step volumes" "the run failed there"
((took >= 20)) || h_fail "the step gave up after ${took}s, before its 20s timeout"
[[ -z "$(h_etcdctl west get --print-value-only /drd/epoch)" ]] || h_fail "promoted despite the failed step"
[[ -e "$A/last-write" ]] || h_fail "the stop hook did not run"
[[ ! -e "$ROOT/pvc-data/copies/$first/last-write" ]] || h_fail "the old copy has the last write"
h_run_drd 30 runbook list --config west.yaml
h_assert_contains "$out" "failed  east -> west, epoch 1, planned-switchover, step 5/9 volumes (failed)" "runbook list"
run=$(awk '{print $1}' <<<"$out")

h_log "resumed: it waits, saying why, until east's next push after the fence"
h_bg resume h_drd runbook resume "$run" --config west.yaml
waiting() {
    local s
    s=$("$DRDBIN" status --config west.yaml 2>&1 || true)
    [[ "$s" == *"volumes (running): waiting: volume pvc-data: newest complete copy started before the fence at"* ]]
}
h_wait_until 30 "the waiting reason in drd status" waiting
h_bg eastd h_drd run --config east.yaml
h_wait_exit resume 60 || h_fail "the resumed run failed: $(tail -n 5 "$RESUME_LOG")"
h_stop eastd # no newer copy from here on
h_log "$(cat "$RESUME_LOG")"
h_assert_contains "$(cat "$RESUME_LOG")" "ok: pvc-data: copy " "the step names the copy"
h_assert_contains "$(cat "$RESUME_LOG")" "after the fence" "started after the fence"
h_assert_contains "$(h_etcdctl west get --print-value-only /drd/epoch)" '"epoch":1,"primary":"west"' "west promoted"
copy=$(sed -n 's/.*ok: pvc-data: copy \([^,]*\), started.*/\1/p' "$RESUME_LOG")
[[ -n "$copy" && "$copy" != "$first" ]] || h_fail "the step passed on copy '$copy' (the pre-fence one is $first)"
# the copy's recorded start is after the end of the fence step (state: step 2 ok ATT START END ...)
fence_end=$(awk '$1 == "step" && $2 == 2 { print $6 }' "state/runs/$run/state")
st=$(cat "$ROOT/pvc-data/status.json")
h_log "fence step ended at $fence_end ms; status.json: $st"
started=$(jq -r .last_sync_started_ms <<<"$st")
h_assert_eq "$(jq -r .latest <<<"$st")" "$(latest)" "status.json names the latest copy"
((fence_end > 0 && started >= fence_end)) || h_fail "copy started at $started, the fence ended at $fence_end"
h_run_drd 30 replicate volume status --root "$ROOT" --name pvc-data --json
h_assert_eq "$(jq -r '.[0].last_sync_started_ms' <<<"$out")" "$started" "volume status --json shows the start"
# what the writers wrote before the fence is in the materialised data
[[ -e "$LIVE/last-write" ]] || h_fail "the promoted data lacks the last write before the fence"
h_assert_eq "$(cat "$LIVE/last-write")" "$(cat "$A/last-write")" "the last write"
v_compare "$A" "$LIVE"
h_stop westd

h_log "and back, roles swapped: west pushes (the runbook pushes itself), east serves by delta"
ROOT_E=$H_TMP/east-volumes
A2=$H_TMP/east-data-2
mkdir -p "$ROOT_E/pvc-data"
mv "$A" "$ROOT_E/pvc-data/current" # the old primary's data: only the changes cross
echo v2 >"$LIVE/app.conf"          # the new primary wrote
v_serve eastserve "$ROOT_E" --psk-file "$PSK"
runbook "$LIVE" "$ROOT_E" "$A2" 1m >back.yaml
{
    common "$H_TMP/back.yaml"
    echo "volumes:"
    echo "  - { name: pvc-data, role: push, source: $LIVE, to: \"$EASTSERVE_ADDR\", psk_file: $PSK,"
    echo "      schedule: \"0 0 1 1 *\" }"
} >west-back.yaml
h_run_drd 300 failover --config west-back.yaml --planned
h_assert_eq "$rc" 0 "switchover back: $out / $err"
h_log "$out"
h_assert_contains "$out" "west is the primary now" "back: from west"
h_assert_contains "$out" "ok: pvc-data: pushed $LIVE to $EASTSERVE_ADDR now, copy " "the step pushed"
h_assert_contains "$(h_etcdctl east get --print-value-only /drd/epoch)" '"epoch":2,"primary":"east"' "east promoted"
h_assert_eq "$(cat "$A2/last-write")" "$(cat "$LIVE/last-write")" "west's last write is at east"
h_assert_eq "$(cat "$A2/app.conf")" v2 "west's change is at east"
v_compare "$LIVE" "$A2"
total=$(du -sb "$LIVE" | cut -f1)
bytes=$(jq -r .bytes_received "$ROOT_E/pvc-data/status.json")
((bytes < total / 4)) || h_fail "the push back sent $bytes bytes of $total: not by delta"
h_log "push back: $bytes bytes on the wire for a $total-byte tree"
h_pass
