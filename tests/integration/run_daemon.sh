#!/usr/bin/env bash
# drd run against real etcd servers and a file:// store: filtered replication into a standby
# (continuous), snapshots @every 2s (at least two appear, in the store and on /metrics) with
# segments (continuous), a drill that passes; /healthz, /readyz, /status; a second daemon on the
# same config refuses to start; SIGHUP with a broken config keeps the old one (and counts the
# failure), SIGHUP with a good one switches; kill -9 and a restart count the runs missed
# meanwhile; SIGTERM exits 0.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
export DRD_CATALOG_DIR=$H_TMP/catalog
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
h_etcdctl primary put /registry/pods/a 1 >/dev/null
h_drd key generate --out "$H_TMP/keys" >/dev/null
h_free_port PORT
LISTEN=127.0.0.1:$PORT
STORE=file://$H_TMP/store
mkdir -p "$H_TMP/store"

config() { # $1: snapshot schedule
    cat <<YAML
listen: $LISTEN
state_dir: $H_TMP/state
grace: 60s
clusters:
  primary: { endpoints: [$PRIMARY_URL] }
  standby: { endpoints: [$STANDBY_URL] }
stores:
  main: { url: "$STORE", key_file: $H_TMP/keys }
replicate:
  - { name: apps, mode: filtered, source: primary, target: standby, prefixes: [/registry/],
      max_lag: 30s, verify: 3s }
snapshots:
  - { name: primary, cluster: primary, store: main, schedule: "$1", segments: 1s,
      retention: { keep_last: 50 } }
drills:
  - { name: proof, store: main, schedule: "@every 15s" }
YAML
}
config "@every 2s" >"$H_TMP/drd.yaml"

get() { curl -s --max-time 5 "http://$LISTEN$1"; }
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$LISTEN$1"; }
metric() { # NAME LABELS -> value (integer part), 0 when absent
    local v k=$1
    [[ -z "$2" ]] || k="$1{$2}"
    v=$(get /metrics | awk -v k="$k" '$1 == k { print $2 }')
    echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}
fulls() { h_drd snapshot list --store "$STORE" --key-file "$H_TMP/keys" --json 2>/dev/null |
    jq '[.[] | select(.kind == "full" and .status == "ok")] | length'; }
SNAP='kind="snapshot",name="primary"'
DRILL='kind="drill",name="proof"'
# predicates for h_wait_until
up() { [[ "$(code /healthz)" == 200 ]]; }
ready() { [[ "$(code /readyz)" == 200 ]]; }
at_least() { (($(metric "$1" "$2") >= $3)); }
two_fulls() { (($(fulls) >= 2)); }
incrs() { h_drd snapshot list --store "$STORE" --key-file "$H_TMP/keys" --json 2>/dev/null |
    jq '[.[] | select(.kind == "incr" and .status == "ok")] | length'; }
a_segment() { (($(incrs) >= 1)); }
standby_has() { [[ "$(h_etcdctl standby get --print-value-only "$1")" == "$2" ]]; }
schedule_is() { [[ "$(get /status | jq -r '.jobs[] | select(.name == "primary" and .kind == "snapshot") | .schedule')" == "$1" ]]; }

h_bg drd h_drd run --config "$H_TMP/drd.yaml"
h_wait_until 30 "status server up" up
h_wait_until 60 "two scheduled snapshots on /metrics" at_least drd_job_runs_total "$SNAP" 2
h_wait_until 60 "a snapshot's success on /metrics" at_least drd_job_last_success_timestamp_seconds "$SNAP" 1
h_wait_until 60 "two snapshots in the store" two_fulls
h_wait_until 60 "replication streams, /readyz 200" ready
h_etcdctl primary put /registry/pods/b 2 >/dev/null
h_wait_until 30 "the standby follows" standby_has /registry/pods/b 2
h_wait_until 60 "a segment with the new revision" a_segment
h_assert_eq "$(metric drd_job_running 'kind="segments",name="primary"')" 1 "segments run"
h_assert_eq "$(metric drd_job_failures_total "$SNAP")" 0 "no failed snapshot"

h_wait_until 30 "primary and standby verified" at_least drd_replicate_verified_revision 'name="apps"' 2
h_assert_eq "$(metric drd_site_up 'cluster="primary"')" 1 "the other site is up"
h_wait_until 30 "the store's newest restorable point" at_least drd_store_newest_revision 'store="main"' 3
(($(metric drd_store_newest_age_seconds 'store="main"') < 60)) || h_fail "the newest point is too old"

