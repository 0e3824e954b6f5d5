#!/usr/bin/env bash
# drd snapshot save against the faults a CronJob meets:
#  (a) a file:// store whose directory does not exist yet: save creates it (mode 0700), while the
#      readers (list) keep refusing a missing directory.
#  (b) an etcd stalled (SIGSTOP) before the save starts: it fails within about --timeout with
#      exit 6 and one line naming the endpoint.
#  (c) an etcd stalled while the snapshot streams: the same, and no manifest becomes visible;
#      after SIGCONT the next save succeeds and verifies.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
LOAD=${TESTBIN:-$H_REPO/build/testbin}/../bench/etcd-load
[[ -x "$LOAD" ]] || h_fail "etcd-load not found at '$LOAD' (build the etcd-load target)"
drd=$(h_drd_path)
STORE_DIR=$H_TMP/backups/etcd # neither directory exists yet
STORE="file://$STORE_DIR"
FLAGS=(--store "$STORE" --catalog "$H_TMP/catalog.db" --key-file "$H_TMP/keys")
export DRD_CATALOG_DIR="$H_TMP/catdir"

h_etcd_start primary "$H_TMP/primary"
h_on_exit 'kill -CONT "$PRIMARY_PID" 2>/dev/null || true' # never leave it stopped
h_run_drd 10 key generate --out "$H_TMP/keys" --name k1
h_assert_eq "$rc" 0 "key generate (stderr: $err)"
manifests() { find "$STORE_DIR" -type f -not -path '*/.tmp/*' -name '*manifest*' 2>/dev/null | sort; }

# ---- (a) a store directory that does not exist yet ----
h_run_drd 30 --log-level error snapshot list --store "$STORE"
h_assert_eq "$rc" 3 "list on a missing store directory (stderr: $err)"
h_assert_contains "$err" "$STORE_DIR" "the refusal names the directory"
[[ ! -e "$STORE_DIR" ]] || h_fail "list created the store directory"
"$LOAD" put --endpoints "$PRIMARY_URL" --prefix /registry/small/ --count 100 >/dev/null || h_fail "load"
h_run_drd 60 --log-level error snapshot save --etcd "$PRIMARY_URL" "${FLAGS[@]}"
h_assert_eq "$rc" 0 "save into a store directory that does not exist yet (stderr: $err)"
h_assert_eq "$(stat -c %a "$STORE_DIR")" 700 "mode of the store directory save created"
h_run_drd 30 --log-level error snapshot list --store "$STORE" --catalog "$H_TMP/catalog.db" --json
h_assert_eq "$rc" 0 "list after the first save (stderr: $err)"
h_assert_eq "$(jq length <<<"$out")" 1 "snapshots listed after the first save"
before=$(manifests)

# ---- (b) stalled before the save starts ----
kill -STOP "$PRIMARY_PID"
h_run_drd 30 --log-level error snapshot save --etcd "$PRIMARY_URL" "${FLAGS[@]}" --timeout 3s
kill -CONT "$PRIMARY_PID"
h_assert_eq "$rc" 6 "save against a stopped etcd: exit status (stderr: $err)"
h_assert_contains "$err" "127.0.0.1:$PRIMARY_CLIENT_PORT" "the error names the endpoint"
((took <= 8)) || h_fail "save against a stopped etcd took ${took}s with --timeout 3s"
h_log "stopped before the save: failed after ${took}s: $err"

# ---- (c) stalled while the snapshot streams ----
# ~150 MB of values, saved without compression: long enough to stop etcd mid-stream
"$LOAD" put --endpoints "$PRIMARY_URL" --prefix /registry/big/ --count 150 --value-size 1000000 \
    --inflight 4 >/dev/null || h_fail "loading big values"
t0=$SECONDS
h_bg saver "$drd" --log-level error snapshot save --etcd "$PRIMARY_URL" "${FLAGS[@]}" \
    --compression none --timeout 3s
streaming() { [[ -n "$(find "$STORE_DIR" -type f -size +1M -newer "$H_TMP/keys" 2>/dev/null)" ]]; }
h_wait_until 60 "the save starts writing" streaming
kill -STOP "$PRIMARY_PID"
stopped_at=$SECONDS
h_running saver || h_fail "the save finished before etcd could be stopped mid-stream (make the db bigger)"
s=0
h_wait_exit saver 30 || s=$?
kill -CONT "$PRIMARY_PID"
took=$((SECONDS - stopped_at))
saver_err=$(cat "$SAVER_LOG")
h_assert_eq "$s" 6 "save with etcd stopped mid-stream: exit status (stderr: $saver_err)"
h_assert_contains "$saver_err" "Snapshot" "the error names the call"
((took <= 10)) || h_fail "save with etcd stopped mid-stream took ${took}s after the stop (--timeout 3s)"
h_log "stopped mid-stream after $((stopped_at - t0))s: failed ${took}s later: $saver_err"
h_assert_eq "$(manifests)" "$before" "manifests after the stalled save (none added)"
h_run_drd 30 --log-level error snapshot list --store "$STORE" --catalog "$H_TMP/catalog.db" --json
h_assert_eq "$(jq length <<<"$out")" 1 "snapshots listed after the stalled save"

# ---- after SIGCONT the next save succeeds ----
h_run_drd 120 --log-level error snapshot save --etcd "$PRIMARY_URL" "${FLAGS[@]}" --compression none
h_assert_eq "$rc" 0 "save after SIGCONT (stderr: $err)"
h_run_drd 120 --log-level error snapshot verify --all --store "$STORE" --catalog "$H_TMP/catalog.db" \
    --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "verify after the stalled save (stderr: $err)"
h_run_drd 30 --log-level error snapshot list --store "$STORE" --catalog "$H_TMP/catalog.db" --json
h_assert_eq "$(jq length <<<"$out")" 2 "snapshots listed after the next save"
h_pass
