#!/usr/bin/env bash
# The alerting rules and the dashboard (docs/deploy/prometheus/) against a running daemon: drd run
# with every kind of job (a peer too, and a failover pair: its epoch, the encryption keys the
# standby's values need) against real etcd servers and a file:// store; its /metrics
# passes `promtool check metrics`; a real Prometheus scrapes it with the shipped prometheus.yml
# and loads the shipped rules; then every selector of every rule and
# dashboard panel must match scraped series, every label an annotation names must be on them,
# every rule must evaluate without error, and no alert may be pending while all is well. Then
# faults, each of which must put its alert in pending state: the keyring readable by others
# (DrdKeyMaterialUnreadable: the snapshot job fails with DR_EAUTH), and the primary etcd stopped
# (DrdSiteDown, DrdStandbyNotStreaming), the volume's destination stopped (DrdVolumeOutOfSync),
# and values encrypted with a key the standby's EncryptionConfiguration lacks
# (DrdEncryptionKeyMissing).
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/volume.sh"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROM_DIR=$ROOT/docs/deploy/prometheus
CHECK=$ROOT/tests/deploy/check_monitoring.py
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
    h_fail "prometheus and promtool are missing: bash scripts/deps.sh installs them"

h_tmpdir
v_setup
mkdir -p "$H_TMP/vol"
seq 1 1000 >"$H_TMP/vol/data"
v_serve volsrv "$H_TMP/volumes" --psk-file "$PSK"
export DRD_CATALOG_DIR=$H_TMP/catalog
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
h_etcdctl primary put /registry/pods/default/a 1 >/dev/null
h_etcdctl primary put /registry/secrets/default/s k8s:enc:aesgcm:v1:key1:xxxxxxxx >/dev/null
cat >"$H_TMP/enc.yaml" <<'YAML'
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm: { keys: [{ name: key1, secret: c2VjcmV0IGlzIHNlY3VyZQ== }] }
YAML
chmod 600 "$H_TMP/enc.yaml"
h_drd key generate --out "$H_TMP/keys" >/dev/null
h_free_port PORT
LISTEN=127.0.0.1:$PORT
mkdir -p "$H_TMP/store"
cat >"$H_TMP/drd.yaml" <<YAML
listen: $LISTEN
state_dir: $H_TMP/state
grace: 20s
clusters:
  primary: { endpoints: [$PRIMARY_URL] }
  standby: { endpoints: [$STANDBY_URL] }
stores:
  main: { url: "file://$H_TMP/store", key_file: $H_TMP/keys }
replicate:
  - { name: apps, mode: filtered, source: primary, target: standby, prefixes: [/registry/],
      max_lag: 30s, verify: 3s }
snapshots:
  - { name: primary, cluster: primary, store: main, schedule: "@every 3s", segments: 2s,
      retention: { keep_last: 5 } }
drills:
  - { name: proof, store: main, schedule: "@every 5s" }
peers: # the other site's drd: here this one itself, which answers (drd_site_up{site})
  self: { url: "http://$LISTEN", interval: 2s, timeout: 1s }
volumes:
  - { name: pvc-data, role: push, source: $H_TMP/vol, to: "$V_ADDR", psk_file: $PSK,
      schedule: "@every 2s" }
failover:
  primary: primary
  standby: standby
  replicate: apps
  encryption_config: $H_TMP/enc.yaml
  encryption_scan: 2s
YAML

get() { curl -s --max-time 5 "http://$LISTEN$1"; }
metric() { # NAME{LABELS} -> integer part of the value, 0 when absent
    local v
    v=$(get /metrics | awk -v k="$1" '$1 == k { print $2 }')
    echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}
at_least() { (($(metric "$1") >= $2)); }

h_bg drd h_drd run --config "$H_TMP/drd.yaml"
h_wait_until 60 "a drill passes" at_least 'drd_job_last_success_timestamp_seconds{kind="drill",name="proof"}' 1
h_wait_until 60 "the store's restorable point" at_least 'drd_store_newest_revision{store="main"}' 1
h_wait_until 30 "verified" at_least 'drd_replicate_verified_revision{name="apps"}' 1
h_wait_until 30 "a volume sync" at_least 'drd_volume_last_sync_timestamp_seconds{name="pvc-data"}' 1
h_wait_until 30 "the standby's keys scanned" at_least 'drd_encryption_key_objects{cluster="standby",provider="aesgcm",key="key1"}' 1