h_log "drd status asks the daemon"
h_run_drd 30 status --config "$H_TMP/drd.yaml"
h_assert_eq "$rc" 0 "drd status (stderr: $err)"
h_assert_contains "$out" "daemon: running" "daemon state"
h_assert_contains "$out" "snapshot primary: " "the snapshot job"
h_assert_contains "$out" "store main: newest restorable revision" "the store's point"
h_assert_contains "$out" "primary answers" "the other site"
h_run_drd 30 status --config "$H_TMP/drd.yaml" --json
h_assert_eq "$(jq -r '.jobs[] | select(.kind == "replicate") | .name' <<<"$out")" apps "--json is /status"

h_log "a second daemon on the same config refuses"
h_run_drd 30 run --config "$H_TMP/drd.yaml"
h_assert_eq "$rc" 18 "second daemon: EBUSY (stderr: $err)"
h_assert_contains "$err" "another drd run (pid $DRD_PID) uses state_dir" "names the holder"
h_assert_eq "$(metric drd_job_last_result "$SNAP")" 0 "last result ok"
(( $(metric drd_job_next_run_timestamp_seconds "$SNAP") >= $(date +%s) )) || h_fail "next run is in the future"
h_assert_contains "$(get /metrics)" 'drd_replicate_applied_revision{name="apps"}' "replication metrics"
h_assert_eq "$(get /status | jq -r '.jobs[] | select(.name == "primary" and .kind == "snapshot") | .schedule')" "@every 2s" "/status names the schedule"
h_wait_until 120 "a drill passes" at_least drd_job_last_success_timestamp_seconds "$DRILL" 1
h_assert_contains "$(get /metrics)" 'drd_drill_rto_seconds{name="proof"}' "drill RTO metric"

h_log "SIGHUP with a broken config: refused, the old one keeps running"
runs=$(metric drd_job_runs_total "$SNAP")
config "@every 2s" | sed 's/^state_dir:/state_dri:/' >"$H_TMP/drd.yaml"
kill -HUP "$DRD_PID"
h_wait_until 20 "reload failure counted" at_least drd_config_reload_failures_total "" 1
h_assert_contains "$(get /status | jq -r .reload_error)" "drd.yaml:2:1: unknown key 'state_dri'" "reload error with file:line:column"
h_wait_until 30 "snapshots go on" at_least drd_job_runs_total "$SNAP" $((runs + 2))

h_log "SIGHUP with a good config: switches, counters kept"
config "@every 3s" >"$H_TMP/drd.yaml"
kill -HUP "$DRD_PID"
h_wait_until 30 "new schedule in /status" schedule_is "@every 3s"
(( $(metric drd_job_runs_total "$SNAP") >= runs + 2 )) || h_fail "counters lost on reload"
h_wait_until 60 "replication streams again" ready

h_log "kill -9, 8 s down, restart: the runs missed meanwhile are counted, not run"
h_kill9 drd
sleep 8
h_bg drd h_drd run --config "$H_TMP/drd.yaml"
h_wait_until 30 "status server up again" up
h_wait_until 30 "missed runs counted" at_least drd_job_missed_runs_total "$SNAP" 1
h_wait_until 30 "snapshots resume" at_least drd_job_runs_total "$SNAP" 1

h_log "the other site goes away and comes back"
site_down() { [[ "$(metric drd_site_up 'cluster="primary"')" == 0 ]]; }
site_up() { [[ "$(metric drd_site_up 'cluster="primary"')" == 1 ]]; }
not_ready() { [[ "$(code /readyz)" == 503 ]]; }
h_etcd_stop primary
h_wait_until 30 "drd_site_up 0" site_down
h_wait_until 30 "/readyz 503: replication is not streaming" not_ready
h_assert_contains "$(get /readyz)" "replicate apps" "/readyz names the job"
h_etcd_start primary "$H_TMP/primary"
h_wait_until 30 "drd_site_up 1" site_up
h_wait_until 90 "ready again" ready

h_log "SIGTERM: drains and exits 0"
h_stop drd
h_assert_eq "$DRD_STATUS" 0 "exit status after SIGTERM (log: $(tail -n 5 "$DRD_LOG"))"
grep -q "drd run: stopped" "$DRD_LOG" || h_fail "no clean stop in the log"
h_run_drd 30 status --config "$H_TMP/drd.yaml"
h_assert_eq "$rc" 4 "drd status with the daemon down: EUNAVAILABLE"
h_assert_contains "$out" "daemon: NOT RUNNING" "says so"
h_assert_contains "$out" "snapshot primary: last success 20" "and what state_dir recorded"
h_pass
