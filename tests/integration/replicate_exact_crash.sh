#!/usr/bin/env bash
# Exact mode across crashes and alarms:
#  1. kill -9 of drd at 5 random moments while two writers change the primary for ~20 s: after
#     each restart it resumes from the standby's revision, and at the end both are revision-identical
#     (`drd replicate verify` exits 0; same keys, values, create/mod revisions and versions), so no
#     revision was lost or applied twice;
#  2. puts and deletes made while drd is down are applied by a restart with --until-caught-up;
#  3. a foreign write on the standby is an alarm (exit 14, one line naming the reseed command),
#     both when drd is running and when it starts;
#  4. a source compacted past the standby's revision is an alarm (exit 7, names the reseed command).
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
start=$SECONDS

rev() { h_etcd_revision "$1"; } # a failed read never equals anything
revs_equal() { [[ "$(rev primary)" == "$(rev "${1:-standby}")" ]]; }
kvs() { h_etcdctl "$1" get --prefix / -w json | jq -c '[.kvs[]? | {key, value, create_revision, mod_revision, version, lease}]'; }

# alarm checks are collected, so that one wrong alarm does not hide the others; the test fails at
# the end if any failed
checks_failed=()
check_eq() { [[ "$1" == "$2" ]] || { checks_failed+=("$3: got '$1', want '$2'"); h_log "CHECK FAILED: $3: got '$1', want '$2'"; }; }
check_contains() { [[ "$1" == *"$2"* ]] || { checks_failed+=("$3: '$2' not in '$1'"); h_log "CHECK FAILED: $3: '$2' not in '$1'"; }; }

same_data() {  # DESC [STANDBY]
    local sb=${2:-standby} url
    url=$(_h_get "$(_h_var "$sb")_URL")
    revs_equal "$sb" || h_fail "$1: revisions differ: primary $(rev primary), $sb $(rev "$sb")"
    h_run_drd 60 --log-level error replicate verify --source "$PRIMARY_URL" --target "$url"
    h_assert_eq "$rc" 0 "$1: drd replicate verify (stderr: $err)"
    kvs primary >"$H_TMP/p.json"
    kvs "$sb" >"$H_TMP/s.json"
    cmp -s "$H_TMP/p.json" "$H_TMP/s.json" ||
        h_fail "$1: get --prefix / differs: $(diff <(jq -c '.[]' "$H_TMP/p.json") <(jq -c '.[]' "$H_TMP/s.json") | head -n 5)"
}

seed() {  # NAME: seed a standby called NAME from the primary and start it
    h_etcd_reserve "$1"
    local v
    v=$(_h_var "$1")
    h_run_drd 60 --log-level error replicate seed --source "$PRIMARY_URL" --data-dir "$H_TMP/$1" --name "$1" \
        --initial-cluster "$(_h_get "${v}_INITIAL_CLUSTER")" --initial-advertise-peer-urls "$(_h_get "${v}_PEER_URL")"
    h_assert_eq "$rc" 0 "drd replicate seed $1 (stderr: $err)"
    h_etcd_start "$1" "$H_TMP/$1"
}

h_etcd_start primary "$H_TMP/primary"
for i in $(seq 1 20); do h_etcdctl primary put "/registry/namespaces/ns-$i" "{\"kind\":\"Namespace\",\"i\":$i}" >/dev/null; done
seed standby
revs_equal || h_fail "seeded standby at revision $(rev standby), primary at $(rev primary)"

