#!/usr/bin/env bash
# drd run's /metrics with several replicate jobs from one source: two filtered jobs (different
# prefixes) and an exact one into a standby it may not write (an alarm), all from one primary.
# The scrape passes `promtool check metrics` (each family's HELP and TYPE once, its series
# together), no series appears twice (one drd_site_up per probed cluster), no series carries a
# label "job" (it would clash with Prometheus's own: the jobs' label is name), and the configured
# bounds are exported: drd_replicate_max_lag_seconds (only for a job with max_lag),
# drd_replicate_ready and drd_replicate_alarm as drd replicate etcd exports them,
# drd_job_interval_seconds per scheduled job. drd status prints derived schedules (verify, probe,
# point, a peer's probe) as the config spells durations ("@every 5s", not "@every 5000ms").
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
command -v promtool >/dev/null || h_fail "promtool is missing: bash scripts/deps.sh installs it"

h_tmpdir
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
h_etcdctl primary put /registry/pods/default/a 1 >/dev/null
h_etcdctl primary put /registry/secrets/default/s 1 >/dev/null
h_drd key generate --out "$H_TMP/keys" >/dev/null
h_free_port PORT
LISTEN=127.0.0.1:$PORT
h_free_port DEAD_PORT # the other site's drd: nothing listens there
mkdir -p "$H_TMP/store"
cat >"$H_TMP/drd.yaml" <<YAML
listen: $LISTEN
state_dir: $H_TMP/state
clusters:
  primary: { endpoints: [$PRIMARY_URL] }
  standby: { endpoints: [$STANDBY_URL] }
stores:
  main: { url: "file://$H_TMP/store", key_file: $H_TMP/keys }
replicate:
  - { name: pods, mode: filtered, source: primary, target: standby, prefixes: [/registry/pods/],
      max_lag: 30s, verify: 7s }
  - { name: secrets, mode: filtered, source: primary, target: standby,
      prefixes: [/registry/secrets/], verify: 0s }
  - { name: whole, mode: exact, source: primary, target: standby, verify: 0s }
snapshots:
  - { name: nightly, cluster: primary, store: main, schedule: "0 3 * * *" }
drills:
  - { name: proof, store: main, schedule: "@every 1h" }
peers:
  other: { url: "http://127.0.0.1:$DEAD_PORT", interval: 4s, timeout: 1s }
YAML

get() { curl -s --max-time 5 "http://$LISTEN$1"; }
has() { grep -qF "$1" <<<"$(get /metrics)"; }
h_bg drd h_drd run --config "$H_TMP/drd.yaml"
h_wait_until 60 "pods ready" has 'drd_replicate_ready{name="pods"} 1'
h_wait_until 60 "secrets ready" has 'drd_replicate_ready{name="secrets"} 1'
# whole's code: DR_ENOTSEEDED, or DR_EDIVERGED once the filtered jobs have written to the standby
in_alarm() { get /metrics | grep -qE '^drd_replicate_alarm\{name="whole",code="DR_[A-Z]+"\} 1$'; }
h_wait_until 60 "whole in alarm" in_alarm
h_wait_until 30 "the primary probed" has 'drd_site_up{cluster="primary"} 1'
get /metrics >"$H_TMP/scrape.txt"

h_log "promtool check metrics"
lint=$(promtool check metrics <"$H_TMP/scrape.txt" 2>&1) || h_fail "promtool check metrics: $lint"

h_log "no series twice, no label job"
dups=$(grep -v '^#' "$H_TMP/scrape.txt" | awk '{ print $1 }' | sort | uniq -d)
h_assert_eq "$dups" "" "series printed twice"
h_assert_eq "$(grep -c '^drd_site_up{cluster=' "$H_TMP/scrape.txt")" 1 "one drd_site_up for the one probed cluster"
h_assert_eq "$(grep -c '^drd_site_last_contact_seconds{cluster=' "$H_TMP/scrape.txt")" 1 "one drd_site_last_contact_seconds"
h_assert_contains "$(cat "$H_TMP/scrape.txt")" 'drd_site_up{site="other"} 0' "the peer"
if grep -E '[{,]job="' "$H_TMP/scrape.txt"; then h_fail "a series labelled job"; fi
for f in HELP TYPE; do
    n=$(grep "^# $f " "$H_TMP/scrape.txt" | awk '{ print $3 }' | sort | uniq -d)
    h_assert_eq "$n" "" "families with # $f twice"
done
h_assert_contains "$(cat "$H_TMP/scrape.txt")" 'drd_job_runs_total{kind="replicate",name="pods"}' "drd_job_* labelled name"

h_log "the configured bounds"
scrape=$(cat "$H_TMP/scrape.txt")
h_assert_contains "$scrape" 'drd_replicate_max_lag_seconds{name="pods"} 30.000' "max_lag of pods"
if grep -q 'drd_replicate_max_lag_seconds{name="secrets"}' <<<"$scrape"; then
    h_fail "a job without max_lag has a max_lag series"
fi
h_assert_contains "$scrape" 'drd_replicate_alarm{name="pods",code=""} 0' "no alarm on pods"
h_assert_contains "$scrape" 'drd_replicate_ready{name="whole"} 0' "whole is not ready"
h_assert_contains "$scrape" 'drd_job_interval_seconds{kind="snapshot",name="nightly",store="main"} 86400.000' "the snapshot's period, with its store"
h_assert_contains "$scrape" 'drd_job_interval_seconds{kind="drill",name="proof"} 3600.000' "the drill's period"
h_assert_contains "$scrape" 'drd_job_interval_seconds{kind="verify",name="pods"} 7.000' "verify's period"
h_assert_contains "$scrape" 'drd_job_interval_seconds{kind="probe",name="pods"} 5.000' "the probe's period"

h_log "a reload keeps the alarm shown (no scrape without it while the job restarts)"
kill -HUP "$DRD_PID"
for i in $(seq 1 40); do
    scrape=$(get /metrics)
    grep -qE '^drd_replicate_alarm\{name="whole",code="DR_[A-Z]+"\} 1$' <<<"$scrape" ||
        h_fail "scrape $i after SIGHUP without the alarm of whole: $(grep '^drd_replicate_alarm' <<<"$scrape" | tr '\n' ' ')"
    sleep 0.1
done
grep -q "config reloaded" "$DRD_LOG" || h_fail "no reload within the 40 scrapes: $(tail -n 5 "$DRD_LOG")"

h_log "drd status spells derived schedules as durations"
h_run_drd 30 status --config "$H_TMP/drd.yaml"
h_assert_eq "$rc" 0 "drd status (stderr: $err)"
h_assert_contains "$out" "schedule @every 5s," "the probe's schedule"
h_assert_contains "$out" "schedule @every 7s," "verify's schedule"
h_assert_contains "$out" "schedule @every 10s," "the store's point"
h_assert_contains "$out" "schedule @every 4s," "the peer's probe"
if grep -qE '@every [0-9]+ms' <<<"$out"; then h_fail "a schedule in ms: $out"; fi
h_stop drd
h_pass
