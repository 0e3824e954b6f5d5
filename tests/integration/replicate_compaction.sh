#!/usr/bin/env bash
# Filtered mode and compaction of the source:
#  (a) while drd is down: after a copy, drd stops, keys are written and deleted on the primary and
#      the primary is compacted (--physical) to its newest revision, past drd's cursor. The restart
#      (--until-caught-up) must resync by itself and the target must equal the source, including
#      the deletes made while drd was down.
#  (b) during the first copy: 50k keys on the primary; drd is paused (SIGSTOP) as its copy starts,
#      more keys are written and deleted and the primary is compacted to its newest revision, and
#      drd continues. drd pages at one source revision, so its next page fails as compacted and
#      it must start the copy again (the log says so), finish, and the target equal the source.
# The whole keyspace is replicated (no --prefix): the standby has no other writer.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir

# put_many SERVER RESOURCE COUNT [TAG]: COUNT Kubernetes-shaped objects (~230-byte values) under
# /registry/RESOURCE/NS/NAME, 128 per transaction through etcd's JSON gateway, 4 in flight
put_many() {
    local srv=$1 res=$2 count=$3 tag=${4:-v1} url
    url=$(_h_get "$(_h_var "$srv")_URL")
    jq -nr --argjson n "$count" --arg res "$res" --arg tag "$tag" --arg url "$url/v3/kv/txn" '
        ($res | rtrimstr("s")) as $kind |
        range(0; $n; 128) as $b |
        (if $b > 0 then "next\n" else "" end) +
        "url = \($url | tojson)\noutput = \"/dev/null\"\nfail\ndata-binary = " +
        ({success: [range($b; [$b + 128, $n] | min) as $i |
            "ns-\($i % 37)" as $ns |
            {requestPut: {
                key: ("/registry/\($res)/\($ns)/\($kind)-\($i)" | @base64),
                value: ({kind: $kind, apiVersion: "v1",
                         metadata: {name: "\($kind)-\($i)", namespace: $ns, uid: "uid-\($i)-\($tag)",
                                    labels: {app: "app-\($i % 13)", tag: $tag}},
                         spec: {containers: [{name: "main", image: "registry.local/app:\($tag)"}]}}
                        | tojson | @base64)}}]} | tojson | tojson)' >"$H_TMP/curl.cfg"
    # (curl prints a progress meter in parallel mode even with -s: keep stderr for failures only)
    curl -sS --parallel --parallel-max 4 -K "$H_TMP/curl.cfg" 2>"$H_TMP/curl.err" ||
        h_fail "loading $count $res failed: $(grep -v '^[-DL0-9 ]' "$H_TMP/curl.err" | head -n 3)"
}

rev() { h_etcd_revision "$1"; } # a failed read never equals anything
count() { h_etcdctl "$1" get --prefix "$2" --keys-only --limit 1 -w json | jq -r '.count // 0'; }
exists() { h_etcdctl "$1" get "$2" --keys-only -w json | jq -r '.count // 0'; } # 1 or 0
exists_is() { [[ "$(exists "$1" "$2")" == "$3" ]]; } # SERVER KEY 0|1 (for h_wait_until)

# dump SERVER: "key<TAB>base64(value)" for every key except drd's cursors, in key order
dump() {
    h_etcdctl "$1" get --prefix "" -w json |
        jq -r '.kvs[]? | (.key | @base64d) as $k | select($k | startswith("/drd/replicate/") | not) |
               "\($k)\t\(.value // "")"'
}

# assert_same DESC: the standby holds exactly the primary's keys and values
assert_same() {
    dump primary >"$H_TMP/p"
    dump standby >"$H_TMP/s"
    cmp -s "$H_TMP/p" "$H_TMP/s" ||
        h_fail "$1: standby differs from the primary ($(wc -l <"$H_TMP/p") vs $(wc -l <"$H_TMP/s") keys): $(diff "$H_TMP/p" "$H_TMP/s" | head -n 6 | cut -c1-120)"
}

