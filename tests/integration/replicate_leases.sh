#!/usr/bin/env bash
# Leases. Exact mode: keys put with a lease on the primary arrive on the standby attached to a lease
# with the same ID and TTL; drd keeps that lease alive while the primary does (longer than the TTL);
# a revoke on the primary deletes the keys on the standby, and the standby's lease goes away soon
# after; the two stay revision-identical (`drd replicate verify` exits 0). Filtered mode: a leased
# key is copied, and deleted on the target after the source revokes its lease.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
start=$SECONDS

rev() { h_etcd_revision "$1"; } # a failed read never equals anything
revs_equal() { [[ "$(rev primary)" == "$(rev standby)" ]]; }
kvs() { h_etcdctl "$1" get --prefix / -w json | jq -c '[.kvs[]? | {key, value, create_revision, mod_revision, version, lease}]'; }
count() { h_etcdctl "$1" get --prefix "$2" --keys-only -w json | jq '.count // 0'; }
has_lease() { h_etcdctl "$1" lease list | grep -qx "$2"; }
no_lease() { ! h_etcdctl "$1" lease list | grep -qx "$2"; }
no_keys() { [[ "$(count "$1" "$2")" == 0 ]]; }
keys_are() { [[ "$(count "$1" "$2")" == "$3" ]]; }

same_data() {
    revs_equal || h_fail "$1: revisions differ: primary $(rev primary), standby $(rev standby)"
    h_run_drd 60 --log-level error replicate verify --source "$PRIMARY_URL" --target "$STANDBY_URL"
    h_assert_eq "$rc" 0 "$1: drd replicate verify (stderr: $err)"
    kvs primary >"$H_TMP/p.json"
    kvs standby >"$H_TMP/s.json"
    cmp -s "$H_TMP/p.json" "$H_TMP/s.json" ||
        h_fail "$1: get --prefix / differs: $(diff <(jq -c '.[]' "$H_TMP/p.json") <(jq -c '.[]' "$H_TMP/s.json") | head -n 5)"
}

grant() {  # TTL -> lease ID (hex, as etcdctl prints it) in $LEASE
    local out
    out=$(h_etcdctl primary lease grant "$1")
    [[ "$out" =~ ^lease\ ([0-9a-f]+)\ granted ]] || h_fail "unexpected lease grant output: $out"
    LEASE=${BASH_REMATCH[1]}
}

h_etcd_start primary "$H_TMP/primary"
h_etcdctl primary put /registry/namespaces/default '{"kind":"Namespace"}' >/dev/null
h_etcd_reserve standby
h_run_drd 60 --log-level error replicate seed --source "$PRIMARY_URL" --data-dir "$H_TMP/standby" --name standby \
    --initial-cluster "$STANDBY_INITIAL_CLUSTER" --initial-advertise-peer-urls "$STANDBY_PEER_URL"
h_assert_eq "$rc" 0 "drd replicate seed (stderr: $err)"
h_etcd_start standby "$H_TMP/standby"
h_bg drd h_drd replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL"

# ---- exact mode: a lease of 10 s with two keys, kept alive on the primary
grant 10
id=$LEASE
h_bg keepalive env ETCDCTL_API=3 etcdctl --endpoints "$PRIMARY_URL" lease keep-alive "$id"
h_etcdctl primary put --lease="$id" /registry/leases/kube-node-lease/node-1 '{"holder":"node-1"}' >/dev/null
h_etcdctl primary put --lease="$id" /registry/events/default/pod-1.started '{"reason":"Started"}' >/dev/null
h_etcdctl primary put /registry/configmaps/default/plain 'no lease' >/dev/null
h_wait_until 60 "standby applies the leased keys" revs_equal
h_running drd || h_fail "drd exited: $(tail -n 3 "$DRD_LOG")"
same_data "leased keys replicated"
has_lease standby "$id" || h_fail "lease $id not on the standby: $(h_etcdctl standby lease list | tr '\n' ' ')"
ttl=$(h_etcdctl standby lease timetolive "$id" --keys)
h_log "standby: $ttl"
h_assert_contains "$ttl" "granted with TTL(10s)" "standby lease has the primary's TTL"
h_assert_contains "$ttl" /registry/leases/kube-node-lease/node-1 "standby lease holds the first key"
h_assert_contains "$ttl" /registry/events/default/pod-1.started "standby lease holds the second key"
h_assert_eq "$(h_etcdctl standby get -w json /registry/leases/kube-node-lease/node-1 | jq -r '.kvs[0].lease | tostring')" \
    "$(h_etcdctl primary get -w json /registry/leases/kube-node-lease/node-1 | jq -r '.kvs[0].lease | tostring')" \
    "lease of the key on standby and primary"

