#!/usr/bin/env bash
# Fencing epochs: a side that a newer epoch record names as not the primary refuses to write.
#  - replication (exact and filtered) from a source when either side's /drd/epoch names the
#    target: exit 20 (DR_ESTALE), the message naming both epochs; nothing is written;
#  - snapshot save and snapshot follow of an etcd the store's drd-epoch object (or its own key)
#    names as not the primary: exit 20, nothing stored; the named primary may write;
#  - a garbled or planted record: refused as such (never read as "no epoch"); in a store with a
#    keyring an unauthenticated record is refused (DR_EAUTH).
# The records are written here with etcdctl and by hand, as a runbook run elsewhere would have.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
cid() { # NAME: the cluster ID in hex
    h_etcdctl "$1" endpoint status -w json |
        python3 -c 'import json,sys; print("%x" % json.load(sys.stdin)[0]["Status"]["header"]["cluster_id"])'
}
PCID=$(cid primary)
SCID=$(cid standby)
[[ "$PCID" != "$SCID" ]] || h_fail "primary and standby share a cluster ID"
record() { # EPOCH NAME CID
    printf '{"epoch":%s,"primary":"%s","cluster_id":"%s","revision":7,"time_ms":1764670000000,"run":"test-%s"}' \
        "$1" "$2" "$3" "$1"
}
for i in 1 2 3; do h_etcdctl primary put /registry/pods/p$i v$i >/dev/null; done

# epoch 0 everywhere: replication runs (filtered), the epoch key is never copied
h_run_drd 60 replicate etcd --mode filtered --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
h_assert_eq "$rc" 0 "replication with no epoch: $err"

# epoch 2 on the standby names the standby: the primary is stale
h_etcdctl standby put /drd/epoch "$(record 2 standby "$SCID")" >/dev/null
h_etcdctl primary put /registry/pods/p4 v4 >/dev/null
h_run_drd 60 replicate etcd --mode filtered --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
h_assert_eq "$rc" 20 "replication from a stale primary: $err"
h_assert_eq "$(wc -l <<<"$err")" 2 "one line and a hint: $err"
h_assert_contains "$err" "refusing to replicate: the source 127.0.0.1:$PRIMARY_CLIENT_PORT (cluster $PCID) is not the primary: epoch 2 (primary standby, cluster $SCID, run test-2); the source 127.0.0.1:$PRIMARY_CLIENT_PORT holds epoch 0 (none recorded)" "message names both epochs"
h_assert_eq "$(h_etcdctl standby get --print-value-only /registry/pods/p4)" "" "nothing replicated"
# the same when the record is on the source itself (exact mode reads it there: the drain of a
# switchover writes it on the old primary first)
h_etcdctl primary put /drd/epoch "$(record 3 standby "$SCID")" >/dev/null
h_run_drd 60 replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
h_assert_eq "$rc" 20 "exact replication from a stale primary: $err"
h_assert_contains "$err" "is not the primary: epoch 3 (primary standby" "exact: newest epoch named"
h_assert_contains "$err" "holds epoch 3" "exact: the source's own record"
# a record naming the source lets it replicate again; the epoch key stays each side's own
h_etcdctl primary put /drd/epoch "$(record 4 primary "$PCID")" >/dev/null
h_run_drd 60 replicate etcd --mode filtered --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
h_assert_eq "$rc" 0 "replication from the primary of epoch 4: $err"
h_assert_eq "$(h_etcdctl standby get --print-value-only /registry/pods/p4)" v4 "replicated"
h_assert_contains "$(h_etcdctl standby get --print-value-only /drd/epoch)" '"epoch":2' "the standby's record is its own"
# a garbled record is an error, never "no epoch"
h_etcdctl standby put /drd/epoch 'not json' >/dev/null
h_run_drd 60 replicate etcd --mode filtered --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
h_assert_eq "$rc" 16 "garbled record: $err"
h_assert_contains "$err" "key /drd/epoch: epoch record" "garbled record named"
h_etcdctl standby del /drd/epoch >/dev/null

# snapshots: the store's record names the standby: the primary may not write into it
mkdir -p "$H_TMP/store"
STORE="file://$H_TMP/store"
mkdir -p "$H_TMP/store/drd-epoch"
record 5 standby "$SCID" >"$H_TMP/store/drd-epoch/00000000000000000005"
h_run_drd 60 snapshot save --etcd "$PRIMARY_URL" --store "$STORE" --no-encryption --catalog "$H_TMP/cat.db"
h_assert_eq "$rc" 20 "snapshot save from a stale primary: $err"
h_assert_contains "$err" "refusing to write snapshots into $STORE: etcd 127.0.0.1:$PRIMARY_CLIENT_PORT (cluster $PCID) is not the primary: epoch 5 (primary standby, cluster $SCID, run test-5); etcd 127.0.0.1:$PRIMARY_CLIENT_PORT holds epoch 4" "snapshot message"
h_run_drd 60 snapshot follow --etcd "$PRIMARY_URL" --store "$STORE" --no-encryption --catalog "$H_TMP/cat.db" --until-revision 1
h_assert_eq "$rc" 20 "snapshot follow from a stale primary: $err"
h_assert_eq "$(find "$H_TMP/store" -type f | grep -vc drd-epoch/ || true)" 0 "nothing stored"
# the named primary (the standby) may
h_run_drd 60 snapshot save --etcd "$STANDBY_URL" --store "$STORE" --no-encryption --catalog "$H_TMP/cat.db"
h_assert_eq "$rc" 0 "snapshot save from the primary of epoch 5: $err"

# with a keyring, a record without its MAC (planted, or written without the key) is refused
h_run_drd 10 key generate --out "$H_TMP/keys" --name k1
mkdir -p "$H_TMP/store2/drd-epoch"
record 1 primary "$PCID" >"$H_TMP/store2/drd-epoch/00000000000000000001"
h_run_drd 60 snapshot save --etcd "$PRIMARY_URL" --store "file://$H_TMP/store2" --key-file "$H_TMP/keys" --catalog "$H_TMP/cat2.db"
h_assert_eq "$rc" 10 "unauthenticated record: $err"
h_assert_contains "$err" "object drd-epoch/00000000000000000001 is not authenticated under this keyring" "unauthenticated record named"
h_pass
