#!/usr/bin/env bash
# A black-holed connection to the source: a TCP proxy between drd and the primary stops forwarding
# without closing (tests/integration/faults/blackhole.py, SIGUSR1). drd must notice within its gRPC
# keepalive time (ping every 10 s, 5 s to answer), reconnect by itself (the proxy forwards new
# connections) and count the reconnect in /metrics; writes made meanwhile reach the standby, none
# lost or applied twice.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
h_bg proxy python3 "$(dirname "$0")/faults/blackhole.py" "$H_TMP/proxy.port" "127.0.0.1:$PRIMARY_CLIENT_PORT"
h_wait_until 10 "proxy listening" test -s "$H_TMP/proxy.port"
PROXY=http://127.0.0.1:$(cat "$H_TMP/proxy.port")
h_free_port LISTEN_PORT
LISTEN=127.0.0.1:$LISTEN_PORT
metric() { curl -sS --max-time 5 "http://$LISTEN/metrics" | awk -v m="drd_replicate_$1{" 'index($0, m) == 1 { print $2 }'; }
on_standby() { [[ "$(h_etcdctl standby get --print-value-only "$1")" == "$2" ]]; }

h_etcdctl primary put /registry/a 1 >/dev/null
h_bg drd h_drd replicate etcd --source "$PROXY" --target "$STANDBY_URL" --mode filtered --name bh \
    --prefix /registry/ --status-listen "$LISTEN"
h_wait_until 60 "first key replicated through the proxy" on_standby /registry/a 1
before=$(metric reconnects_total)

h_log "black-holing every open connection to the primary"
kill -USR1 "$PROXY_PID"
t0=$SECONDS
for i in 1 2 3 4 5; do h_etcdctl primary put "/registry/k$i" "v$i" >/dev/null; done
h_wait_until 45 "writes made behind the black hole replicated" on_standby /registry/k5 v5
took=$((SECONDS - t0))
h_log "noticed and caught up after ${took}s"
((took >= 5)) || h_fail "caught up in ${took}s: the connection was not black-holed"
after=$(metric reconnects_total)
((after > before)) || h_fail "reconnects_total did not grow ($before -> $after)"
for i in 1 2 3 4 5; do on_standby "/registry/k$i" "v$i" || h_fail "/registry/k$i missing"; done
h_assert_eq "$(h_etcdctl standby get /registry/ --prefix --keys-only | grep -c .)" 6 "every key once"
h_assert_eq "$(metric up)" 1 "replicating again"
h_pass
