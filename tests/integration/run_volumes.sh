#!/usr/bin/env bash
# drd run with volume pairs: two daemons on loopback, site A pushes a directory on "@every 2s" to
# site B, which serves. Copies appear at B equal to A's tree; A's /metrics, /status and drd status
# show them; a change at A is in a later copy; a sync slower than the interval (bwlimit) shows its
# progress and counts the intervals it covers as missed; B stopped makes A's volume out of sync
# with failures counted and /readyz naming it, B back brings it in sync; bad volume configs are
# refused with file:line:column.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/volume.sh"

v_setup
cd "$H_TMP"
h_free_port PA
h_free_port PB
h_free_port PV
A=$H_TMP/site-a/data
ROOT=$H_TMP/site-b/volumes
mkdir -p "$A/db" "$A/conf" "$ROOT"
for i in 1 2 3; do head -c 200000 /dev/urandom >"$A/db/seg$i"; done
printf 'a=1\n' >"$A/conf/app.ini"

cat >a.yaml <<YAML
listen: 127.0.0.1:$PA
state_dir: $H_TMP/state-a
volumes:
  - { name: pvc-data, role: push, source: $A, to: "127.0.0.1:$PV", psk_file: $PSK,
      schedule: "@every 2s", bwlimit: 400K, checksum: false }
YAML
cat >b.yaml <<YAML
listen: 127.0.0.1:$PB
state_dir: $H_TMP/state-b
volumes:
  - { name: pvc-data, role: serve, listen: "127.0.0.1:$PV", root: $ROOT, psk_file: $PSK, keep: 3 }
YAML

get() { curl -s --max-time 5 "http://127.0.0.1:$1$2"; }
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2"; }
metric() { # NAME{LABELS} -> value (integer part) on A, 0 when absent
    local v
    v=$(get "$PA" /metrics | awk -v k="$1" '$1 == k { print $2 }')
    echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}
VOL='name="pvc-data"'
JOB='kind="volume",name="pvc-data"'
up() { [[ "$(code "$1" /healthz)" == 200 ]]; }
has_copy() { [[ -L "$ROOT/pvc-data/latest" ]]; }
latest_equals_a() { python3 "$V_TREE" compare "$A" "$ROOT/pvc-data/$(readlink "$ROOT/pvc-data/latest")" >/dev/null 2>&1; }
at_least() { (($(metric "$1") >= $2)); }
is() { [[ "$(metric "$1")" == "$2" ]]; }
progress_shown() { [[ "$(get "$PA" /status | jq -r '.jobs[] | select(.kind == "volume") | .progress.phase // empty')" == "syncing volume" ]]; }

h_run_drd 30 run --config a.yaml --check
h_assert_eq "$rc" 0 "site A's config (stderr: $err)"
h_assert_contains "$out" "1 volume)" "summary counts the volume"
h_run_drd 30 run --config b.yaml --check
h_assert_eq "$rc" 0 "site B's config (stderr: $err)"

h_log "two daemons: B serves, A pushes every 2s"
h_bg siteb h_drd run --config b.yaml
h_wait_until 30 "site B up" up "$PB"
h_bg sitea h_drd run --config a.yaml
h_wait_until 30 "site A up" up "$PA"
h_wait_until 60 "a copy at B" has_copy
h_wait_until 60 "B's latest copy equals A" latest_equals_a
h_wait_until 30 "two syncs on A's /metrics" at_least "drd_job_runs_total{$JOB}" 2
h_assert_eq "$(metric "drd_volume_out_of_sync{$VOL}")" 0 "in sync"
h_assert_eq "$(metric "drd_job_failures_total{$JOB}")" 0 "no failure"
(($(metric "drd_volume_last_sync_timestamp_seconds{$VOL}") >= $(date +%s) - 30)) ||
    h_fail "no recent sync on /metrics: $(get "$PA" /metrics | grep drd_volume)"
at_least "drd_volume_last_sync_bytes_sent{$VOL}" 1 || h_fail "no bytes sent on /metrics"
for m in drd_volume_last_sync_duration_seconds drd_volume_last_sync_literal_bytes \
    drd_volume_last_sync_matched_bytes drd_volume_last_sync_files_changed \
    drd_volume_missed_intervals_total; do
    h_assert_contains "$(get "$PA" /metrics)" "$m{$VOL} " "$m on /metrics"
done
st=$(get "$PA" /status | jq '.jobs[] | select(.kind == "volume")')
h_assert_eq "$(jq -r .volume.role <<<"$st")" push "role on /status"
h_assert_eq "$(jq -r .volume.files <<<"$st")" 4 "files of the last sync"
[[ -d "$ROOT/pvc-data/copies/$(jq -r .volume.copy <<<"$st")" ]] || h_fail "/status names no copy at B: $st"
h_run_drd 30 status --config a.yaml
h_assert_eq "$rc" 0 "drd status on A (stderr: $err)"
h_assert_contains "$out" "volume pvc-data: " "drd status lists the volume"
h_assert_contains "$out" "push $A to 127.0.0.1:$PV: in sync" "drd status: in sync"
h_assert_contains "$out" "last copy 2" "drd status: the last copy"
h_run_drd 30 status --config b.yaml
h_assert_contains "$out" "serving on 127.0.0.1:$PV into $ROOT/pvc-data" "drd status on B"

