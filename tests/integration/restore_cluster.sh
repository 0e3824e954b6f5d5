#!/usr/bin/env bash
# A restore that lays out all three members of a new cluster in one command (`drd restore
# --members-dir DIR --initial-cluster a=..,b=..,c=..`), from a full snapshot plus replayed
# segments: the three etcds start as one cluster at the asked revision with every key as the
# source had it then; a fourth dir of the same name that is not empty is refused before anything
# is written; and `drd replicate seed --members-dir` refuses a bad --initial-cluster.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
export ETCDCTL_API=3
S="file://$H_TMP/store"
mkdir -p "$H_TMP/store"
h_etcd_start primary "$H_TMP/primary"
h_run_drd 10 key generate --out "$H_TMP/keys"
for i in $(seq 1 40); do h_etcdctl primary put "/registry/pods/p-$i" "v1-$i" >/dev/null; done
h_run_drd 60 snapshot save --etcd "$PRIMARY_URL" --store "$S" --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "snapshot save (stderr: $err)"
h_bg follow h_drd --log-level warn snapshot follow --etcd "$PRIMARY_URL" --store "$S" \
    --key-file "$H_TMP/keys" --segment-period 300ms
for i in $(seq 1 20); do h_etcdctl primary put "/registry/pods/p-$i" "v2-$i" >/dev/null; done
for i in $(seq 30 35); do h_etcdctl primary del "/registry/pods/p-$i" >/dev/null; done
TARGET=$(h_etcd_revision primary)
h_etcdctl primary get /registry/ --prefix -w json | jq -c '[.kvs[] | {key, value}]' >"$H_TMP/want"
for i in $(seq 1 10); do h_etcdctl primary put "/registry/later/l-$i" x >/dev/null; done
h_run_drd 120 --log-level error snapshot follow --etcd "$PRIMARY_URL" --store "$S" \
    --key-file "$H_TMP/keys" --segment-period 300ms --until-revision "$(h_etcd_revision primary)"
h_stop follow

for i in 1 2 3; do h_etcd_reserve "n-$i"; done
IC="n-1=$N_1_PEER_URL,n-2=$N_2_PEER_URL,n-3=$N_3_PEER_URL"
mkdir -p "$H_TMP/members/n-2" && echo x >"$H_TMP/members/n-2/stray"
h_run_drd 120 restore --revision "$TARGET" --store "$S" --key-file "$H_TMP/keys" \
    --members-dir "$H_TMP/members" --initial-cluster "$IC"
((rc != 0)) || h_fail "restore over a non-empty member dir succeeded"
h_assert_contains "$err" "not empty" "the non-empty member dir is named"
[[ ! -e "$H_TMP/members/n-1" ]] || h_fail "a refused restore left n-1"
rm -rf "$H_TMP/members/n-2"

h_run_drd 180 restore --revision "$TARGET" --store "$S" --key-file "$H_TMP/keys" \
    --members-dir "$H_TMP/members" --initial-cluster "$IC"
h_assert_eq "$rc" 0 "restore of three members (stderr: $err)"
h_assert_contains "$err" "replayed" "segments replayed"
ls "$H_TMP/members" >&2
h_etcd_cluster n 3 "$H_TMP/members"
h_assert_eq "$(h_etcdctl n-1 member list | grep -c started)" 3 "three started members"
for i in 1 2 3; do
    h_assert_eq "$(h_etcd_revision "n-$i")" "$TARGET" "n-$i at the asked revision"
done
h_assert_eq "$(h_etcdctl n-3 get /registry/ --prefix -w json | jq -c '[.kvs[] | {key, value}]')" \
    "$(cat "$H_TMP/want")" "every key and value as the source had them at $TARGET"
h_etcdctl n-2 put /after-restore ok >/dev/null
h_assert_eq "$(h_etcdctl n-1 get /after-restore --print-value-only)" ok "the new cluster takes writes"

h_run_drd 30 replicate seed --source "$PRIMARY_URL" --members-dir "$H_TMP/seeded" --initial-cluster "garbage"
h_assert_eq "$rc" 2 "seed with a bad --initial-cluster (stderr: $err)"
h_pass
