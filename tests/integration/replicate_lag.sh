#!/usr/bin/env bash
# A primary faster than the exact standby (here: the standby stopped with SIGSTOP while 20k puts
# arrive as fast as etcd takes them): lag grows and drd_replicate_lag_seconds shows it, /readyz
# turns 503 naming the lag once it passes --max-lag and drd_replicate_ready drops to 0, drd's memory
# stays bounded while it waits (backpressure, not buffering), and after SIGCONT it catches up by
# itself: ready again, standby identical to the primary (drd replicate verify: HashKV). While it
# catches up, the lag in seconds of revisions that waited at the source (past the read-ahead
# queue) still counts from when they were written, not from when drd read them.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
LOAD=${TESTBIN:-}/../bench/etcd-load
[[ -x "$LOAD" ]] || h_fail "no etcd-load at $LOAD"
h_etcd_start primary "$H_TMP/primary"
h_etcdctl primary put /registry/a 1 >/dev/null
h_etcd_reserve standby
h_run_drd 60 replicate seed --source "$PRIMARY_URL" --data-dir "$H_TMP/standby" --name standby \
    --initial-cluster "$STANDBY_INITIAL_CLUSTER" --initial-advertise-peer-urls "$STANDBY_PEER_URL"
h_assert_eq "$rc" 0 "seed (stderr: $err)"
h_etcd_start standby "$H_TMP/standby"
h_free_port LISTEN_PORT
LISTEN=127.0.0.1:$LISTEN_PORT
metric() { curl -sS --max-time 5 "http://$LISTEN/metrics" | awk -v m="drd_replicate_$1{" 'index($0, m) == 1 { print $2 }'; }
readyz() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$LISTEN/readyz"; }
ready() { [[ "$(readyz)" == 200 ]]; }
lagging() { [[ "$(readyz)" == 503 ]] && awk -v l="$(metric lag_seconds)" 'BEGIN { exit !(l > 3) }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$DRD_PID/status"; }
# "SECS_SINCE_T_W LAG_REVISIONS LAG_SECONDS" from one scrape (the time taken before it)
lag_sample() {
    local t=$EPOCHREALTIME
    curl -sS --max-time 5 "http://$LISTEN/metrics" | awk -v t="$t" -v tw="$t_w" '
        index($0, "drd_replicate_lag_revisions{") == 1 { r = $2 }
        index($0, "drd_replicate_lag_seconds{") == 1 { s = $2 }
        END { printf "%.3f %d %.3f\n", t - tw, r, s }'
}

h_bg drd h_drd replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL" --mode exact \
    --status-listen "$LISTEN" --max-lag 3s --timeout 60s # requests to the stopped standby wait
h_wait_until 60 "ready" ready
rss0=$(rss_kib)

h_log "standby stopped; 20k puts of 1 KiB into the primary"
kill -STOP "$STANDBY_PID"
h_on_exit 'kill -CONT "$STANDBY_PID" 2>/dev/null || true'
"$LOAD" put --endpoints "$PRIMARY_URL" --prefix /registry/load/ --count 20000 --value-size 1024 >/dev/null ||
    h_fail "etcd-load put failed"
h_wait_until 30 "lag past --max-lag on /readyz and lag_seconds" lagging
h_assert_contains "$(curl -s --max-time 5 "http://$LISTEN/readyz")" "more than --max-lag" "/readyz names the lag"
h_assert_eq "$(metric ready)" 0 "drd_replicate_ready"
sleep 3
rss1=$(rss_kib)
"$LOAD" put --endpoints "$PRIMARY_URL" --prefix /registry/load/ --start 20000 --count 20000 \
    --value-size 1024 >/dev/null || h_fail "etcd-load put failed"
t_w=$EPOCHREALTIME # every revision still to apply was written before this
sleep 6
rss2=$(rss_kib)
h_log "drd RSS: ${rss0} KiB ready, ${rss1} KiB with 20k revisions waiting, ${rss2} KiB with 40k"
# bounded: once the watch queue (4 MiB of events) is full drd stops reading and gRPC flow control
# holds the rest at the source, so another 20 MiB of revisions must not grow it (an ASan build's
# allocator overhead makes the first plateau larger than the queue, not the second step)
((rss2 - rss1 < 12 * 1024)) || h_fail "drd grew by $(((rss2 - rss1) / 1024)) MiB for another 20k revisions while the standby was stopped"

h_log "standby back"
kill -CONT "$STANDBY_PID"
# The read-ahead queue held the first few thousand of the 40k revisions; the rest waited at the
# source and are read as the standby takes them. While the oldest revision not applied is one of
# those (more than 10,000 still to apply), its lag is at least the time since t_w (less the 0.5 s
# between the source polls of a full queue, and rounding): not how long it sat in the queue.
deadline=$((SECONDS + 120))
lags=""
while ((SECONDS < deadline)); do
    s=$(lag_sample) || true
    lags+="$s"$'\n'
    [[ "$s" != *" 0 "* ]] || break
    sleep 0.2
done
h_log "catching up (seconds since the writes, revisions to apply, lag seconds): $(awk '$2 >= 10000' <<<"$lags" | tr '\n' ';')"
n_past=$(awk '$2 >= 10000 { n++ } END { print n + 0 }' <<<"$lags")
((n_past > 0)) || h_fail "no sample while more than 10,000 revisions were still to apply: $lags"
short=$(awk '$2 >= 10000 && $3 < $1 - 1 { print; exit }' <<<"$lags")
[[ -z "$short" ]] || h_fail "lag seconds below the age of the revisions still to apply (since the writes, revisions, lag): $short"
h_wait_until 120 "caught up and ready again" ready
h_assert_eq "$(metric ready)" 1 "drd_replicate_ready after catching up"
h_run_drd 60 replicate verify --source "$PRIMARY_URL" --target "$STANDBY_URL"
h_assert_eq "$rc" 0 "standby identical to the primary (stdout: $out stderr: $err)"
h_pass
