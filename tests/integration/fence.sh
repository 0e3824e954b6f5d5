#!/usr/bin/env bash
# The fence (drd fence on|off|status): etcd's CORRUPT alarm raised for the whole cluster refuses
# every write path (put, delete, txn with a put, delete-only txn as Kubernetes' guarded deletes,
# lease grant, lease revoke, compaction) while reads answer; it survives a restart of etcd; `off`
# lifts it and every write path works again. Also against a 3-member cluster (the alarm raised
# through one member fences the writes sent to every member). Each write is tried through etcdctl,
# an independent client, and its refusal checked by its message.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
h_etcd_start primary "$H_TMP/primary"
h_etcd_cluster east 3 "$H_TMP/east"
cat >"$H_TMP/drd.yaml" <<YAML
state_dir: $H_TMP/state
clusters:
  primary: { endpoints: [$PRIMARY_URL] }
  east: { endpoints: "$EAST_ENDPOINTS" }
  standby: { endpoints: [http://127.0.0.1:1] }
replicate:
  - { name: r, source: primary, target: standby }
YAML
cfg=$H_TMP/drd.yaml

# ctl NAME args: etcdctl against a server (or the 3-member cluster through its member URL)
ctl() {
    local url=$1
    shift
    ETCDCTL_API=3 etcdctl --endpoints "$url" --command-timeout=5s "$@"
}

# every_write URL: try each write path; prints one line "path: ok|refused|other: msg" each
every_write() {
    local url=$1 out lease
    try() {
        local name=$1
        shift
        if out=$("$@" 2>&1); then
            echo "$name: ok"
        elif [[ "$out" == *"corrupt cluster"* ]]; then
            echo "$name: refused"
        else
            echo "$name: other: $out"
        fi
    }
    try put ctl "$url" put /fence/put v
    try delete ctl "$url" del /fence/victim
    try txn-put ctl "$url" txn <<<$'\nput /fence/txn v\n\n'
    try txn-delete-only ctl "$url" txn <<<$'mod("/fence/guard") > "0"\n\ndel /fence/guard\n\n'
    try lease-grant ctl "$url" lease grant 60
    try lease-revoke ctl "$url" lease revoke "$LEASE"
    try compact ctl "$url" compaction "$(h_etcd_revision_url "$url")"
}
h_etcd_revision_url() {
    ctl "$1" endpoint status -w json | grep -o '"revision":[0-9]*' | cut -d: -f2
}

check_cluster() { # NAME URL
    local name=$1 url=$2 res
    ctl "$url" put /fence/victim x >/dev/null
    ctl "$url" put /fence/guard x >/dev/null
    ctl "$url" put /fence/read hello >/dev/null
    LEASE=$(ctl "$url" lease grant 600 | awk '{print $2}')
    h_run_drd 30 fence on --config "$cfg" --cluster "$name"
    h_assert_eq "$rc" 0 "fence on $name: $err"
    h_assert_contains "$out" "$name: FENCED (CORRUPT (member 0: whole cluster))" "status after on"
    res=$(every_write "$url")
    h_log "$name fenced: $(tr '\n' ';' <<<"$res")"
    for p in put delete txn-put txn-delete-only lease-grant lease-revoke compact; do
        h_assert_contains "$res" "$p: refused" "write path $p on fenced $name"
    done
    h_assert_eq "$(ctl "$url" get --print-value-only /fence/read)" hello "reads on fenced $name"
    h_assert_eq "$(ctl "$url" get --print-value-only /fence/victim)" x "delete refused"
    h_assert_eq "$(ctl "$url" get --print-value-only /fence/put)" "" "put refused"
}

check_cluster primary "$PRIMARY_URL"

# drd's own write path names the fence: exit 19 (DR_EFENCED)
h_run_drd 60 replicate etcd --mode filtered --source "$EAST_ENDPOINTS" --target "$PRIMARY_URL" --until-caught-up
h_assert_eq "$rc" 19 "replicate into a fenced target exits DR_EFENCED ($err)"
h_assert_contains "$err" "the cluster is fenced" "its message"

# the fence survives a restart of etcd
h_etcd_stop primary
H_ETCD_FENCED=1 h_etcd_start primary "$H_TMP/primary"
h_run_drd 30 fence status --config "$cfg" --cluster primary
h_assert_contains "$out" "primary: FENCED" "fence after a restart"
res=$(every_write "$PRIMARY_URL")
h_assert_contains "$res" "put: refused" "put refused after a restart"

# off lifts it: every write path applies again
h_run_drd 30 fence off --config "$cfg" --cluster primary
h_assert_eq "$rc" 0 "fence off: $err"
h_assert_contains "$out" "primary: not fenced (no alarm)" "status after off"
res=$(every_write "$PRIMARY_URL")
h_log "primary unfenced: $(tr '\n' ';' <<<"$res")"
for p in put delete txn-put txn-delete-only lease-grant lease-revoke compact; do
    h_assert_contains "$res" "$p: ok" "write path $p after off"
done

# a 3-member cluster: raised through the config's endpoint list, every member refuses
check_cluster east "${EAST_ENDPOINTS%%,*}"
for url in ${EAST_ENDPOINTS//,/ }; do
    res=$(ctl "$url" put /fence/m v 2>&1 || true)
    h_assert_contains "$res" "corrupt cluster" "put through member $url"
done
h_run_drd 30 fence off --config "$cfg" --cluster east
h_assert_eq "$rc" 0 "fence off east: $err"
ctl "${EAST_ENDPOINTS##*,}" put /fence/m v >/dev/null || h_fail "east writable after off"

# bad input: one line, exit 2
h_run_drd 30 fence sideways --config "$cfg" --cluster primary
h_assert_eq "$rc" 2 "bad action"
h_run_drd 30 fence on --config "$cfg" --cluster nowhere
h_assert_eq "$rc" 2 "unknown cluster"
h_assert_contains "$err" "no cluster 'nowhere' (clusters: primary, east, standby)" "unknown cluster message"
h_pass
