#!/usr/bin/env bash
# The test bed itself: two plain etcd servers and a TLS one start on free loopback ports, serve a
# put and a get, stop, restart on their data, and leave no process behind.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
h_certs "$H_TMP/certs"

h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
h_etcd_start secure "$H_TMP/secure" --tls "$H_TMP/certs"
[[ "$PRIMARY_URL" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || h_fail "bad PRIMARY_URL '$PRIMARY_URL'"
[[ "$SECURE_URL" =~ ^https://127\.0\.0\.1:[0-9]+$ ]] || h_fail "bad SECURE_URL '$SECURE_URL'"
ports=$(printf '%s\n' "$PRIMARY_CLIENT_PORT" "$PRIMARY_PEER_PORT" "$STANDBY_CLIENT_PORT" \
    "$STANDBY_PEER_PORT" "$SECURE_CLIENT_PORT" "$SECURE_PEER_PORT" | sort -u | wc -l)
h_assert_eq "$ports" 6 "six distinct ports"

for s in primary standby secure; do
    h_etcdctl "$s" put /registry/namespaces/default "hello $s" >/dev/null
    h_assert_eq "$(h_etcdctl "$s" get --print-value-only /registry/namespaces/default)" "hello $s" "get on $s"
done

h_assert_eq "$(h_etcd_count primary /registry/)" 1 "h_etcd_count"
h_assert_eq "$(h_etcd_count primary /nothing/)" 0 "h_etcd_count of an empty prefix"
h_assert_eq "$(h_etcd_revision primary)" 2 "h_etcd_revision after one put"

# separate clusters: each server only has its own key
h_assert_eq "$(h_etcdctl standby get --print-value-only /registry/namespaces/default)" "hello standby" \
    "servers are separate"

# TLS: the client cert is required, and a client trusting the other CA is refused
if ETCDCTL_API=3 etcdctl --endpoints "$SECURE_URL" --cacert "$SECURE_CACERT" \
    --dial-timeout=2s --command-timeout=3s get /x >/dev/null 2>&1; then
    h_fail "TLS server accepted a client without a certificate"
fi
if ETCDCTL_API=3 etcdctl --endpoints "$SECURE_URL" --cacert "$H_TMP/certs/other-ca.pem" \
    --cert "$SECURE_CERT" --key "$SECURE_KEY" --dial-timeout=2s --command-timeout=3s \
    get /x >/dev/null 2>&1; then
    h_fail "client trusting the other CA reached the TLS server"
fi

# stop and restart on the same data dir and URL: the data survives; kill -9 too
pids=("$PRIMARY_PID" "$STANDBY_PID" "$SECURE_PID")
url=$PRIMARY_URL
h_etcd_stop primary
h_assert_eq "$PRIMARY_PID" "" "PRIMARY_PID cleared after stop"
h_etcd_start primary "$H_TMP/primary"
h_assert_eq "$PRIMARY_URL" "$url" "same URL after restart"
h_assert_eq "$(h_etcdctl primary get --print-value-only /registry/namespaces/default)" "hello primary" \
    "data kept across restart"
pids+=("$PRIMARY_PID")
h_etcd_kill9 standby
h_etcd_start secure2 "$H_TMP/secure2" --tls "$H_TMP/certs"
pids+=("$SECURE2_PID")

# a background process started with h_bg is stopped at exit too
h_bg sleeper sleep 300
pids+=("$SLEEPER_PID")
h_running sleeper || h_fail "h_bg process not running"
h_bg sleeper2 sleep 300
h_stop sleeper2
h_assert_eq "$SLEEPER2_STATUS" 143 "status of a process stopped by SIGTERM"
h_bg quick bash -c 'echo hello; exit 3'
rc=0
h_wait_exit quick 10 || rc=$?
h_assert_eq "$rc" 3 "h_wait_exit returns the exit status"
h_assert_eq "$(cat "$QUICK_LOG")" hello "h_bg output goes to NAME_LOG"

# everything this test started is stopped by the harness at exit: run the same thing in a child
# test and check its processes are gone after it exits
child=$H_TMP/child.sh
cat >"$child" <<'CHILD'
source "$HARNESS_DIR/etcd.sh"
h_tmpdir
h_etcd_start one "$H_TMP/one"
h_bg sleeper sleep 300
echo "$ONE_PID $SLEEPER_PID $H_TMP"
h_fail "failing on purpose"
CHILD
rc=0
out=$(HARNESS_DIR=$H_DIR H_TEST_NAME=child bash "$child" 2>"$H_TMP/child.err") || rc=$?
h_assert_eq "$rc" 1 "failing child exits 1"
grep -q '^FAIL: child: failing on purpose$' "$H_TMP/child.err" || h_fail "child did not print its FAIL line"
read -r one_pid sleeper_pid child_tmp <<<"$out"
for p in "$one_pid" "$sleeper_pid"; do
    if kill -0 "$p" 2>/dev/null; then h_fail "process $p of the failed child test still runs"; fi
done
[[ ! -e "$child_tmp" ]] || h_fail "child temp dir $child_tmp not removed"

# and a child killed with SIGKILL is cleaned up by the watchdog
cat >"$child" <<'CHILD'
source "$HARNESS_DIR/etcd.sh"
h_tmpdir
h_etcd_start one "$H_TMP/one"
echo "$ONE_PID $H_TMP"
kill -KILL $$
CHILD
rc=0
out=$(HARNESS_DIR=$H_DIR H_TEST_NAME=child bash "$child" 2>/dev/null) || rc=$?
read -r one_pid child_tmp <<<"$out"
h_assert_eq "$rc" 137 "child killed -9"
h_wait_until 15 "watchdog stops etcd of a killed test" bash -c "! kill -0 $one_pid 2>/dev/null"
h_wait_until 5 "watchdog removes temp dir of a killed test" test ! -e "$child_tmp"

printf '%s\n' "${pids[@]}" >"$H_TMP/pids"
h_log "pids: ${pids[*]}"
h_pass
