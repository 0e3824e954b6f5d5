#!/usr/bin/env bash
# The status server of `drd replicate etcd` (libmicrohttpd) and its alarm state, against real
# etcd servers: on an alarm (exact mode into a standby that was not seeded) drd stays up, /readyz
# says 503 with the reason, /metrics carries drd_replicate_alarm 1, /healthz stays 200, and only
# SIGTERM ends it, with the alarm's exit code (--until-caught-up exits at once). A client that
# sends a byte every 1.5 s, and 20 idle connections, do not keep /healthz from answering within a
# second; POST is refused (405); ":PORT" and "[::1]:PORT" are accepted, a malformed address is a
# one-line usage error.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
h_etcdctl primary put /registry/a 1 >/dev/null
SRC=(--source "$PRIMARY_URL" --target "$STANDBY_URL" --mode exact --name g)

code() { curl -s --max-time "${2:-5}" -o /dev/null -w '%{http_code}' "http://$LISTEN$1"; }
body() { curl -s --max-time 5 "http://$LISTEN$1"; }
readyz_alarm() { [[ "$(code /readyz)" == 503 && "$(body /readyz)" == alarm:* ]]; }

h_log "alarm: exits at once with --until-caught-up"
h_run_drd 60 replicate etcd "${SRC[@]}" --until-caught-up
h_assert_eq "$rc" 15 "unseeded standby with --until-caught-up: exit ENOTSEEDED (stderr: $err)"

h_log "alarm: stays up, tells monitoring why, exits on SIGTERM"
h_free_port LISTEN_PORT
LISTEN=127.0.0.1:$LISTEN_PORT
h_bg drd h_drd replicate etcd "${SRC[@]}" --status-listen "$LISTEN"
h_wait_until 60 "drd in alarm on /readyz" readyz_alarm
h_assert_contains "$(body /readyz)" "seed" "/readyz names the reason"
h_assert_eq "$(code /healthz)" 200 "/healthz alive in alarm"
h_assert_contains "$(body /metrics)" 'drd_replicate_alarm{name="g",code="DR_ENOTSEEDED"} 1' "alarm metric"
h_assert_contains "$(body /metrics)" 'drd_replicate_up{name="g"} 0' "up metric"
h_assert_eq "$(body /status | jq -r '.alarm | length > 0')" true "/status carries the alarm"
sleep 2
h_running drd || h_fail "drd exited in alarm without SIGTERM"

h_log "slow and idle clients do not blind the probes"
# a client that sends one byte every 1.5 s (a request never completed), and 20 idle connections
(exec 3<>"/dev/tcp/127.0.0.1/$LISTEN_PORT" && for c in G E T ' ' / h e a l t h z; do
    printf '%s' "$c" >&3
    sleep 1.5
done) &
slow=$!
idle=()
for ((i = 0; i < 20; i++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$LISTEN_PORT"
    idle+=("$fd")
done
for ((i = 0; i < 5; i++)); do
    t0=$(date +%s%N)
    h_assert_eq "$(code /healthz 1)" 200 "/healthz during a slow client and 20 idle connections"
    ms=$((($(date +%s%N) - t0) / 1000000))
    ((ms < 1000)) || h_fail "/healthz took ${ms} ms"
    sleep 1
done
for fd in "${idle[@]}"; do exec {fd}>&-; done
kill "$slow" 2>/dev/null || true
wait "$slow" 2>/dev/null || true
h_assert_eq "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -X POST -d x "http://$LISTEN/metrics")" 405 "POST refused"
h_assert_eq "$(code /nope)" 404 "unknown path"

kill -TERM "$DRD_PID"
rc=0
h_wait_exit drd 30 || rc=$?
h_assert_eq "$rc" 15 "exit code after SIGTERM in alarm"

h_log "listen addresses"
h_free_port P2
h_bg any h_drd replicate etcd "${SRC[@]}" --status-listen ":$P2"
LISTEN=127.0.0.1:$P2
h_wait_until 30 ":PORT serves IPv4 loopback" readyz_alarm
if [[ -s /proc/net/if_inet6 ]] && grep -q '00000000000000000000000000000001' /proc/net/if_inet6; then
    LISTEN="[::1]:$P2"
    h_assert_eq "$(code /healthz)" 200 ":PORT serves IPv6 loopback"
    h_stop any
    h_free_port P3
    h_bg v6 h_drd replicate etcd "${SRC[@]}" --status-listen "[::1]:$P3"
    LISTEN="[::1]:$P3"
    h_wait_until 30 "[::1]:PORT serves" readyz_alarm
    h_stop v6
else
    h_log "no IPv6 loopback here: [::1] not tested"
    h_stop any
fi
h_run_drd 10 replicate etcd "${SRC[@]}" --status-listen nope
h_assert_eq "$rc" 2 "malformed --status-listen (stderr: $err)"
h_assert_eq "$(grep -c . <<<"$err")" 1 "one line: $err"
h_assert_contains "$err" "--status-listen" "names the flag"
h_pass
