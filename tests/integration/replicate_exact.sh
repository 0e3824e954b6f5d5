#!/usr/bin/env bash
# Exact mode end to end: a primary with ~5k Kubernetes-shaped keys, a standby seeded with
# `drd replicate seed`, then streaming of puts, overwrites, deletes, a multi-op txn and a 10k-key
# prefix delete (one revision with 10k events). The standby ends revision-identical: same store
# revision, `drd replicate verify` exits 0, and every key has the same value, create_revision,
# mod_revision and version. Last, a revision with more keys than the standby's --max-txn-ops stops
# drd with exit 8 and a one-line error naming max-txn-ops (never a silent split), and following the
# error's advice (raise it on the standby and in drd) lets it through.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir

# load SERVER KIND RESOURCE COUNT [NAMESPACES [PER_TXN]]: COUNT Kubernetes-shaped objects under
# /registry/RESOURCE/ns-I/, PER_TXN (default 100, below the standby's --max-txn-ops) puts per
# transaction, each transaction one revision. One curl through etcd's JSON gateway sends them all
# (an etcdctl per transaction costs ~0.1 s of process start).
load() {
    local url per=${6:-100}
    url=$(_h_get "$(_h_var "$1")_URL")
    jq -nr --arg url "$url" --arg kind "$2" --arg res "$3" --argjson count "$4" --argjson nns "${5:-10}" \
        --argjson per "$per" '
        def b: @base64;
        def pad: tostring | ("00000" + .)[-5:];
        ($res | rtrimstr("s")) as $one
        | [range(0; $count; $per) as $s
           | {success: [range($s; [$s + $per, $count] | min) as $i
               | ("ns-\($i % $nns)") as $ns
               | {requestPut: {
                   key: ("/registry/\($res)/\($ns)/\($one)-\($i | pad)" | b),
                   value: ({kind: $kind, apiVersion: "v1",
                            metadata: {name: "\($one)-\($i)", namespace: $ns, uid: "\($i)-\($s)-\($count)",
                                       labels: {app: "\($one)-\($i % 7)"}},
                            spec: {containers: [{name: "main", image: "registry.local/\($one):1.\($i % 5)"}]},
                            status: {phase: "Running"}} | tojson | b)}}]}
           | "url = \($url)/v3/kv/txn\ndata = \(tojson)"]
        | join("\nnext\n")' >"$H_TMP/load.curl"
    curl -sS --max-time 60 -K "$H_TMP/load.curl" >"$H_TMP/load.out" || h_fail "loading $3: curl failed"
    h_assert_eq "$(jq -s 'map(select(.succeeded == true)) | length' "$H_TMP/load.out")" $((($4 + per - 1) / per)) \
        "transactions loading $3 (last answer: $(tail -c 300 "$H_TMP/load.out"))"
}

rev() { h_etcd_revision "$1"; } # a failed read never equals anything
revs_equal() { [[ "$(rev primary)" == "$(rev standby)" ]]; }
# the revision in the last 'drd replicate seed' output ("seeded DIR at revision N")
seeded_rev() { sed -n 's/^seeded .* at revision \([0-9]*\)$/\1/p' "$H_TMP/out"; }
kvs() { h_etcdctl "$1" get --prefix / -w json | jq -c '[.kvs[]? | {key, value, create_revision, mod_revision, version, lease}]'; }

same_data() {
    revs_equal || h_fail "revisions differ: primary $(rev primary), standby $(rev standby)"
    h_run_drd 60 --log-level error replicate verify --source "$PRIMARY_URL" --target "$STANDBY_URL"
    h_assert_eq "$rc" 0 "drd replicate verify $1 (stderr: $err)"
    kvs primary >"$H_TMP/p.json"
    kvs standby >"$H_TMP/s.json"
    cmp -s "$H_TMP/p.json" "$H_TMP/s.json" ||
        h_fail "$1: get --prefix / differs: $(diff <(jq -c '.[]' "$H_TMP/p.json") <(jq -c '.[]' "$H_TMP/s.json") | head -n 5)"
}

# the primary accepts big transactions (for the max-txn-ops part); the standby keeps etcd's default
h_etcd_start primary "$H_TMP/primary" --max-txn-ops 1024

start=$SECONDS
load primary Namespace namespaces 10 10
load primary Pod pods 3000
load primary ConfigMap configmaps 1000
load primary Secret secrets 990
h_log "primary loaded: $(h_etcd_count primary /) keys at revision $(rev primary) in $((SECONDS - start))s"