compact_now() {  # SERVER: compact to the newest revision, physically; prints that revision
    local r
    r=$(rev "$1")
    h_etcdctl "$1" compact "$r" --physical >/dev/null
    printf '%s' "$r"
}

# ---- (a) compaction while drd is down ----
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
A=(--source "$PRIMARY_URL" --target "$STANDBY_URL" --mode filtered --name down)

put_many primary pods 3000
put_many primary configmaps 1000
# a key with an empty value (etcdctl put would read the value from stdin): the resync below finds
# it on both sides and compares the two empty values
curl -sS --fail -o /dev/null -d "{\"key\":\"$(printf /registry/leases/kube-node-lease/node-1 | base64 -w0)\"}" \
    "$PRIMARY_URL/v3/kv/put" || h_fail "put of an empty value"
h_run_drd 90 replicate etcd "${A[@]}" --until-caught-up
h_assert_eq "$rc" 0 "first copy exit status (stderr: $(tail -n 3 <<<"$err"))"
assert_same "after the first copy"

# stream for a moment, then stop cleanly
h_bg drd h_drd replicate etcd "${A[@]}"
h_etcdctl primary put /registry/pods/ns-1/streamed '{"kind":"Pod"}' >/dev/null
h_wait_until 60 "streamed put on the standby" exists_is standby /registry/pods/ns-1/streamed 1
h_stop drd
h_assert_eq "$DRD_STATUS" 0 "drd exit status after SIGTERM"
cursor=$(h_etcdctl standby get --print-value-only /drd/replicate/down/revision)

# while down: puts, an overwrite, deletes (single keys and a prefix), a key put and deleted again
put_many primary secrets 500
h_etcdctl primary put /registry/pods/ns-2/pod-2 '{"kind":"Pod","overwritten":"while down"}' >/dev/null
h_etcdctl primary del /registry/pods/ns-1/pod-1 >/dev/null
h_etcdctl primary del /registry/pods/ns-1/streamed >/dev/null
h_etcdctl primary del --prefix /registry/configmaps/ns-5/ >/dev/null
h_etcdctl primary put /registry/pods/ns-3/short-lived x >/dev/null
h_etcdctl primary del /registry/pods/ns-3/short-lived >/dev/null
compacted=$(compact_now primary)
((compacted > cursor)) || h_fail "compaction at $compacted is not past the cursor $cursor"
h_log "cursor $cursor, primary compacted at $compacted"

h_run_drd 90 replicate etcd "${A[@]}" --until-caught-up
h_assert_eq "$rc" 0 "restart after the compaction exit status (stderr: $(tail -n 3 <<<"$err"))"
h_assert_contains "$err" resync "log of the restart after the compaction"
h_log "restart: $(grep -m 1 -i 'compacted' <<<"$err" || true)"
assert_same "after the restart past a compaction"
h_assert_eq "$(exists standby /registry/pods/ns-1/pod-1)" 0 "key deleted while down"
h_assert_eq "$(exists standby /registry/pods/ns-1/streamed)" 0 "streamed key deleted while down"
h_assert_eq "$(count standby /registry/configmaps/ns-5/)" 0 "prefix deleted while down"
h_assert_eq "$(exists standby /registry/pods/ns-3/short-lived)" 0 "key put and deleted while down"
h_assert_eq "$(count standby /registry/secrets/)" 500 "keys written while down"
h_assert_eq "$(exists standby /registry/leases/kube-node-lease/node-1)" 1 "key with an empty value"
h_assert_eq "$(h_etcdctl standby get --print-value-only /drd/replicate/down/revision)" "$(rev primary)" \
    "cursor after the resync"

