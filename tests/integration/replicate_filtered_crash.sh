#!/usr/bin/env bash
# Filtered mode under kill -9: a writer keeps putting and deleting keys on the primary for about
# 20 s while drd is killed with SIGKILL five times at random moments (the first time possibly in
# the middle of its first copy) and restarted each time. Then drd is stopped cleanly, keys are
# deleted and written while it is down, and a restart with --until-caught-up must bring the
# standby to exactly the primary's keys and values, with the cursor at (or past) the primary's
# revision when the writer stopped, without a resync (the cursor is kept, nothing was compacted).
#
# No revision may be lost or applied twice. Lost: the standby would lack a put or keep a deleted
# key. Twice: the writer puts every /registry/seq/ key exactly once (never rewrites it), so each
# of them has version 1 on the primary, and a re-applied put would give it version 2 on the
# standby; a re-applied put of a key deleted later would bring it back. Every writer revision has
# at most 3 events, far below --max-txn-ops (a revision too large for one transaction is applied in
# chunks, and a crash between chunks re-puts some of its keys, by design).
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
drd=$(h_drd_path)

rev() { h_etcd_revision "$1"; } # a failed read never equals anything
count() { h_etcdctl "$1" get --prefix "$2" --keys-only --limit 1 -w json | jq -r '.count // 0'; }

# dump SERVER PREFIX: "key<TAB>base64(value)" per key under PREFIX, in key order
dump() {
    h_etcdctl "$1" get --prefix "$2" -w json | jq -r '.kvs[]? | "\(.key | @base64d)\t\(.value // "")"'
}

b64() { printf '%s' "$1" | base64 -w0; }

h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
FILTER=(--source "$PRIMARY_URL" --target "$STANDBY_URL" --mode filtered --name crash --prefix /registry/)

# 5000 Kubernetes-shaped keys to copy first, 128 per transaction through etcd's JSON gateway
jq -nr --arg url "$PRIMARY_URL/v3/kv/txn" '
    range(0; 5000; 128) as $b |
    (if $b > 0 then "next\n" else "" end) +
    "url = \($url | tojson)\noutput = \"/dev/null\"\nfail\ndata-binary = " +
    ({success: [range($b; [$b + 128, 5000] | min) as $i |
        {requestPut: {key: ("/registry/pods/ns-\($i % 37)/pod-\($i)" | @base64),
                      value: ({kind: "Pod", metadata: {name: "pod-\($i)", namespace: "ns-\($i % 37)"},
                               spec: {containers: [{name: "main", image: "registry.local/app:\($i)"}]}}
                              | tojson | @base64)}}]} | tojson | tojson)' >"$H_TMP/load.cfg"
# (curl prints a progress meter in parallel mode even with -s: keep stderr for failures only)
curl -sS --parallel --parallel-max 4 -K "$H_TMP/load.cfg" 2>"$H_TMP/load.err" || h_fail "loading failed"
h_assert_eq "$(count primary /registry/pods/)" 5000 "pods loaded"

# The writer: one curl, one request at a time, at most 160 per second, through the JSON gateway
# (at least 20 s; etcd's fsync keeps it near 150 per second here). Operation i (0..WRITES-1): i%8==3
# puts 3 keys in one transaction (seq key i and two siblings), i%8==7 deletes the seq key of
# operation i-5, every other i puts seq key i. Keys are never rewritten. Final state: 8 keys per 8
# operations, WRITES keys under /registry/seq/.
WRITES=3200
jq -nr --argjson n "$WRITES" --arg url "$PRIMARY_URL/v3/kv" '
    def k($i): "/registry/seq/\($i | tostring | ("0" * (8 - length)) + .)";
    def put($key; $i): {key: ($key | @base64), value: ("{\"seq\":\($i),\"pad\":\"\("x" * 64)\"}" | @base64)};
    range(0; $n) as $i |
    (if $i > 0 then "next\n" else "" end) +
    "output = \"/dev/null\"\nfail\n" +
    (if $i % 8 == 3 then
        "url = \("\($url)/txn" | tojson)\ndata-binary = " +
        ({success: [put(k($i); $i), put(k($i) + "-a"; $i), put(k($i) + "-b"; $i) | {requestPut: .}]} | tojson | tojson)
     elif $i % 8 == 7 then
        "url = \("\($url)/deleterange" | tojson)\ndata-binary = " + ({key: (k($i - 5) | @base64)} | tojson | tojson)
     else
        "url = \("\($url)/put" | tojson)\ndata-binary = " + (put(k($i); $i) | tojson | tojson)
     end)' >"$H_TMP/writer.cfg"

h_bg writer curl -sS --rate 160/s -K "$H_TMP/writer.cfg"
t0=$SECONDS

