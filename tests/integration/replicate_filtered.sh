#!/usr/bin/env bash
# Filtered mode end to end on a real primary/standby pair:
#  (a) the first copy of 20k Kubernetes-shaped keys (--until-caught-up) matches
#      `etcdctl get --prefix /registry` byte for byte;
#  (b) streaming (drd in the background with --status-listen): puts, deletes, an overwrite and a
#      10k-key prefix delete (one source revision with 10k events, more than --max-txn-ops) reach
#      the standby; /metrics shows the applied revision reaching the primary's, /healthz is 200,
#      SIGTERM stops drd cleanly;
#  (c) --prefix/--exclude/--dest-prefix under a second name copies only what was selected,
#      rewritten, and leaves the other writers' keys on the standby alone (outside the dest prefix,
#      and the excluded part inside it);
#  (d) `drd replicate verify` exits 0 and `drd replicate status --json` reports no lag.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir

# put_many SERVER RESOURCE COUNT [TAG]: COUNT Kubernetes-shaped objects (~230-byte JSON values)
# under /registry/RESOURCE/NS/NAME, 128 per transaction, sent through etcd's JSON gateway by one
# curl with 4 transfers in flight (20k keys in about 2 s; etcdctl per key or per txn is far
# slower). Every 10th object is in kube-system, the rest in ns-0..ns-36.
put_many() {
    local srv=$1 res=$2 count=$3 tag=${4:-v1} url
    url=$(_h_get "$(_h_var "$srv")_URL")
    jq -nr --argjson n "$count" --arg res "$res" --arg tag "$tag" --arg url "$url/v3/kv/txn" '
        ($res | rtrimstr("s")) as $kind |
        range(0; $n; 128) as $b |
        (if $b > 0 then "next\n" else "" end) +
        "url = \($url | tojson)\noutput = \"/dev/null\"\nfail\ndata-binary = " +
        ({success: [range($b; [$b + 128, $n] | min) as $i |
            (if $i % 10 == 0 then "kube-system" else "ns-\($i % 37)" end) as $ns |
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

# dump SERVER PREFIX: "key<TAB>base64(value)" per key under PREFIX, in key order
dump() {
    h_etcdctl "$1" get --prefix "$2" -w json | jq -r '.kvs[]? | "\(.key | @base64d)\t\(.value // "")"'
}

# same PREFIX: primary and standby hold the same keys and values under PREFIX
same() {
    dump primary "$1" >"$H_TMP/same.p" && dump standby "$1" >"$H_TMP/same.s" &&
        cmp -s "$H_TMP/same.p" "$H_TMP/same.s"
}

# assert_same PREFIX DESC: same, also as plain `etcdctl get --prefix` output, or fail with a diff
assert_same() {
    if ! same "$1"; then
        h_fail "$2: primary and standby differ under $1 ($(wc -l <"$H_TMP/same.p") vs $(wc -l <"$H_TMP/same.s") keys): $(diff "$H_TMP/same.p" "$H_TMP/same.s" | head -n 6 | cut -c1-120)"
    fi
    h_etcdctl primary get --prefix "$1" >"$H_TMP/plain.p"
    h_etcdctl standby get --prefix "$1" >"$H_TMP/plain.s"
    cmp -s "$H_TMP/plain.p" "$H_TMP/plain.s" || h_fail "$2: 'etcdctl get --prefix $1' output differs"
}

cursor() { h_etcdctl standby get --print-value-only "/drd/replicate/$1/revision"; }
metric() { curl -sS --max-time 5 "http://$LISTEN/metrics" | awk -v m="drd_replicate_$1{" 'index($0, m) == 1 { print $2 }'; }
http_code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$LISTEN$1"; }
applied_is() { [[ "$(metric applied_revision)" == "$1" ]]; }
healthz_ok() { [[ "$(http_code /healthz)" == 200 ]]; }

h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
SRC=(--source "$PRIMARY_URL" --target "$STANDBY_URL")

# ---- (a) first copy of 20k keys ----
t0=$SECONDS
put_many primary pods 10000
put_many primary configmaps 6000
put_many primary secrets 4000
h_assert_eq "$(count primary /registry/)" 20000 "keys loaded on the primary"
h_log "loaded 20000 keys in $((SECONDS - t0))s, primary at revision $(rev primary)"

t0=$SECONDS
h_run_drd 90 replicate etcd "${SRC[@]}" --mode filtered --name reg --prefix /registry/ --until-caught-up
h_assert_eq "$rc" 0 "first copy exit status (stderr: $(tail -n 3 <<<"$err"))"
h_log "first copy of 20k keys: $((SECONDS - t0))s; $out"
h_assert_contains "$out" "caught up at revision" "first copy reports catch-up"
assert_same /registry/ "first copy"
h_assert_eq "$(count standby /registry/)" 20000 "keys on the standby after the first copy"
h_assert_eq "$(cursor reg)" "$(rev primary)" "cursor after the first copy"

# ---- (b) streaming ----
h_free_port LISTEN_PORT # (not "port": h_free_port has a local of that name)
LISTEN=127.0.0.1:$LISTEN_PORT
h_bg drd h_drd replicate etcd "${SRC[@]}" --mode filtered --name reg --prefix /registry/ --status-listen "$LISTEN"
h_wait_until 60 "drd serves /healthz" healthz_ok
h_wait_until 60 "drd streaming (applied = primary revision $(rev primary))" applied_is "$(rev primary)"

h_etcdctl primary put /registry/namespaces/new-ns '{"kind":"Namespace","metadata":{"name":"new-ns"}}' >/dev/null
h_etcdctl primary put /registry/pods/ns-1/pod-1 '{"kind":"Pod","overwritten":true}' >/dev/null
# an empty value (etcdctl put would read the value from stdin)
curl -sS --fail -o /dev/null -d "{\"key\":\"$(printf /registry/leases/kube-node-lease/node-1 | base64 -w0)\"}" \
    "$PRIMARY_URL/v3/kv/put" || h_fail "put of an empty value"
h_assert_eq "$(count primary /registry/leases/)" 1 "key with an empty value on the primary"
h_etcdctl primary del /registry/secrets/ns-3/secret-3 >/dev/null
h_etcdctl primary del /registry/configmaps/kube-system/configmap-10 >/dev/null
h_etcdctl primary put /registry/namespaces/short-lived x >/dev/null
h_etcdctl primary del /registry/namespaces/short-lived >/dev/null
h_etcdctl primary txn <<'EOF' >/dev/null

put /registry/services/ns-1/svc-a "{\"kind\":\"Service\"}"
put /registry/services/ns-1/svc-b "{\"kind\":\"Service\"}"
del /registry/secrets/ns-4/secret-4


EOF
h_wait_until 60 "applied revision reaches the primary's $(rev primary)" applied_is "$(rev primary)"
h_wait_until 60 "puts and deletes on the standby" same /registry/
h_assert_eq "$(h_etcdctl standby get --print-value-only /registry/pods/ns-1/pod-1)" \
    '{"kind":"Pod","overwritten":true}' "overwrite on the standby"
h_assert_eq "$(exists standby /registry/secrets/ns-3/secret-3)" 0 "deleted key gone from the standby"
h_assert_eq "$(count standby /registry/leases/)" 1 "key with an empty value on the standby"

# the prefix delete: all 10k pods in one revision (far more than the target's --max-txn-ops 128)
deleted=$(h_etcdctl primary del --prefix /registry/pods/)
h_assert_eq "$deleted" 10000 "pods deleted on the primary"
h_etcdctl primary put /registry/pods/ns-2/after-delete '{"kind":"Pod"}' >/dev/null
t0=$SECONDS
h_wait_until 60 "10k-key prefix delete applied (primary at revision $(rev primary))" applied_is "$(rev primary)"
h_wait_until 60 "10k-key prefix delete on the standby" same /registry/
h_log "10k-key prefix delete applied within $((SECONDS - t0))s"
h_assert_eq "$(count standby /registry/pods/)" 1 "pods on the standby after the prefix delete"
assert_same /registry/ "after streaming"

r=$(rev primary)
h_wait_until 60 "/metrics applied_revision = primary revision $r" applied_is "$r"
h_assert_eq "$(metric source_revision)" "$r" "/metrics source_revision"
h_assert_eq "$(metric lag_revisions)" 0 "/metrics lag_revisions"
h_assert_eq "$(metric up)" 1 "/metrics up"
h_assert_eq "$(http_code /healthz)" 200 "/healthz"
h_assert_eq "$(cursor reg)" "$r" "cursor while streaming"
h_stop drd
h_assert_eq "$DRD_STATUS" 0 "drd exit status after SIGTERM"

# ---- (c) --prefix, --exclude, --dest-prefix ----
# other writers on the standby: outside the dest prefix, next to it, and in its excluded part
h_etcdctl standby put /app/settings '{"owner":"another writer"}' >/dev/null
h_etcdctl standby put /copy/cmx 'next to the dest prefix' >/dev/null
h_etcdctl standby put /copy/secret/x 'another copy' >/dev/null
h_etcdctl standby put /copy/cm/kube-system/local 'excluded part of the dest prefix' >/dev/null
# and a stale key inside the dest prefix, which the first sync must delete (the source lacks it)
h_etcdctl standby put /copy/cm/ns-1/stale 'stale' >/dev/null
# other_keys: every key on the standby that the 'cm' replication must leave alone
other_keys() { dump standby /app/; dump standby /copy/cmx; dump standby /copy/secret/; dump standby /copy/cm/kube-system/; }
other_keys >"$H_TMP/other.before"
h_assert_eq "$(wc -l <"$H_TMP/other.before")" 4 "other writers' keys on the standby"
dump standby /registry/ >"$H_TMP/registry.before"

CM=(--mode filtered --name cm --prefix /registry/configmaps/ --exclude /registry/configmaps/kube-system/
    --dest-prefix /copy/cm/)

# expected_cm: the primary's selected configmaps, rewritten to /copy/cm/
expected_cm() {
    dump primary /registry/configmaps/ | grep -v '^/registry/configmaps/kube-system/' |
        sed 's|^/registry/configmaps/|/copy/cm/|' || true
}
cm_arrived() {
    expected_cm >"$H_TMP/cm.want"
    dump standby /copy/cm/ | grep -v '^/copy/cm/kube-system/' >"$H_TMP/cm.got" || true
    cmp -s "$H_TMP/cm.want" "$H_TMP/cm.got"
}
other_untouched() {
    other_keys >"$H_TMP/other.after"
    cmp -s "$H_TMP/other.before" "$H_TMP/other.after" ||
        h_fail "$1: other writers' keys changed: $(diff "$H_TMP/other.before" "$H_TMP/other.after" | head -n 6)"
}

h_run_drd 90 replicate etcd "${SRC[@]}" "${CM[@]}" --until-caught-up
h_assert_eq "$rc" 0 "filtered copy with --dest-prefix exit status (stderr: $(tail -n 3 <<<"$err"))"
cm_arrived || h_fail "/copy/cm/ on the standby differs from the selected configmaps: $(diff "$H_TMP/cm.want" "$H_TMP/cm.got" | head -n 6 | cut -c1-120)"
h_assert_eq "$(wc -l <"$H_TMP/cm.got")" 5400 "configmaps copied (6000 minus 600 in kube-system)"
h_assert_eq "$(exists standby /copy/cm/ns-1/stale)" 0 "stale key in the dest prefix deleted by the first sync"
h_assert_eq "$(count standby /copy/cm/kube-system/)" 1 "excluded configmaps not copied"
h_assert_eq "$(count standby /copy/cm/)" 5401 "keys under /copy/cm/ (with the other writer's)"
other_untouched "after the first sync"
dump standby /registry/ >"$H_TMP/registry.after"
cmp -s "$H_TMP/registry.before" "$H_TMP/registry.after" || h_fail "the 'cm' replication touched /registry/ on the standby"

# changes inside and outside the selection, applied by resuming from the cursor (the watch path)
h_etcdctl primary put /registry/configmaps/ns-5/new-cm '{"kind":"ConfigMap","new":true}' >/dev/null
h_etcdctl primary put /registry/configmaps/ns-6/configmap-6 '{"kind":"ConfigMap","overwritten":true}' >/dev/null
h_etcdctl primary del /registry/configmaps/ns-7/configmap-7 >/dev/null
h_etcdctl primary put /registry/configmaps/kube-system/new-excluded 'excluded' >/dev/null
h_etcdctl primary put /registry/configmapsx/ns-1/lookalike 'not under the prefix' >/dev/null
h_etcdctl primary put /registry/secrets/ns-5/new-secret 'not selected' >/dev/null
h_etcdctl primary del --prefix /registry/configmaps/ns-8/ >/dev/null
h_run_drd 90 replicate etcd "${SRC[@]}" "${CM[@]}" --until-caught-up
h_assert_eq "$rc" 0 "resumed filtered copy with --dest-prefix exit status (stderr: $(tail -n 3 <<<"$err"))"
cm_arrived || h_fail "/copy/cm/ after resuming differs: $(diff "$H_TMP/cm.want" "$H_TMP/cm.got" | head -n 6 | cut -c1-120)"
h_assert_eq "$(h_etcdctl standby get --print-value-only /copy/cm/ns-5/new-cm)" \
    '{"kind":"ConfigMap","new":true}' "new configmap copied"
h_assert_eq "$(h_etcdctl standby get --print-value-only /copy/cm/ns-6/configmap-6)" \
    '{"kind":"ConfigMap","overwritten":true}' "overwritten configmap copied"
h_assert_eq "$(exists standby /copy/cm/ns-7/configmap-7)" 0 "deleted configmap deleted"
h_assert_eq "$(count standby /copy/cm/ns-8/)" 0 "prefix-deleted configmaps deleted"
h_assert_eq "$(count standby /copy/cm/kube-system/)" 1 "excluded configmap not copied"
h_assert_eq "$(count standby /copy/cmx)" 1 "lookalike prefix not copied (only the other writer's key)"
h_assert_eq "$(count standby /copy/secret)" 1 "secrets not copied"
other_untouched "after resuming"
dump standby /registry/ >"$H_TMP/registry.after"
cmp -s "$H_TMP/registry.before" "$H_TMP/registry.after" || h_fail "the 'cm' replication touched /registry/ on the standby"

# ---- (d) verify and status ----
h_run_drd 90 replicate etcd "${SRC[@]}" --mode filtered --name reg --prefix /registry/ --until-caught-up
h_assert_eq "$rc" 0 "catch-up of 'reg' exit status (stderr: $(tail -n 3 <<<"$err"))"
assert_same /registry/ "after catch-up of 'reg'"
r=$(rev primary)

h_run_drd 60 replicate verify "${SRC[@]}" --mode filtered --name reg --prefix /registry/
h_assert_eq "$rc" 0 "verify 'reg' exit status (stdout: $out, stderr: $err)"
h_assert_contains "$out" "ok:" "verify 'reg' output"
h_run_drd 60 replicate verify "${SRC[@]}" "${CM[@]}"
h_assert_eq "$rc" 0 "verify 'cm' exit status (stdout: $out, stderr: $err)"

for name in reg cm; do
    h_run_drd 30 replicate status "${SRC[@]}" --mode filtered --name "$name" --json
    h_assert_eq "$rc" 0 "status '$name' exit status (stderr: $err)"
    h_log "status $name: $out"
    h_assert_eq "$(jq -r .source_revision <<<"$out")" "$r" "status '$name' source_revision"
    h_assert_eq "$(jq -r .applied_revision <<<"$out")" "$r" "status '$name' applied_revision"
    h_assert_eq "$(jq -r .lag_revisions <<<"$out")" 0 "status '$name' lag_revisions"
    h_assert_eq "$(jq -r .state <<<"$out")" in-sync "status '$name' state"
done

# verify notices a difference: a changed replicated key on the standby
h_etcdctl standby put /registry/secrets/ns-1/secret-1 tampered >/dev/null
h_run_drd 60 replicate verify "${SRC[@]}" --mode filtered --name reg --prefix /registry/
((rc != 0)) || h_fail "verify exited 0 although the standby's /registry/secrets/ns-1/secret-1 differs"

h_pass
