#!/usr/bin/env bash
# Two daemons on loopback, each naming the other in peers: each probes the other's /healthz and
# /readyz and exports drd_site_up{site}, drd_site_last_contact_seconds{site} and
# drd_site_ready{site}; drd status shows it. kill -9 one: the other's drd_site_up goes 0 within
# the probe interval (and its timeout), its own /readyz stays 200 (a probe is for alerting, it
# never fails readiness); start it again: 1 again. No etcd: each daemon has one drill, on a
# schedule that does not come due during the test.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
h_free_port PORT_A
h_free_port PORT_B
mkdir -p "$H_TMP/store"

config() { # NAME OWN_PORT PEER_NAME PEER_PORT
    cat <<YAML
listen: 127.0.0.1:$2
state_dir: $H_TMP/state-$1
stores:
  main: { url: "file://$H_TMP/store", no_encryption: true }
drills:
  - { name: yearly-$1, store: main, schedule: "@yearly" }
peers:
  $3: { url: "http://127.0.0.1:$4", interval: 1s, timeout: 500ms }
YAML
}
config a "$PORT_A" b "$PORT_B" >"$H_TMP/a.yaml"
config b "$PORT_B" a "$PORT_A" >"$H_TMP/b.yaml"

h_run_drd 30 run --config "$H_TMP/a.yaml" --check
h_assert_eq "$rc" 0 "the config with peers is accepted (stderr: $err)"

metric() { # PORT NAME LABELS -> value, "" when absent
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v k="$2{$3}" '$1 == k { print $2 }'
}
is() { [[ "$(metric "$1" "$2" "$3")" == "$4" ]]; }
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2"; }

h_log "a starts alone: b does not answer"
h_bg daemon_a h_drd run --config "$H_TMP/a.yaml"
h_wait_until 30 "a's status server" is "$PORT_A" drd_site_up 'site="b"' 0
h_assert_eq "$(metric "$PORT_A" drd_site_last_contact_seconds 'site="b"')" "-1.000" "never answered"
h_assert_eq "$(code "$PORT_A" /readyz)" 200 "a is ready although b does not answer"

h_log "b starts: both see each other"
h_bg daemon_b h_drd run --config "$H_TMP/b.yaml"
h_wait_until 30 "a sees b" is "$PORT_A" drd_site_up 'site="b"' 1
h_wait_until 30 "b sees a" is "$PORT_B" drd_site_up 'site="a"' 1
h_wait_until 10 "a sees b ready" is "$PORT_A" drd_site_ready 'site="b"' 1
last=$(metric "$PORT_A" drd_site_last_contact_seconds 'site="b"')
awk -v v="$last" 'BEGIN { exit !(v >= 0 && v < 3) }' || h_fail "last contact ${last}s ago, with a probe every second"
[[ -n "$(metric "$PORT_A" drd_job_runs_total 'kind="peer",name="b"')" ]] || h_fail "no drd_job_runs_total of the peer job"
h_run_drd 30 status --config "$H_TMP/a.yaml"
h_assert_eq "$rc" 0 "drd status (stderr: $err)"
h_assert_contains "$out" "peer b: " "drd status lists the peer"
h_assert_contains "$out" "the other site's daemon http://127.0.0.1:$PORT_B answers (ready)" "and says it answers"
h_run_drd 30 status --config "$H_TMP/a.yaml" --json
h_assert_eq "$(jq -r '.jobs[] | select(.kind == "peer") | "\(.name) \(.site_up) \(.site_ready)"' <<<"$out")" \
    "b true true" "/status JSON of the peer"

h_log "kill -9 b: a's drd_site_up{site=\"b\"} goes 0 within the probe interval"
lines=$(grep -c "the other site's daemon http://127.0.0.1:$PORT_B" "$DAEMON_A_LOG" || true)
h_kill9 daemon_b
t0=$(date +%s%N)
h_wait_until 10 "a sees b down" is "$PORT_A" drd_site_up 'site="b"' 0
ms=$((($(date +%s%N) - t0) / 1000000))
h_log "drd_site_up{site=\"b\"} went 0 ${ms} ms after the kill (interval 1s, timeout 500ms)"
# the next probe starts within the interval (1 s) and a refused connection fails at once; the
# loop's tick (200 ms) and curl add a little
((ms <= 2000)) || h_fail "a noticed b's death after ${ms} ms, more than the interval allows"
h_assert_eq "$(metric "$PORT_A" drd_site_ready 'site="b"')" 0 "not ready either"
h_assert_eq "$(code "$PORT_A" /readyz)" 200 "a stays ready: a probe never fails readiness"
sleep 2
last=$(metric "$PORT_A" drd_site_last_contact_seconds 'site="b"')
awk -v v="$last" 'BEGIN { exit !(v >= 2) }' || h_fail "last contact only ${last}s ago with b dead for 2s"
h_run_drd 30 status --config "$H_TMP/a.yaml"
h_assert_contains "$out" "http://127.0.0.1:$PORT_B DOES NOT ANSWER" "drd status says b is gone"
h_assert_eq "$(grep -c "the other site's daemon http://127.0.0.1:$PORT_B" "$DAEMON_A_LOG")" $((lines + 1)) \
    "one log line for the change, not one per probe ($(grep peer "$DAEMON_A_LOG" | tail -n 3))"

h_log "b again: a sees it again"
h_bg daemon_b h_drd run --config "$H_TMP/b.yaml"
h_wait_until 30 "a sees b again" is "$PORT_A" drd_site_up 'site="b"' 1

h_log "a peer that answers HTTP but is no drd status server: down, with the status in the error"
h_free_port PORT_C
h_bg http python3 -m http.server --bind 127.0.0.1 "$PORT_C" --directory "$H_TMP/store"
h_wait_until 30 "the plain HTTP server" curl -s -o /dev/null "http://127.0.0.1:$PORT_C/"
config a "$PORT_A" c "$PORT_C" >"$H_TMP/a.yaml"
kill -HUP "$DAEMON_A_PID"
h_wait_until 30 "peer c on /metrics" is "$PORT_A" drd_site_up 'site="c"' 0
detail() { curl -s "http://127.0.0.1:$PORT_A/status" | jq -r '.jobs[] | select(.kind == "peer") | .last_detail // empty'; }
has_404() { [[ "$(detail)" == *"/healthz answered 404"* ]]; }
h_wait_until 10 "the reason on /status" has_404
# the worker sets the detail, the loop logs it on its next tick
h_wait_until 10 "the 404 in a's log" grep -q "/healthz answered 404" "$DAEMON_A_LOG"
h_stop http

h_stop daemon_a
h_assert_eq "$DAEMON_A_STATUS" 0 "a exits 0 on SIGTERM"
h_stop daemon_b
h_pass