# five kill -9 at random moments, 0.3 to 2 s after each start
for ((k = 1; k <= 5; k++)); do
    h_bg drd h_drd replicate etcd "${FILTER[@]}"
    ms=$((300 + RANDOM % 1701))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
    h_running drd || h_fail "drd exited before kill $k: $(tail -n 3 "$DRD_LOG")"
    h_kill9 drd
    c=$(h_etcdctl standby get --print-value-only /drd/replicate/crash/revision)
    h_log "kill -9 #$k after ${ms} ms: cursor ${c:-none}, primary at $(rev primary)"
done
h_running writer || h_fail "the writer finished before the kills (it should run about 20 s)"

# streaming again for a moment, then a clean stop
h_bg drd h_drd replicate etcd "${FILTER[@]}"
sleep 2
h_stop drd
h_assert_eq "$DRD_STATUS" 0 "drd exit status after SIGTERM"
h_log "stopped drd cleanly at cursor $(h_etcdctl standby get --print-value-only /drd/replicate/crash/revision)"

# while drd is down: deletes (one key, a prefix of ~135 keys) and puts (new keys, an overwrite)
h_etcdctl primary del /registry/pods/ns-0/pod-0 >/dev/null
h_etcdctl primary del --prefix /registry/pods/ns-1/ >/dev/null
h_etcdctl primary put /registry/pods/ns-2/pod-2 '{"kind":"Pod","overwritten":"while down"}' >/dev/null
h_etcdctl primary put /registry/configmaps/ns-1/made-while-down '{"kind":"ConfigMap"}' >/dev/null
h_etcdctl primary put /outside/prefix 'not replicated' >/dev/null

rc=0
h_wait_exit writer 120 || rc=$?
h_assert_eq "$rc" 0 "writer exit status (log: $(tail -n 3 "$WRITER_LOG"))"
writer_rev=$(rev primary)
h_log "writer done after $((SECONDS - t0))s, primary at revision $writer_rev"
h_assert_eq "$(count primary /registry/seq/)" "$WRITES" "keys the writer left on the primary"

# and one more change after the writer stopped, still while drd is down
h_etcdctl primary del /registry/pods/ns-3/pod-3 >/dev/null
final_rev=$(rev primary)

t0=$SECONDS
rc=0
timeout 90 "$drd" replicate etcd "${FILTER[@]}" --until-caught-up >"$H_TMP/out" 2>"$H_TMP/err" || rc=$?
h_assert_eq "$rc" 0 "restart with --until-caught-up (stderr: $(tail -n 3 "$H_TMP/err"))"
h_log "caught up in $((SECONDS - t0))s: $(cat "$H_TMP/out")"
if grep -q 'resync' "$H_TMP/err"; then
    h_fail "the restart resynced although the cursor was kept and nothing was compacted: $(grep resync "$H_TMP/err" | head -n 2)"
fi

# target equals source under the prefix
dump primary /registry/ >"$H_TMP/p"
dump standby /registry/ >"$H_TMP/s"
cmp -s "$H_TMP/p" "$H_TMP/s" ||
    h_fail "standby differs from the primary under /registry/ ($(wc -l <"$H_TMP/p") vs $(wc -l <"$H_TMP/s") keys): $(diff "$H_TMP/p" "$H_TMP/s" | head -n 6 | cut -c1-120)"
h_assert_eq "$(count standby /registry/pods/ns-1/)" 0 "prefix deleted while down"
h_assert_eq "$(count standby /registry/pods/ns-0/pod-0)" 0 "key deleted while down"
h_assert_eq "$(h_etcdctl standby get --print-value-only /registry/pods/ns-2/pod-2)" \
    '{"kind":"Pod","overwritten":"while down"}' "key overwritten while down"
h_assert_eq "$(count standby /outside/)" 0 "keys outside --prefix"

# the cursor
cursor=$(h_etcdctl standby get --print-value-only /drd/replicate/crash/revision)
((cursor >= writer_rev)) || h_fail "cursor $cursor is below the primary's revision $writer_rev when the writer stopped"
h_assert_eq "$cursor" "$final_rev" "cursor after catching up"

# nothing applied twice: every writer key has version 1 on the standby (and on the primary)
h_etcdctl primary get --prefix /registry/seq/ -w json | jq -r '[.kvs[] | select(.version != 1)] | length' >"$H_TMP/pv"
h_assert_eq "$(cat "$H_TMP/pv")" 0 "writer keys with version != 1 on the primary"
h_etcdctl standby get --prefix /registry/seq/ -w json |
    jq -r '.kvs[] | select(.version != 1) | "\(.key | @base64d) version \(.version)"' >"$H_TMP/sv"
[[ ! -s "$H_TMP/sv" ]] ||
    h_fail "$(wc -l <"$H_TMP/sv") writer keys applied more than once on the standby: $(head -n 3 "$H_TMP/sv" | tr '\n' ' ')"

h_pass
