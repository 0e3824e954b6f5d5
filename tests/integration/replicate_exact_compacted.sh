#!/usr/bin/env bash
# Exact mode on a standby whose revision is the compact revision. etcd's HashKV refuses a revision
# equal to the compact revision ("compacted") although a Range there still answers, and two
# ordinary paths lead there:
#  (a) a primary compacted at its newest revision, then seeded: the standby starts at exactly
#      that revision. 20k keys, compact, seed, 3k more revisions, --until-caught-up must exit 0
#      with the standby revision-identical, and `drd replicate verify` must agree.
#  (b) drd restarted on an idle primary whose compaction it has already mirrored (and once more
#      on the same state): again exit 0.
# The check must stay meaningful: (c) a standby at the compact revision that holds other data
# (an unrelated etcd with as many revisions) is refused as not seeded, naming the key, and verify
# says they differ.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
LOAD=${TESTBIN:-$H_REPO/build/testbin}/../bench/etcd-load
[[ -x "$LOAD" ]] || h_fail "etcd-load not found at '$LOAD' (build the etcd-load target)"

rev() { h_etcd_revision "$1"; }
# put PREFIX COUNT: COUNT single-key puts (one revision each) on the primary
put() {
    "$LOAD" put --endpoints "$PRIMARY_URL" --prefix "$1" --count "$2" --value-size 200 \
        --inflight 32 >/dev/null || h_fail "etcd-load put $1"
}
caught_up() {  # DESC: --until-caught-up exits 0 and the standby is revision-identical
    h_run_drd 120 replicate etcd "${R[@]}" --until-caught-up
    h_assert_eq "$rc" 0 "$1: drd replicate etcd --until-caught-up exit status (stderr: $(tail -n 3 <<<"$err"))"
    h_assert_eq "$(rev standby)" "$(rev primary)" "$1: standby revision"
    h_run_drd 60 replicate verify --source "$PRIMARY_URL" --target "$STANDBY_URL"
    h_assert_eq "$rc" 0 "$1: drd replicate verify exit status (stderr: $err)"
}

# ---- (a) seeded at the compact revision ----
h_etcd_start primary "$H_TMP/primary"
put /registry/pods/ 20000
compacted=$(rev primary)
h_etcdctl primary compact "$compacted" --physical >/dev/null || h_fail "compact the primary"
h_log "primary: 20000 keys, compacted at its revision $compacted"

h_etcd_reserve standby
R=(--source "$PRIMARY_URL" --target "$STANDBY_URL" --mode exact)
h_run_drd 60 replicate seed --source "$PRIMARY_URL" --data-dir "$H_TMP/standby" --name standby \
    --initial-cluster "$STANDBY_INITIAL_CLUSTER" --initial-advertise-peer-urls "$STANDBY_PEER_URL"
h_assert_eq "$rc" 0 "drd replicate seed (stderr: $err)"
h_etcd_start standby "$H_TMP/standby"
h_assert_eq "$(rev standby)" "$compacted" "seeded standby revision"

put /registry/configmaps/ 3000
caught_up "seeded at the compact revision"

# ---- (b) restart on an idle primary whose compaction drd mirrored ----
h_etcdctl primary compact "$(rev primary)" --physical >/dev/null || h_fail "compact the primary again"
caught_up "first restart after compacting the idle primary" # mirrors the compaction
caught_up "second restart on the same idle, compacted state"

# ---- (c) the same check refuses a standby with other data at that revision ----
# Two unrelated etcds at the same revision, each compacted there: the same 100 puts, then one
# key written with a different value on each side.
h_etcd_stop standby
h_etcd_stop primary
h_etcd_start primary "$H_TMP/primary-c"
h_etcd_start standby "$H_TMP/standby-c"
"$LOAD" put --endpoints "$PRIMARY_URL" --prefix /registry/pods/ --count 100 >/dev/null || h_fail "load the primary"
"$LOAD" put --endpoints "$STANDBY_URL" --prefix /registry/pods/ --count 100 >/dev/null || h_fail "load the standby"
h_etcdctl primary put /registry/configmaps/ns-1/cm-1 primary-value >/dev/null
h_etcdctl standby put /registry/configmaps/ns-1/cm-1 standby-value >/dev/null
h_assert_eq "$(rev standby)" "$(rev primary)" "the two unrelated etcds' revisions"
h_etcdctl primary compact "$(rev primary)" --physical >/dev/null || h_fail "compact the primary"
h_etcdctl standby compact "$(rev standby)" --physical >/dev/null || h_fail "compact the standby"
h_run_drd 60 replicate etcd "${R[@]}" --until-caught-up
h_assert_eq "$rc" 15 "exit status on a standby with other data at the compact revision (stderr: $(tail -n 3 <<<"$err"))"
h_assert_contains "$err" "/registry/configmaps/ns-1/cm-1" "the refusal names the differing key"
h_assert_contains "$err" "reseed" "the refusal says what to do"
h_log "refusal: $(tail -n 1 <<<"$err" | cut -c1-200)"
h_run_drd 60 replicate verify --source "$PRIMARY_URL" --target "$STANDBY_URL"
h_assert_eq "$rc" 14 "verify on a standby with other data at the compact revision (stderr: $err)"
h_assert_contains "$err" "/registry/configmaps/ns-1/cm-1" "verify names the differing key"
h_pass
