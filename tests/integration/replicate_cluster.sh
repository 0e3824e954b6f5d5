#!/usr/bin/env bash
# Three-member clusters on both sides, as production runs them: a 3-member primary and a 3-member
# standby seeded in one command (`drd replicate seed --members-dir`, one snapshot for all three),
# exact and then filtered mode under a steady writer: kill -9 the member drd reads from, then the
# leader (each restarted after), and stop the whole standby for 30 s. drd carries on by itself
# through the endpoint lists (its PID never changes), nothing lost or applied twice: exact ends
# with the same revision and HashKV on both sides (`drd replicate verify`), filtered with the same
# keys and values under the prefix. Also `snapshot save`, `snapshot follow` and `restore` (of a
# snapshot and of a revision through the segments) against the 3-member primary.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
STANDBY_PAUSE=${STANDBY_PAUSE:-30}
h_etcd_cluster p 3 "$H_TMP"
h_log "primary: $P_ENDPOINTS"
for ((i = 0; i < 50; i++)); do h_etcdctl p-1 put "/registry/pods/p-$i" "v$i" >/dev/null; done

# the standby: ports first, then one seed for all three members, then the cluster on those dirs
for i in 1 2 3; do h_etcd_reserve "s-$i"; done
S_IC="s-1=$S_1_PEER_URL,s-2=$S_2_PEER_URL,s-3=$S_3_PEER_URL"
h_run_drd 120 replicate seed --source "$P_ENDPOINTS" --members-dir "$H_TMP/sdirs" --initial-cluster "$S_IC"
h_assert_eq "$rc" 0 "seed all three standby members (stderr: $err)"
for i in 1 2 3; do [[ -d "$H_TMP/sdirs/s-$i/member" ]] || h_fail "no member dir for s-$i"; done
h_etcd_cluster s 3 "$H_TMP/sdirs"
h_assert_eq "$(h_etcd_revision s-2)" "$(h_etcd_revision p-1)" "seeded standby at the primary's revision"

h_free_port LISTEN_PORT
LISTEN=127.0.0.1:$LISTEN_PORT
metric() { curl -sS --max-time 5 "http://$LISTEN/metrics" | awk -v m="drd_replicate_$1{" 'index($0, m) == 1 { print $2 }'; }
caught_up() { [[ "$(metric applied_revision)" == "$(h_etcd_revision p-1)" ]]; }
restart() { h_etcd_start "$1" "$2" --heartbeat-interval 200 --election-timeout 2000; }
writer() { # /registry/w/<n>, one etcdctl put each, any member, until told to stop
    local n=0
    while [[ ! -e "$H_TMP/stop-writer" ]]; do
        ETCDCTL_API=3 etcdctl --endpoints "$P_ENDPOINTS" --command-timeout=5s put "/registry/w/$1-$n" "$n" \
            >/dev/null 2>&1 && echo "$n" >>"$H_TMP/written-$1"
        n=$((n + 1))
        sleep 0.05
    done
}

scenario() { # MODE DEST-PREFIX [drd flags]
    local mode=$1 dest=$2 drdpid leader
    shift 2
    rm -f "$H_TMP/stop-writer"
    h_bg "drd-$mode" h_drd replicate etcd --source "$P_ENDPOINTS" --target "$S_ENDPOINTS" --mode "$mode" \
        --name "c$mode" --status-listen "$LISTEN" "$@"
    drdpid=$(_h_get "DRD_${mode^^}_PID")
    h_wait_until 60 "$mode: caught up" caught_up
    writer "$mode" &
    local wpid=$!
    sleep 3
    h_log "$mode: kill -9 p-1 (the member drd reads from first)"
    h_kill9 p-1
    sleep 5
    restart p-1 "$H_TMP/p-1"
    leader=$(h_etcd_leader p 3) || h_fail "no leader in the primary"
    h_log "$mode: kill -9 the leader $leader"
    h_kill9 "$leader"
    sleep 5
    restart "$leader" "$H_TMP/$leader"
    h_log "$mode: the whole standby stopped for ${STANDBY_PAUSE}s"
    for i in 1 2 3; do h_stop "s-$i"; done
    sleep "$STANDBY_PAUSE"
    for i in 1 2 3; do H_ETCD_NOWAIT=1 restart "s-$i" "$H_TMP/sdirs/s-$i"; done
    for i in 1 2 3; do _h_etcd_wait "s-$i"; done
    sleep 3
    touch "$H_TMP/stop-writer"
    wait "$wpid" || true
    h_log "$mode: writer stopped after $(wc -l <"$H_TMP/written-$mode") acknowledged puts"
    h_wait_until 120 "$mode: caught up after the faults" caught_up
    kill -0 "$drdpid" 2>/dev/null || h_fail "$mode: drd exited during the faults"
    h_assert_eq "$(_h_get "DRD_${mode^^}_PID")" "$drdpid" "$mode: the same drd process throughout"
    h_log "$mode: reconnects $(metric reconnects_total), applied $(metric applied_revision)"
    # every acknowledged put is on the standby
    local missing=0 n
    while read -r n; do
        [[ -n "$(h_etcdctl s-1 get "${dest}w/$mode-$n" --print-value-only)" ]] || missing=$((missing + 1))
    done <"$H_TMP/written-$mode"
    h_assert_eq "$missing" 0 "$mode: acknowledged puts missing on the standby"
    h_stop "drd-$mode"
}

