#!/usr/bin/env bash
# TLS with client certificates (etcd with --client-cert-auth) on both sides: filtered replication,
# `drd replicate seed` of an exact standby and exact replication over https, and the errors: a CA
# that did not sign the server's cert, and no client cert, each give a non-zero exit and one line
# on stderr.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
start=$SECONDS
certs=$H_TMP/certs
h_certs "$certs"

rev() { h_etcd_revision "$1"; } # a failed read never equals anything
dump() { h_etcdctl "$1" get --prefix "$2" -w json | jq -c '[.kvs[]? | {key, value}]'; }

h_etcd_start primary "$H_TMP/primary" --tls "$certs"
h_etcd_start standby "$H_TMP/standby" --tls "$certs"
[[ "$PRIMARY_URL" == https://* && "$STANDBY_URL" == https://* ]] || h_fail "servers are not https: $PRIMARY_URL $STANDBY_URL"
for i in $(seq 1 50); do h_etcdctl primary put "/registry/secrets/ns-$((i % 5))/s-$i" "{\"kind\":\"Secret\",\"i\":$i}" >/dev/null; done

src_tls=(--source-cacert "$certs/ca.pem" --source-cert "$certs/client.pem" --source-key "$certs/client-key.pem")
tgt_tls=(--target-cacert "$certs/ca.pem" --target-cert "$certs/client.pem" --target-key "$certs/client-key.pem")

# ---- filtered mode over TLS: first copy, then streaming
h_run_drd 60 --log-level error replicate etcd --mode filtered --name tls --prefix /registry/ \
    --source "$PRIMARY_URL" --target "$STANDBY_URL" "${src_tls[@]}" "${tgt_tls[@]}" --until-caught-up
h_assert_eq "$rc" 0 "filtered replication over TLS (stderr: $err)"
h_assert_eq "$(dump standby /registry/)" "$(dump primary /registry/)" "filtered copy over TLS"
h_bg drdf h_drd replicate etcd --mode filtered --name tls --prefix /registry/ \
    --source "$PRIMARY_URL" --target "$STANDBY_URL" "${src_tls[@]}" "${tgt_tls[@]}"
h_etcdctl primary put /registry/secrets/ns-1/streamed yes >/dev/null
h_etcdctl primary del /registry/secrets/ns-2/s-2 >/dev/null
streamed() { [[ "$(dump standby /registry/)" == "$(dump primary /registry/)" ]]; }
h_wait_until 60 "filtered streaming over TLS" streamed
h_running drdf || h_fail "filtered drd over TLS exited: $(tail -n 3 "$DRDF_LOG")"
h_stop drdf
h_run_drd 60 --log-level error replicate verify --mode filtered --name tls --prefix /registry/ \
    --source "$PRIMARY_URL" --target "$STANDBY_URL" "${src_tls[@]}" "${tgt_tls[@]}"
h_assert_eq "$rc" 0 "filtered verify over TLS (stderr: $err)"

# ---- exact mode over TLS: seed from the https primary, standby with client-cert-auth
h_etcd_reserve exact --tls "$certs"
h_run_drd 60 --log-level error replicate seed --source "$PRIMARY_URL" "${src_tls[@]}" --data-dir "$H_TMP/exact" \
    --name exact --initial-cluster "$EXACT_INITIAL_CLUSTER" --initial-advertise-peer-urls "$EXACT_PEER_URL"
h_assert_eq "$rc" 0 "seed over TLS (stderr: $err)"
h_etcd_start exact "$H_TMP/exact" --tls "$certs"
h_etcdctl primary put /registry/secrets/ns-3/after-seed x >/dev/null
h_run_drd 60 --log-level error replicate etcd --source "$PRIMARY_URL" --target "$EXACT_URL" \
    "${src_tls[@]}" "${tgt_tls[@]}" --until-caught-up
h_assert_eq "$rc" 0 "exact replication over TLS (stderr: $err)"
h_assert_eq "$(rev exact)" "$(rev primary)" "exact standby revision over TLS"
h_run_drd 60 --log-level error replicate verify --source "$PRIMARY_URL" --target "$EXACT_URL" "${src_tls[@]}" "${tgt_tls[@]}"
h_assert_eq "$rc" 0 "exact verify over TLS (stderr: $err)"
h_assert_eq "$(dump exact /)" "$(dump primary /)" "exact copy over TLS"

# ---- errors: one line on stderr, non-zero exit, within 30 s
expect_error() {  # DESC NEEDLE args...
    local desc=$1 needle=$2 t0=$SECONDS
    shift 2
    h_run_drd 45 "$@"
    ((rc != 0)) || h_fail "$desc: exited 0"
    h_assert_eq "$(wc -l <"$H_TMP/err")" 1 "$desc: lines on stderr (stderr: $err)"
    [[ -z "$needle" ]] || h_assert_contains "${err,,}" "${needle,,}" "$desc: error message"
    ((SECONDS - t0 <= 30)) || h_fail "$desc: took $((SECONDS - t0))s"
    h_log "$desc: exit $rc in $((SECONDS - t0))s: $err"
}
wrong_ca=(--source-cacert "$certs/other-ca.pem" --source-cert "$certs/client.pem" --source-key "$certs/client-key.pem")
no_cert=(--source-cacert "$certs/ca.pem")
for lvl in error info; do
    # the default log level (info) too: an error must still be one line
    loglvl=(--log-level "$lvl")
    [[ "$lvl" == info ]] && loglvl=()
    expect_error "wrong CA (log level $lvl)" tls "${loglvl[@]}" replicate etcd --mode filtered --name tls \
        --source "$PRIMARY_URL" --target "$STANDBY_URL" "${wrong_ca[@]}" "${tgt_tls[@]}" --until-caught-up
    expect_error "no client cert (log level $lvl)" "" "${loglvl[@]}" replicate etcd --mode filtered --name tls \
        --source "$PRIMARY_URL" --target "$STANDBY_URL" "${no_cert[@]}" "${tgt_tls[@]}" --until-caught-up
    h_assert_contains "$err" "127.0.0.1:$PRIMARY_CLIENT_PORT" "no client cert: error names the source endpoint"
done
expect_error "wrong CA on the target" tls --log-level error replicate etcd --source "$PRIMARY_URL" --target "$EXACT_URL" \
    "${src_tls[@]}" --target-cacert "$certs/other-ca.pem" --target-cert "$certs/client.pem" \
    --target-key "$certs/client-key.pem" --until-caught-up
expect_error "wrong CA for seed" tls --log-level error replicate seed --source "$PRIMARY_URL" "${wrong_ca[@]}" \
    --data-dir "$H_TMP/never" --name never --initial-cluster never=http://127.0.0.1:1 \
    --initial-advertise-peer-urls http://127.0.0.1:1
expect_error "https endpoint without any TLS flags" "" --log-level error replicate verify \
    --source "$PRIMARY_URL" --target "$EXACT_URL"

h_log "took $((SECONDS - start))s"
h_pass