# longer than the TTL: drd keeps the standby's lease alive while the primary holds it
sleep 15
h_running keepalive || h_fail "etcdctl lease keep-alive exited: $(tail -n 3 "$KEEPALIVE_LOG")"
h_running drd || h_fail "drd exited: $(tail -n 3 "$DRD_LOG")"
h_assert_eq "$(count standby /registry/leases/kube-node-lease/)" 1 "leased key on the standby after 15 s"
h_assert_eq "$(count standby /registry/events/default/)" 1 "second leased key on the standby after 15 s"
has_lease standby "$id" || h_fail "lease $id gone from the standby after 15 s while the primary keeps it alive"
same_data "after 15 s of keep-alive"

# revoke on the primary: the keys go on the standby (the revoke's delete revision), then the lease
h_stop keepalive
h_etcdctl primary lease revoke "$id" >/dev/null
h_assert_eq "$(count primary /registry/leases/)" 0 "leased key on the primary after revoke"
h_wait_until 60 "leased keys deleted on the standby" no_keys standby /registry/leases/
h_wait_until 60 "standby at the primary's revision after revoke" revs_equal
h_assert_eq "$(count standby /registry/events/)" 0 "second leased key on the standby after revoke"
h_assert_eq "$(count standby /registry/configmaps/)" 1 "unleased key on the standby after revoke"
h_wait_until 15 "lease $id revoked on the standby" no_lease standby "$id"
h_running drd || h_fail "drd exited: $(tail -n 3 "$DRD_LOG")"
same_data "after revoke"

# a lease that expires on the primary (no keep-alive): its keys go on the standby too
grant 3
h_etcdctl primary put --lease="$LEASE" /registry/events/default/short-lived x >/dev/null
h_wait_until 60 "short-lived key on the standby" keys_are standby /registry/events/default/short-lived 1
h_wait_until 60 "short-lived key expires on the primary and goes on the standby" no_keys standby /registry/events/default/short-lived
h_wait_until 60 "standby at the primary's revision after expiry" revs_equal
h_wait_until 15 "expired lease revoked on the standby" no_lease standby "$LEASE"
same_data "after expiry"
h_stop drd

# ---- filtered mode: a separate target with its own writers, name "lt"
h_etcd_start lt "$H_TMP/lt"
h_etcdctl lt put /own/key mine >/dev/null
h_bg drdf h_drd replicate etcd --mode filtered --name lt --prefix /leased/ --source "$PRIMARY_URL" --target "$LT_URL"
grant 10
fid=$LEASE
h_bg keepalive2 env ETCDCTL_API=3 etcdctl --endpoints "$PRIMARY_URL" lease keep-alive "$fid"
h_etcdctl primary put --lease="$fid" /leased/k 'with lease' >/dev/null
h_etcdctl primary put /leased/plain 'no lease' >/dev/null
h_wait_until 60 "filtered: leased key copied" keys_are lt /leased/ 2
h_assert_eq "$(h_etcdctl lt get --print-value-only /leased/k)" "with lease" "filtered: leased key value"
flease=$(h_etcdctl lt get -w json /leased/k | jq -r '.kvs[0].lease // 0 | tostring')
h_log "filtered: /leased/k on the target has lease $flease (source lease $fid)"
[[ "$flease" != 0 ]] || h_fail "filtered: /leased/k on the target has no lease"
sleep 12  # longer than the TTL: the target's key must survive while the source keeps its lease
h_assert_eq "$(count lt /leased/k)" 1 "filtered: leased key after 12 s of keep-alive"
h_stop keepalive2
h_etcdctl primary lease revoke "$fid" >/dev/null
h_wait_until 60 "filtered: leased key deleted after the source revoked its lease" no_keys lt /leased/k
h_assert_eq "$(h_etcdctl lt get --print-value-only /leased/plain)" "no lease" "filtered: unleased key kept"
h_assert_eq "$(h_etcdctl lt get --print-value-only /own/key)" mine "filtered: the target's own key kept"
h_running drdf || h_fail "filtered drd exited: $(tail -n 3 "$DRDF_LOG")"
h_stop drdf

h_log "took $((SECONDS - start))s"
h_pass
