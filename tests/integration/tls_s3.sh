#!/usr/bin/env bash
# TLS as users run it: `drd snapshot save`, `verify` and `drd restore` with etcd over https (client
# certs) and the store on Ceph RGW over https (--s3-cacert); the restored etcd has the data. Then
# the refusals, each a non-zero exit with one line on stderr naming the endpoint: the S3 endpoint
# checked against a CA that did not sign its certificate, against the system's CAs, and serving a
# certificate for another name (RGW_OTHER_NAME_ENDPOINT, DNS:other.example only); the same for
# etcd: a server certificate for another name, and the wrong CA. A refused save stores nothing.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/rgw.sh"

h_tmpdir
h_rgw_use
[[ -n "${RGW_OTHER_NAME_ENDPOINT:-}" ]] || h_fail "the RGW instance has no RGW_OTHER_NAME_ENDPOINT (old fixture?)"
certs=$H_TMP/certs
h_certs "$certs"
P="tls-$$-$RANDOM"
STORE="s3://$RGW_BUCKET/$P"
S3_TLS=(--s3-endpoint "$RGW_TLS_ENDPOINT" --s3-cacert "$RGW_CACERT")
ETCD_TLS=(--etcd-cacert "$certs/ca.pem" --etcd-cert "$certs/client.pem" --etcd-key "$certs/client-key.pem")
export ETCDCTL_API=3

expect_ok() { h_assert_eq "$rc" 0 "$1 (stderr: $err)"; }
# expect_refused CODE WHAT TEXT...: exit CODE, one line on stderr containing each TEXT
expect_refused() {
    local code=$1 what=$2 t
    shift 2
    h_assert_eq "$rc" "$code" "$what: exit code (stderr: $err)"
    h_assert_eq "$(printf '%s\n' "$err" | grep -c .)" 1 "$what: one line on stderr (stderr: $err)"
    for t in "$@"; do h_assert_contains "$err" "$t" "$what: error names '$t'"; done
    h_log "$what: exit $rc: $err"
}
dump() { h_etcdctl "$1" get "" --prefix -w json | jq -c '[.kvs[]? | {key, value, mod_revision}]'; }
listed() {
    h_run_drd 60 snapshot list --store "$STORE" "${S3_TLS[@]}" --json
    expect_ok "snapshot list over https"
    jq -r '.[].id' <<<"$out" | grep -c . || true
}

h_log "save, verify and restore over https on both sides"
h_etcd_start primary "$H_TMP/primary" --tls "$certs"
for ((i = 0; i < 200; i++)); do
    h_etcdctl primary put "/registry/configmaps/ns-$((i % 4))/cm-$i" "{\"i\":$i}" >/dev/null
done
head -c 150000 /dev/urandom | base64 -w0 | h_etcdctl primary put /registry/big >/dev/null
h_run_drd 10 key generate --out "$H_TMP/keys"
expect_ok "key generate"
h_run_drd 120 --log-level error snapshot save --etcd "$PRIMARY_URL" "${ETCD_TLS[@]}" --store "$STORE" \
    "${S3_TLS[@]}" --key-file "$H_TMP/keys"
expect_ok "snapshot save over https"
ID=$out
h_run_drd 120 --log-level error snapshot verify "$ID" --store "$STORE" "${S3_TLS[@]}" --key-file "$H_TMP/keys"
expect_ok "snapshot verify over https"
h_etcd_reserve restored
h_run_drd 120 --log-level error restore --snapshot "$ID" --store "$STORE" "${S3_TLS[@]}" \
    --key-file "$H_TMP/keys" --data-dir "$H_TMP/restored" --name restored \
    --initial-cluster "$RESTORED_INITIAL_CLUSTER" --initial-advertise-peer-urls "$RESTORED_PEER_URL"
expect_ok "restore over https"
h_etcd_start restored "$H_TMP/restored"
h_assert_eq "$(dump restored)" "$(dump primary)" "the restored etcd has every key and value"
h_stop restored
h_assert_eq "$(listed)" 1 "snapshots in the store"