# two writers for ~20 s: puts, overwrites, deletes and multi-op txns (one revision each), sent
# through etcd's JSON gateway by one curl per batch of 50 requests (an etcdctl per request would
# write only ~10 revisions/s here)
cat >"$H_TMP/writer.sh" <<'EOF'
set -euo pipefail
id=$1 secs=$2 cfg=$H_TMP/writer$1.curl
end=$((SECONDS + secs)) i=0
while ((SECONDS < end)); do
    jq -nr --arg url "$PRIMARY_URL" --argjson id "$id" --argjson i0 "$i" '
        def b: @base64;
        def put(k; v): "url = \($url)/v3/kv/put\ndata = \({key: (k|b), value: (v|b)}|tojson)";
        def del(k): "url = \($url)/v3/kv/deleterange\ndata = \({key: (k|b)}|tojson)";
        def txn(ops): "url = \($url)/v3/kv/txn\ndata = \({success: ops}|tojson)";
        [range($i0; $i0 + 50) as $i | ($i % 5) as $m
         | if $m < 2 then put("/registry/pods/w\($id)/pod-\($i % 200)"; "{\"kind\":\"Pod\",\"writer\":\($id),\"i\":\($i)}")
           elif $m == 2 then del("/registry/pods/w\($id)/pod-\(($i * 7) % 200)")
           elif $m == 3 then txn([
               {requestPut: {key: ("/registry/configmaps/w\($id)/a-\($i % 50)"|b), value: ("\($i)"|b)}},
               {requestDeleteRange: {key: ("/registry/pods/w\($id)/pod-\(($i * 3) % 200)"|b)}},
               {requestPut: {key: ("/registry/configmaps/w\($id)/c-\($i)"|b), value: ("y"|b)}}])
           else put("/registry/events/w\($id)/ev-\($i)"; "event \($i)") end]
        | join("\nnext\n")' >"$cfg"
    curl -sS --max-time 30 -K "$cfg" >/dev/null
    i=$((i + 50))
done
echo "writer $id: $i requests"
EOF
h_bg writer1 bash "$H_TMP/writer.sh" 1 20
h_bg writer2 bash "$H_TMP/writer.sh" 2 20

h_bg drd h_drd replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL"
for k in 1 2 3 4 5; do
    sleep "$((RANDOM % 30 / 10 + 1)).$((RANDOM % 10))"
    h_running drd || h_fail "drd exited by itself before kill $k: $(tail -n 3 "$DRD_LOG")"
    h_kill9 drd
    h_log "kill -9 $k at primary revision $(rev primary), standby $(rev standby)"
    if ((k % 2)); then sleep "0.$((RANDOM % 10))"; fi
    h_bg drd h_drd replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL"
done
h_wait_exit writer1 60 || h_fail "writer 1 failed or did not finish"
h_wait_exit writer2 60 || h_fail "writer 2 failed or did not finish"
h_log "$(cat "$WRITER1_LOG" "$WRITER2_LOG" | tr '\n' ' ')primary at revision $(rev primary)"
h_wait_until 60 "standby catches up after 5 kill -9" revs_equal
h_running drd || h_fail "drd exited: $(tail -n 3 "$DRD_LOG")"
same_data "after 5 kill -9"

# puts and deletes while drd is down
h_stop drd
for i in $(seq 1 20); do h_etcdctl primary put "/registry/secrets/down/s-$i" "secret $i" >/dev/null; done
for i in $(seq 1 5); do h_etcdctl primary del "/registry/namespaces/ns-$i" >/dev/null; done
h_etcdctl primary del --prefix /registry/events/w1/ >/dev/null
h_etcdctl primary put /registry/namespaces/ns-20 overwritten >/dev/null
h_run_drd 60 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
h_assert_eq "$rc" 0 "drd --until-caught-up after writes while down (stderr: $err)"
same_data "after writes while drd was down"

# a foreign write found at start: the standby was written to and the primary moved on by one key,
# so both are at the same revision with different contents. drd must call it a foreign write
# (exit 14), as it does when running; checked at the end, so the other cases run either way
h_etcdctl standby put /foreign x >/dev/null
h_etcdctl primary put /registry/namespaces/one-more x >/dev/null
h_assert_eq "$(rev standby)" "$(rev primary)" "revisions after the foreign write and one more primary key"
h_run_drd 60 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
fw_rc=$rc fw_err=$err fw_lines=$(wc -l <"$H_TMP/err")
h_log "foreign write at start: exit $rc: $err"