# seed the standby from a snapshot of the primary and start it on that data dir
h_etcd_reserve standby
h_run_drd 60 replicate seed --source "$PRIMARY_URL" --data-dir "$H_TMP/standby" --name standby \
    --initial-cluster "$STANDBY_INITIAL_CLUSTER" --initial-advertise-peer-urls "$STANDBY_PEER_URL"
h_assert_eq "$rc" 0 "drd replicate seed (stderr: $err)"
h_log "seed: $(cat "$H_TMP/out")"
h_etcd_start standby "$H_TMP/standby"
revs_equal || h_fail "seeded standby at revision $(rev standby), primary at $(rev primary)"
# the revision seed reports (read from the database's index) is the one the standby started at
h_assert_eq "$(seeded_rev)" "$(rev standby)" "the revision drd replicate seed printed"

# writes between the seed and the first run: --until-caught-up applies them and exits 0
load primary Pod pods 50 3
h_etcdctl primary put /registry/namespaces/late "$(printf '{"kind":"Namespace","metadata":{"name":"late"}}')" >/dev/null
h_etcdctl primary del /registry/secrets/ns-0/secret-00000 >/dev/null
h_run_drd 60 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
h_assert_eq "$rc" 0 "drd replicate etcd --until-caught-up (stderr: $err)"
revs_equal || h_fail "after --until-caught-up: primary $(rev primary), standby $(rev standby)"
same_data "after the first catch-up"

# streaming: a background drd while the primary changes
h_bg drd h_drd replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL"
for i in $(seq 1 10); do  # new keys
    h_etcdctl primary put "/registry/deployments/ns-$((i % 3))/deploy-$i" "{\"kind\":\"Deployment\",\"n\":$i}" >/dev/null
done
for i in $(seq 1 10); do  # overwrites
    h_etcdctl primary put "/registry/pods/ns-$((i % 10))/pod-$(printf %05d $((i * 10 + i % 10)))" "{\"kind\":\"Pod\",\"gen\":2,\"i\":$i}" >/dev/null
done
for i in $(seq 1 5); do  # deletes
    h_etcdctl primary del "/registry/configmaps/ns-$((i % 10))/configmap-$(printf %05d $((i * 20 + i % 10)))" >/dev/null
done
h_etcdctl primary del /registry/namespaces/never-existed >/dev/null  # no revision
# a txn with several ops (compare, then puts and deletes in one revision)
printf '%s\n' 'mod("/registry/namespaces/late") > "0"' '' \
    'put /registry/leases/ns-1/lease-a "{\"holder\":\"a\"}"' \
    'del /registry/pods/ns-2/pod-00002' \
    'put /registry/pods/ns-3/pod-00003 "{\"kind\":\"Pod\",\"gen\":3}"' \
    'del /registry/secrets/ns-1 /registry/secrets/ns-2' \
    'put /registry/leases/ns-1/lease-b "{\"holder\":\"b\"}"' '' \
    'put /txn-failed x' '' >"$H_TMP/multi.txn"
out=$(h_etcdctl primary txn <"$H_TMP/multi.txn")
[[ "$(head -n 1 <<<"$out")" == SUCCESS ]] || h_fail "multi-op txn did not succeed: $out"
# 10k keys under one prefix (100 revisions of 100 puts), then one delete of all of them: one
# revision with 10k delete events
load primary Event events 10000 5
before=$(rev primary)
out=$(h_etcdctl primary del --prefix /registry/events/)
h_assert_eq "$out" 10000 "keys deleted by the prefix delete"
h_assert_eq "$(rev primary)" $((before + 1)) "the prefix delete is one revision"
h_etcdctl primary put /registry/namespaces/after-delete x >/dev/null

h_log "streaming writes done at $((SECONDS - start))s"
h_wait_until 60 "standby revision equals primary revision" revs_equal
h_log "standby caught up at $((SECONDS - start))s"
h_running drd || h_fail "background drd exited: $(tail -n 3 "$DRD_LOG")"
same_data "after streaming"
h_assert_eq "$(h_etcd_count standby /registry/events/)" 0 \
    "events left on the standby after the prefix delete"
h_assert_eq "$(h_etcdctl standby get --print-value-only /registry/pods/ns-3/pod-00003)" '{"kind":"Pod","gen":3}' \
    "value written by the multi-op txn"