h_log "S3: wrong CA, the system's CAs, a certificate for another name"
save() { h_run_drd 60 snapshot save --store "$STORE" --key-file "$H_TMP/keys" "$@"; }
ETCD=(--etcd "$PRIMARY_URL" "${ETCD_TLS[@]}")
save "${ETCD[@]}" --s3-endpoint "$RGW_TLS_ENDPOINT" --s3-cacert "$RGW_OTHER_CACERT"
expect_refused 5 "save, S3 wrong CA" "'$RGW_TLS_ENDPOINT'" "certificate" "$RGW_OTHER_CACERT"
save "${ETCD[@]}" --s3-endpoint "$RGW_TLS_ENDPOINT"
expect_refused 5 "save, S3 checked against the system's CAs" "'$RGW_TLS_ENDPOINT'" "certificate" "system"
save "${ETCD[@]}" --s3-endpoint "$RGW_OTHER_NAME_ENDPOINT" --s3-cacert "$RGW_CACERT"
expect_refused 5 "save, S3 certificate for another name" "'$RGW_OTHER_NAME_ENDPOINT'" "certificate" "name"
h_run_drd 60 restore --snapshot "$ID" --store "$STORE" --s3-endpoint "$RGW_TLS_ENDPOINT" \
    --s3-cacert "$RGW_OTHER_CACERT" --key-file "$H_TMP/keys" --data-dir "$H_TMP/r2" --name r2 \
    --initial-cluster "r2=http://127.0.0.1:1" --initial-advertise-peer-urls "http://127.0.0.1:1"
expect_refused 5 "restore, S3 wrong CA" "'$RGW_TLS_ENDPOINT'" "certificate"
[[ ! -e "$H_TMP/r2/member" ]] || h_fail "a refused restore wrote a member dir"
h_assert_eq "$(listed)" 1 "snapshots in the store after the refused saves"

h_log "etcd: a server certificate for another name, and the wrong CA"
# started by hand: h_etcd_start's health check dials 127.0.0.1, which this certificate refuses
h_free_port oport
h_free_port opeer
h_bg othername etcd --name othername --data-dir "$H_TMP/othername" \
    --listen-client-urls "https://127.0.0.1:$oport" --advertise-client-urls "https://127.0.0.1:$oport" \
    --listen-peer-urls "http://127.0.0.1:$opeer" --initial-advertise-peer-urls "http://127.0.0.1:$opeer" \
    --initial-cluster "othername=http://127.0.0.1:$opeer" --log-level error --logger zap \
    --cert-file "$certs/other-name.pem" --key-file "$certs/other-name-key.pem" \
    --client-cert-auth --trusted-ca-file "$certs/ca.pem"
# it answers for the name its certificate carries
healthy_as_other() {
    [[ "$(curl -s --max-time 2 --resolve "other.example:$oport:127.0.0.1" --cacert "$certs/ca.pem" \
        --cert "$certs/client.pem" --key "$certs/client-key.pem" "https://other.example:$oport/health")" == *'"health":"true"'* ]]
}
h_wait_until 20 "etcd with a certificate for other.example" healthy_as_other
save --etcd "https://127.0.0.1:$oport" "${ETCD_TLS[@]}" "${S3_TLS[@]}"
expect_refused 5 "save, etcd certificate for another name" "127.0.0.1:$oport" "not in peer certificate"
save --etcd "$PRIMARY_URL" --etcd-cacert "$certs/other-ca.pem" --etcd-cert "$certs/client.pem" \
    --etcd-key "$certs/client-key.pem" "${S3_TLS[@]}"
expect_refused 5 "save, etcd wrong CA" "127.0.0.1:$PRIMARY_CLIENT_PORT" "certificate verify failed"
h_assert_eq "$(listed)" 1 "snapshots in the store after the refused etcd saves"
h_pass
