#!/usr/bin/env bash
# Progress of long jobs. etcd sits behind a slow link (faults/blackhole.py with a RATE), so that a
# snapshot of its ~3 MB database takes about 10 s: `drd snapshot save` with stderr not a terminal
# logs progress lines (bytes of the size etcd announced, rate, ETA); --no-progress logs none;
# `drd --progress drill` draws the rewritten line even into a file and ends it at 100 % of what the
# drill reads; the daemon's /status and `drd status` show a running scheduled snapshot's progress.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
export DRD_CATALOG_DIR=$H_TMP/catalog
h_etcd_start primary "$H_TMP/primary"
for i in 1 2 3; do # incompressible values: the database is ~3.5 MB
    head -c 600000 /dev/urandom | base64 -w0 | h_etcdctl primary put "/registry/blobs/b$i" >/dev/null
done
h_drd key generate --out "$H_TMP/keys" >/dev/null
mkdir -p "$H_TMP/store"
STORE=file://$H_TMP/store
h_bg proxy python3 "$(dirname "$0")/faults/blackhole.py" "$H_TMP/proxy.port" \
    "127.0.0.1:$PRIMARY_CLIENT_PORT" 300000
h_wait_until 10 "the slow link" test -s "$H_TMP/proxy.port"
SLOW=http://127.0.0.1:$(cat "$H_TMP/proxy.port")

h_log "snapshot save, stderr to a file: progress as log lines every 5 s"
h_run_drd 120 snapshot save --etcd "$SLOW" --store "$STORE" --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "snapshot save (stderr: $err)"
((took >= 6)) || h_fail "the slow link was not slow: the save took ${took}s"
lines=$(grep -E 'info +snapshot save: streaming snapshot: [0-9.]+ [KM]iB of [0-9.]+ MiB \([0-9]+%\), [0-9.]+ [KM]iB/s, ETA [0-9]+s$' <<<"$err" || true)
[[ -n "$lines" ]] || h_fail "no progress line in: $err"
h_log "progress: $(head -n 1 <<<"$lines")"
if grep -q $'\r' <<<"$err"; then h_fail "a terminal line went into a file"; fi

h_log "--no-progress: none"
h_run_drd 120 --no-progress snapshot save --etcd "$SLOW" --store "$STORE" --key-file "$H_TMP/keys" --label again=1
h_assert_eq "$rc" 0 "snapshot save --no-progress (stderr: $err)"
if grep -q "streaming snapshot" <<<"$err"; then h_fail "progress despite --no-progress: $err"; fi

h_log "drd --progress drill: the rewritten line, ended at 100%"
h_run_drd 120 --progress drill --store "$STORE" --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "drill (stderr: $err)"
h_assert_contains "$err" $'\r\e[Kdrill ' "a rewritten line"
last=$(tr '\r' '\n' <<<"$err" | grep '^.\[Kdrill ' | tail -n 1)
[[ "$last" =~ \ ([0-9.]+\ [KM]iB)\ of\ ([0-9.]+\ [KM]iB)\ \(100%\) ]] || h_fail "last line not at 100%: $last"
h_assert_eq "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "read all it announced"

h_log "the daemon: a running snapshot's progress in /status and drd status"
h_free_port PORT
cat >"$H_TMP/drd.yaml" <<YAML
listen: 127.0.0.1:$PORT
state_dir: $H_TMP/state
clusters:
  slow: { endpoints: [$SLOW] }
stores:
  main: { url: "$STORE", key_file: $H_TMP/keys }
snapshots:
  - { name: slow, cluster: slow, store: main, schedule: "@every 20s" }
YAML
get() { curl -s --max-time 5 "http://127.0.0.1:$PORT$1"; }
progress_seen() {
    local p
    p=$(get /status | jq -c '.jobs[] | select(.kind == "snapshot") | .progress // empty') || return 1
    [[ -n "$p" ]] || return 1
    jq -e '.phase == "streaming snapshot" and .done_bytes > 0 and .total_bytes > .done_bytes
           and .rate_bytes_per_second > 0 and .eta_seconds >= 0' <<<"$p" >/dev/null || return 1
    h_log "/status: $p"
    h_run_drd 30 status --config "$H_TMP/drd.yaml"
    [[ "$out" == *"progress: streaming snapshot: "*" of "*"MiB ("*"%), "*"/s, ETA "* ]] || return 1
    h_log "drd status: $(grep progress: <<<"$out")"
}
h_bg drd h_drd run --config "$H_TMP/drd.yaml"
h_wait_until 60 "a scheduled snapshot's progress in /status and drd status" progress_seen
done_run() { [[ "$(get /status | jq -r '.jobs[] | select(.kind == "snapshot") | .last_result')" == OK ]]; }
h_wait_until 60 "the snapshot finishes" done_run
[[ -z "$(get /status | jq -c '.jobs[] | select(.kind == "snapshot") | .progress // empty')" ]] ||
    h_fail "progress shown for a job that is not running"
h_stop drd
h_assert_eq "$DRD_STATUS" 0 "SIGTERM exit"
h_pass