# SIGTERM stops it cleanly (exit 0)
kill -TERM "$DRD_PID"
drc=0
h_wait_exit drd 30 || drc=$?
h_assert_eq "$drc" 0 "drd exit status after SIGTERM"

# churn on a few hot keys while drd is down, so that on restart the revisions are pipelined: a
# key created and deleted in two revisions and then one written (the order in which a guard on
# "the previous revision is applied" would hold too early), deletes and re-creates of the same key,
# the same key in consecutive revisions, a key shared by many revisions, and revisions whose
# first key was deleted later. Every revision must land exactly once and in place.
jq -nr --arg url "$PRIMARY_URL" '
    def b: @base64;
    def put(k; v): {requestPut: {key: (k | b), value: (v | b)}};
    def del(k): {requestDeleteRange: {key: (k | b)}};
    [range(0; 300) as $i | ("/hot/a-\($i)") as $a
     | [put($a; "v1")], [del($a)], [put("/hot/b-\($i % 3)"; "\($i)")], [put($a; "v2")],
       [put($a; "v3")], [put("/hot/c"; "\($i)"), del($a)]
     | "url = \($url)/v3/kv/txn\ndata = \({success: .} | tojson)"]
    | join("\nnext\n")' >"$H_TMP/churn.curl"
before=$(rev primary)
curl -sS --max-time 120 -K "$H_TMP/churn.curl" >"$H_TMP/churn.out" || h_fail "churn: curl failed"
h_assert_eq "$(rev primary)" $((before + 1800)) "the churn is 1800 revisions"
h_run_drd 120 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
h_assert_eq "$rc" 0 "drd after the churn (stderr: $err)"
same_data "after the churn on hot keys"

# a revision of 200 distinct keys (one txn on the primary) is more than the standby's default
# --max-txn-ops (128): drd stops with exit 8 and one line naming max-txn-ops, and applies nothing
load primary ConfigMap bigconfigmaps 200 1 200
before=$(rev standby)
h_assert_eq "$(rev primary)" $((before + 1)) "the 200-key txn is one revision"
for extra in "" "--max-txn-ops 256"; do
    # shellcheck disable=SC2086
    h_run_drd 60 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up $extra
    h_assert_eq "$rc" 8 "drd $extra on a 200-key revision: exit status (stderr: $err)"
    h_assert_eq "$(wc -l <"$H_TMP/err")" 1 "drd $extra on a 200-key revision: lines on stderr (stderr: $err)"
    h_assert_contains "$err" max-txn-ops "drd $extra on a 200-key revision: error"
    h_assert_eq "$(rev standby)" "$before" "standby revision after the refused 200-key revision ($extra)"
    h_assert_eq "$(h_etcd_count standby /registry/bigconfigmaps/)" 0 \
        "keys of the refused revision on the standby ($extra)"
done
h_log "max-txn-ops error: $err"
# follow the advice: restart the standby with a larger --max-txn-ops and tell drd
h_etcd_stop standby
h_etcd_start standby "$H_TMP/standby" --max-txn-ops 200
h_run_drd 60 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up --max-txn-ops 200
h_assert_eq "$rc" 0 "drd --max-txn-ops 200 after raising the standby's limit (stderr: $err)"
same_data "after the 200-key revision"

# a seed whose newest revision is a delete compacted away: the last key of the database is
# older than the revision etcd starts at (the compaction); seed reports the latter, and the
# standby started on it is at the primary's revision (--physical: the compaction has deleted the
# entries before the snapshot is taken; etcdctl snapshot status would say two revisions less)
h_etcdctl primary put /drd-seed-edge x >/dev/null
h_etcdctl primary del /drd-seed-edge >/dev/null
h_etcdctl primary compact --physical "$(rev primary)" >/dev/null
h_etcd_reserve standby2
h_run_drd 60 replicate seed --source "$PRIMARY_URL" --data-dir "$H_TMP/standby2" --name standby2 \
    --initial-cluster "$STANDBY2_INITIAL_CLUSTER" --initial-advertise-peer-urls "$STANDBY2_PEER_URL"
h_assert_eq "$rc" 0 "drd replicate seed after a compaction at a delete (stderr: $err)"
h_etcd_start standby2 "$H_TMP/standby2"
h_assert_eq "$(rev standby2)" "$(rev primary)" "standby seeded after a compaction at a delete: revision"
h_assert_eq "$(seeded_rev)" "$(rev primary)" "the revision seed printed after a compaction at a delete"

h_log "took $((SECONDS - start))s"
h_pass