# a foreign write while drd runs (on a fresh standby2): the standby's revision moves on its own
seed standby2
h_run_drd 60 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY2_URL" --until-caught-up
h_assert_eq "$rc" 0 "drd on the fresh standby2 (stderr: $err)"
same_data "fresh standby2" standby2
h_bg drd2 h_drd --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY2_URL"
h_etcdctl primary put /registry/namespaces/live x >/dev/null
h_wait_until 60 "standby applies the live put" revs_equal standby2
h_etcdctl standby2 put /foreign-live x >/dev/null
# a running drd stays up in state alarm (monitoring keeps the target) and exits 14 on SIGTERM
h_wait_until 60 "drd notices the foreign write on the standby (alarm)" grep -q "alarm: " "$DRD2_LOG"
h_running drd2 || h_fail "drd exited on the alarm instead of staying up (log: $(cat "$DRD2_LOG"))"
kill -TERM "$DRD2_PID"
drc=0
h_wait_exit drd2 30 || drc=$?
h_assert_eq "$drc" 14 "exit status of a running drd after a foreign write, on SIGTERM (log: $(cat "$DRD2_LOG"))"
h_assert_eq "$(grep -c '^drd: ' "$DRD2_LOG")" 1 "one error line at exit after a foreign write (log: $(cat "$DRD2_LOG"))"
msg=$(grep '^drd: ' "$DRD2_LOG")
[[ "$msg" == *"foreign write"* || "$msg" == *ahead* ]] || h_fail "live foreign write: message names neither 'foreign write' nor 'ahead': $msg"
h_assert_contains "$msg" "drd replicate seed" "live foreign write: message names the reseed command"
h_log "live foreign write: $msg"

# compaction past the cursor: a fresh standby, replicated once, then drd is down while the primary
# writes 10 keys and compacts to its newest revision
seed standby3
h_run_drd 60 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY3_URL" --until-caught-up
h_assert_eq "$rc" 0 "drd on the fresh standby3 (stderr: $err)"
same_data "fresh standby3" standby3
for i in $(seq 1 10); do h_etcdctl primary put "/registry/configmaps/late/cm-$i" "v$i" >/dev/null; done
h_etcdctl primary compact "$(rev primary)" >/dev/null
h_run_drd 60 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY3_URL" --until-caught-up
h_log "compacted past the cursor: exit $rc: $err"
check_eq "$rc" 7 "exit status when the source compacted past the standby (stderr: $err)"
check_eq "$(wc -l <"$H_TMP/err")" 1 "lines on stderr after compaction past the cursor (stderr: $err)"
check_contains "$err" compacted "compaction alarm"
check_contains "$err" "drd replicate seed" "compaction alarm names the reseed command"
# and the same without --until-caught-up (the long-running form): in alarm until SIGTERM, then 7
h_bg drd3 h_drd --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY3_URL"
h_wait_until 60 "the long-running form in alarm after compaction" grep -q "alarm: " "$DRD3_LOG"
kill -TERM "$DRD3_PID"
d3=0
h_wait_exit drd3 30 || d3=$?
check_eq "$d3" 7 "exit status of the long-running form after compaction past the cursor, on SIGTERM ($(cat "$DRD3_LOG"))"
check_contains "$(cat "$DRD3_LOG")" "drd replicate seed" "compaction alarm of the long-running form names the reseed command"

# the foreign write found at start
check_eq "$fw_lines" 1 "lines on stderr after a foreign write (stderr: $fw_err)"
if [[ "$fw_err" != *"foreign write"* && "$fw_err" != *ahead* ]]; then
    check_eq "$fw_err" "...foreign write... or ...ahead..." "foreign write at start: message"
fi
check_contains "$fw_err" "drd replicate seed" "foreign write at start: message names the reseed command"
check_eq "$fw_rc" 14 "exit status after a foreign write on the standby found at start (stderr: $fw_err)"

((${#checks_failed[@]} == 0)) || h_fail "${#checks_failed[@]} alarm check(s) failed: $(printf '%s | ' "${checks_failed[@]}")"

h_log "took $((SECONDS - start))s"
h_pass