h_log "changes at A are in a later copy; a sync slower than the interval shows its progress"
missed=$(metric "drd_volume_missed_intervals_total{$VOL}")
printf 'a=2\n' >"$A/conf/app.ini"
rm "$A/db/seg2"
head -c 2500000 /dev/urandom >"$A/db/big" # ~6 s at 400K/s: covers two intervals
h_wait_until 30 "the push's progress on /status" progress_shown
h_run_drd 30 status --config a.yaml
h_assert_contains "$out" "progress: syncing volume" "drd status shows the progress"
h_wait_until 90 "B's latest copy has the changes" latest_equals_a
h_wait_until 30 "intervals covered by the slow sync counted as missed" \
    at_least "drd_volume_missed_intervals_total{$VOL}" $((missed + 1))
h_assert_eq "$(metric "drd_job_failures_total{$JOB}")" 0 "still no failure"

h_log "B stops: A's volume goes out of sync, failures counted, /readyz names it"
h_stop siteb
h_assert_eq "$SITEB_STATUS" 0 "B drains and exits 0 (log: $(tail -n 3 "$SITEB_LOG"))"
h_wait_until 30 "out of sync" is "drd_volume_out_of_sync{$VOL}" 1
h_wait_until 30 "failures counted" at_least "drd_job_failures_total{$JOB}" 2
h_assert_eq "$(code "$PA" /readyz)" 503 "/readyz fails"
h_assert_contains "$(get "$PA" /readyz)" "volume pvc-data: last run failed" "/readyz names the volume"
h_run_drd 30 status --config a.yaml
h_assert_contains "$out" "OUT OF SYNC" "drd status says so"

h_log "B back: in sync again"
h_bg siteb h_drd run --config b.yaml
h_wait_until 60 "in sync again" is "drd_volume_out_of_sync{$VOL}" 0
h_stop sitea
h_assert_eq "$SITEA_STATUS" 0 "A exits 0 on SIGTERM"
h_stop siteb

h_log "bad volume configs: file:line:column"
# bad SED_EXPR WANT: A's or B's config edited by sed must fail --check with WANT on one line
bad() {
    sed -e "$2" "$1" >bad.yaml
    h_run_drd 30 run --config bad.yaml --check
    h_assert_eq "$rc" 2 "exit status for $2 (stderr: $err)"
    h_assert_eq "$(wc -l <<<"$err")" 1 "one line for $2: $err"
    h_assert_contains "$err" "$3" "message for $2"
}
bad a.yaml 's/role: push/role: pull/' "bad.yaml:4:29: volumes[0].role: expected one of push|serve, found 'pull'"
bad a.yaml 's/bwlimit: 400K/bwlimit: fast/' "bad.yaml:5:39: volumes[0].bwlimit: expected a size"
bad a.yaml 's/bwlimit: 400K/bwlimit: 10/' "bad.yaml:5:39: volumes[0].bwlimit: 10 is out of range"
bad a.yaml 's/"@every 2s"/"*\/5 * * *"/' "bad.yaml:5:17: volumes[0].schedule: schedule '*/5 * * *': expected 5 fields"
bad a.yaml 's/checksum: false/checksum: maybe/' "bad.yaml:5:55: volumes[0].checksum: expected true or false"
bad a.yaml 's/to: "127[^"]*", //' "bad.yaml:4:5: volume pvc-data: role push needs 'to'"
bad a.yaml 's/checksum: false/keep: 2/' "bad.yaml:5:51: volume pvc-data: 'keep' does not apply to role push"
bad a.yaml "s#psk_file: [^,]*,#psk_file: $H_TMP/nope,#" "bad.yaml:4:"
bad a.yaml "s#psk_file: [^,]*,#psk_file: $PSK, cert: $PSK,#" "volume pvc-data: psk_file or cert/key/cacert, not both"
bad a.yaml 's/name: pvc-data/name: "pvc data"/' "bad.yaml:4:13: job name 'pvc data': use letters, digits"
bad a.yaml 's/psk_file/psk_secret/' "bad.yaml:4:"
bad b.yaml 's/keep: 3/keep: 0/' "volumes[0].keep: 0 is out of range 1..10000"
bad b.yaml 's/keep: 3/schedule: "@every 1m"/' "volume pvc-data: 'schedule' does not apply to role serve"
bad b.yaml 's/root: [^,]*, //' "bad.yaml:4:5: volume pvc-data: role serve needs 'root'"
cp "$PSK" open.psk
chmod 644 open.psk
sed -e "s#psk_file: [^,]*,#psk_file: $H_TMP/open.psk,#" b.yaml >bad.yaml
col=$(($(sed -n 4p bad.yaml | grep -bo "$H_TMP/open.psk" | cut -d: -f1) + 1))
h_run_drd 30 run --config bad.yaml --check
h_assert_eq "$rc" 2 "an open PSK is refused (stderr: $err)"
h_assert_contains "$err" "bad.yaml:4:$col: psk_file: volume pre-shared key '$H_TMP/open.psk' has mode 0644" "at its position"
h_assert_contains "$err" "HINT: chmod 600" "with the hint"
h_pass