# and it streams on from there
h_bg drd h_drd replicate etcd "${A[@]}"
h_etcdctl primary put /registry/pods/ns-4/after-resync '{"kind":"Pod"}' >/dev/null
h_etcdctl primary del /registry/pods/ns-4/pod-4 >/dev/null
h_wait_until 60 "delete after the resync on the standby" exists_is standby /registry/pods/ns-4/pod-4 0
h_wait_until 60 "put after the resync on the standby" exists_is standby /registry/pods/ns-4/after-resync 1
h_stop drd
assert_same "streaming after the resync"
h_etcd_stop primary
h_etcd_stop standby

# ---- (b) compaction during the first copy ----
h_etcd_start primary2 "$H_TMP/primary2"
h_etcd_start standby2 "$H_TMP/standby2"
B=(--source "$PRIMARY2_URL" --target "$STANDBY2_URL" --mode filtered --name during)

t0=$SECONDS
put_many primary2 pods 30000
put_many primary2 configmaps 20000
h_assert_eq "$(count primary2 /registry/)" 50000 "keys loaded"
h_log "loaded 50000 keys in $((SECONDS - t0))s"

# drd streams (no --until-caught-up: that would stop at the revision it started at, before the
# changes made during the copy)
t0=$SECONDS
h_bg drd h_drd replicate etcd "${B[@]}"
h_wait_until 60 "the first copy starts" grep -q 'resync of' "$DRD_LOG"
# pause drd mid-copy (SIGSTOP), so that the changes and the compaction land during the copy
# whatever the machine's speed; drd's next page read at the copy's revision must then fail as
# compacted and the copy start again
kill -STOP "$DRD_PID"
h_on_exit 'kill -CONT "$DRD_PID" 2>/dev/null || true'
! grep -q 'resync done' "$DRD_LOG" || h_fail "the first copy finished before drd could be paused"
h_etcdctl primary2 put /registry/pods/ns-1/during-copy '{"kind":"Pod"}' >/dev/null
h_etcdctl primary2 del /registry/pods/ns-2/pod-2 >/dev/null
h_etcdctl primary2 del --prefix /registry/configmaps/ns-9/ >/dev/null
h_etcdctl primary2 put /registry/configmaps/ns-3/configmap-3 '{"kind":"ConfigMap","overwritten":"during copy"}' >/dev/null
compacted=$(compact_now primary2)
kill -CONT "$DRD_PID"
h_log "compacted the primary at revision $compacted while drd was paused in its first copy"
cursor_is() { [[ "$(h_etcdctl standby2 get --print-value-only /drd/replicate/during/revision)" == "$1" ]]; }
h_wait_until 90 "cursor reaches the primary's revision $compacted" cursor_is "$compacted"
h_log "first copy and catch-up done in $((SECONDS - t0))s"
h_running drd || h_fail "drd exited: $(tail -n 3 "$DRD_LOG")"
h_stop drd
h_assert_eq "$DRD_STATUS" 0 "drd exit status after SIGTERM"
grep -q 'compacted during the resync' "$DRD_LOG" ||
    h_fail "the compaction during the copy did not make it start again (log: $(grep -E 'resync|compact' "$DRD_LOG" | tr '\n' ' '))"

# the target must equal the source, whichever way it went
dump primary2 >"$H_TMP/p"
dump standby2 >"$H_TMP/s"
cmp -s "$H_TMP/p" "$H_TMP/s" ||
    h_fail "after a compaction during the first copy: standby differs ($(wc -l <"$H_TMP/p") vs $(wc -l <"$H_TMP/s") keys): $(diff "$H_TMP/p" "$H_TMP/s" | head -n 6 | cut -c1-120)"
h_assert_eq "$(exists standby2 /registry/pods/ns-1/during-copy)" 1 "put during the copy"
h_assert_eq "$(exists standby2 /registry/pods/ns-2/pod-2)" 0 "delete during the copy"
h_assert_eq "$(count standby2 /registry/configmaps/ns-9/)" 0 "prefix delete during the copy"
cursor=$(h_etcdctl standby2 get --print-value-only /drd/replicate/during/revision)
((cursor >= compacted)) || h_fail "cursor $cursor is below the compaction at $compacted"

h_pass