h_log "promtool check metrics on a scrape"
get /metrics >"$H_TMP/scrape.txt"
lint=$(promtool check metrics <"$H_TMP/scrape.txt" 2>&1) || h_fail "promtool check metrics: $lint"

h_log "a real Prometheus with the shipped scrape config and rules"
h_free_port PROM_PORT
python3 - "$PROM_DIR/prometheus.yml" "$H_TMP/prometheus.yml" "$LISTEN" "$PROM_DIR" <<'PY'
import sys, yaml
src, dst, target, d = sys.argv[1:]
c = yaml.safe_load(open(src))
c['global'] = {'scrape_interval': '1s', 'evaluation_interval': '1s'}
c['rule_files'] = [d + '/' + f for f in c['rule_files']]
(job,) = [j for j in c['scrape_configs'] if j['job_name'] == 'drd']
job['static_configs'] = [{'targets': [target]}]
yaml.safe_dump(c, open(dst, 'w'))
PY
h_bg prom prometheus --config.file="$H_TMP/prometheus.yml" --storage.tsdb.path="$H_TMP/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT"
PROM=http://127.0.0.1:$PROM_PORT
q() { curl -s --max-time 5 "$PROM/api/v1/query" --data-urlencode "query=$1" | jq -r '.data.result | length'; }
has() { [[ "$(q "$1")" -ge 1 ]] 2>/dev/null; }
h_wait_until 60 "Prometheus has scraped drd's drill RTO" has 'drd_drill_rto_seconds{name="proof"}'
evaluated() { # the rule group has been evaluated
    local n
    n=$(curl -s --max-time 5 "$PROM/api/v1/rules" |
        jq '[.data.groups[] | select(.lastEvaluation > "2000")] | length')
    [[ "$n" -ge 1 ]] 2>/dev/null
}
h_wait_until 30 "rules evaluated" evaluated
sleep 3

h_log "every selector matches scraped series; every rule evaluates"
out=$(python3 "$CHECK" live "$PROM" "$PROM_DIR/drd-alerts.yaml" "$PROM_DIR/drd-dashboard.json" 2>&1) ||
    h_fail "rules and dashboard against the scrape:
$out"
alerts=$(python3 "$CHECK" alerts "$PROM")
h_assert_eq "$alerts" "" "no alert pending or firing while all is well"

pending() { grep -q "^$1 " <<<"$(python3 "$CHECK" alerts "$PROM")"; }

h_log "fault: the keyring readable by others"
chmod 0644 "$H_TMP/keys"
h_wait_until 60 "DrdKeyMaterialUnreadable pending" pending DrdKeyMaterialUnreadable
# the drill (every 5s) may fail first; the snapshot (every 3s) follows within a run or two
key_alert_names_snapshot() {
    grep -q '^DrdKeyMaterialUnreadable .*"kind": "snapshot", "name": "primary"' <<<"$(python3 "$CHECK" alerts "$PROM")"
}
h_wait_until 30 "the key alert names the snapshot job" key_alert_names_snapshot
chmod 0600 "$H_TMP/keys"
gone() { ! pending "$1"; }
h_wait_until 60 "DrdKeyMaterialUnreadable gone once the mode is right" gone DrdKeyMaterialUnreadable

h_log "fault: the volume's destination stopped"
h_stop volsrv
h_wait_until 60 "DrdVolumeOutOfSync pending" pending DrdVolumeOutOfSync

h_log "fault: values encrypted with a key the standby's EncryptionConfiguration lacks"
h_etcdctl primary put /registry/secrets/default/t k8s:enc:aescbc:v1:old:xxxxxxxx >/dev/null
h_wait_until 60 "DrdEncryptionKeyMissing pending" pending DrdEncryptionKeyMissing

h_log "fault: the primary etcd stopped"
h_etcd_stop primary
h_wait_until 60 "DrdSiteDown pending" pending DrdSiteDown
h_wait_until 60 "DrdStandbyNotStreaming pending" pending DrdStandbyNotStreaming
h_stop drd
h_stop prom
h_pass