h_log "exact mode"
scenario exact /registry/
h_run_drd 60 replicate verify --source "$P_ENDPOINTS" --target "$S_ENDPOINTS"
h_assert_eq "$rc" 0 "exact: same revision and HashKV on both clusters (stdout: $out stderr: $err)"

h_log "filtered mode (into the same standby, under /registry/ rewritten to /copy/)"
scenario filtered /copy/ --prefix /registry/ --dest-prefix /copy/
p_keys=$(h_etcdctl p-2 get /registry/ --prefix -w json | jq -c '[.kvs[] | {k: (.key | @base64d | sub("^/registry/"; "")), v: .value}]')
s_keys=$(h_etcdctl s-3 get /copy/ --prefix -w json | jq -c '[.kvs[] | {k: (.key | @base64d | sub("^/copy/"; "")), v: .value}]')
[[ "$p_keys" == "$s_keys" ]] || h_fail "filtered: /copy/ on the standby differs from /registry/ on the primary"

h_log "snapshot save and restore against the 3-member primary"
h_run_drd 10 key generate --out "$H_TMP/keys"
mkdir -p "$H_TMP/store"
h_run_drd 120 snapshot save --etcd "$P_ENDPOINTS" --store "file://$H_TMP/store" --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "snapshot save from the cluster (stderr: $err)"
h_kill9 p-1
h_run_drd 120 snapshot save --etcd "$P_ENDPOINTS" --store "file://$H_TMP/store" --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "snapshot save with the first endpoint down (stderr: $err)"
h_etcd_reserve r1
h_run_drd 120 restore --snapshot latest --store "file://$H_TMP/store" --key-file "$H_TMP/keys" \
    --data-dir "$H_TMP/r1" --name r1 --initial-cluster "$R1_INITIAL_CLUSTER" \
    --initial-advertise-peer-urls "$R1_PEER_URL"
h_assert_eq "$rc" 0 "restore (stderr: $err)"
h_etcd_start_existing r1 "$H_TMP/r1" "$R1_CLIENT_PORT" "$R1_PEER_PORT"
h_assert_eq "$(h_etcd_count r1 /registry/)" "$(h_etcd_count p-2 /registry/)" "restored keys"
# segments from the cluster with its first endpoint down, then a point-in-time restore through them
for i in $(seq 1 10); do h_etcdctl p-2 put "/registry/after-save/k$i" "v$i" >/dev/null; done
FINAL=$(h_etcd_revision p-2)
h_run_drd 120 --log-level error snapshot follow --etcd "$P_ENDPOINTS" --store "file://$H_TMP/store" \
    --key-file "$H_TMP/keys" --segment-period 300ms --until-revision "$FINAL"
h_assert_eq "$rc" 0 "snapshot follow from the cluster with p-1 down (stderr: $err)"
h_etcd_reserve r2
h_run_drd 120 restore --revision "$FINAL" --store "file://$H_TMP/store" --key-file "$H_TMP/keys" \
    --data-dir "$H_TMP/r2" --name r2 --initial-cluster "$R2_INITIAL_CLUSTER" \
    --initial-advertise-peer-urls "$R2_PEER_URL"
h_assert_eq "$rc" 0 "restore through the cluster's segments (stderr: $err)"
h_etcd_start_existing r2 "$H_TMP/r2" "$R2_CLIENT_PORT" "$R2_PEER_PORT"
h_assert_eq "$(h_etcd_revision r2)" "$FINAL" "restored at the followed revision"
h_assert_eq "$(h_etcdctl r2 get /registry/after-save/k10 --print-value-only)" v10 "the segments' keys"
h_stop r2
h_pass
