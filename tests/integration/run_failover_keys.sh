#!/usr/bin/env bash
# drd run's encryption-key alarm and the failover pair's roles (issue 14), with real etcd:
#  - west, the standby, holds 612 values the API server encrypted with aesgcm:key1 (more than
#    one page of the scan) and plain ones; its EncryptionConfiguration offers key1: the scan at
#    start counts them (drd_encryption_key_objects), drd_encryption_key_missing is 0, /readyz
#    answers 200, drd status lists them; drd_role and drd_epoch say east is the primary at
#    epoch 0; the scrape passes promtool check metrics;
#  - 3 values encrypted with aescbc:old reach west through replication: the next periodic scan
#    (encryption_scan: 2s) exports drd_encryption_key_missing{key="old"} 3, /readyz answers 503
#    naming the key and the count, /status and drd status say so; a real drd failover --planned
#    is refused by its check step, and the run's figures are in /metrics (status failed, no
#    RPO and RTO series: not known);
#  - SIGHUP with the interval raised to 1h: the reload's own scan finds the key still missing;
#    the key added to the EncryptionConfiguration: nothing changes until the next SIGHUP, whose
#    scan finds every key offered: ready again, missing 0;
#  - no secret of the EncryptionConfiguration is in the metrics, the status or the log.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
command -v promtool >/dev/null || h_fail "promtool is missing: bash scripts/deps.sh installs it"

h_tmpdir
cd "$H_TMP"
h_etcd_start east "$H_TMP/east"
h_etcd_start west "$H_TMP/west"
for i in $(seq 1 12); do h_etcdctl east put "/registry/secrets/default/s$i" "k8s:enc:aesgcm:v1:key1:$(head -c 20 /dev/urandom | base64)" >/dev/null; done
for i in $(seq 1 5); do h_etcdctl east put "/registry/pods/default/p$i" "plain$i" >/dev/null; done
for t in $(seq 1 5); do # etcdctl txn: no compares, the puts, no failure ops (128 ops at most)
    { echo; for i in $(seq 1 120); do echo "put /registry/configmaps/default/c$t-$i k8s:enc:aesgcm:v1:key1:v"; done; echo; echo; } >txn.in
    h_etcdctl east txn <txn.in >/dev/null
done
KEY1=c2VjcmV0IGlzIHNlY3VyZQ==
OLD=b2xkIGtleSBvbGQga2V5IG9sZCBrZXkgb2xkIGtleQ==
cat >enc.yaml <<YAML
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets, configmaps]
    providers:
      - aesgcm:
          keys:
            - { name: key1, secret: $KEY1 }
      - identity: {}
YAML
chmod 600 enc.yaml # it holds the encryption keys: a secret, refused readable by others
h_free_port PORT
LISTEN=127.0.0.1:$PORT
config() { # $1: failover.encryption_scan
    cat >drd.yaml <<YAML
listen: $LISTEN
state_dir: $H_TMP/state
clusters:
  east: { endpoints: [$EAST_URL] }
  west: { endpoints: [$WEST_URL] }
replicate:
  - { name: dr, mode: filtered, source: east, target: west, prefixes: [/registry/], max_lag: 30s }
failover:
  primary: east
  standby: west
  replicate: dr
  planned: $H_REPO/policies/runbooks/planned-switchover.yaml # drd failover --planned, below
  encryption_config: $H_TMP/enc.yaml
  encryption_scan: $1
YAML
}
config 2s
# west holds the values before the daemon's first scan
h_run_drd 60 replicate etcd --mode filtered --prefix /registry/ --name dr --source "$EAST_URL" --target "$WEST_URL" --until-caught-up
h_assert_eq "$rc" 0 "catch up: $err"

get() { curl -s --max-time 5 "http://$LISTEN$1"; }
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$LISTEN$1"; }
has() { grep -qxF "$1" <<<"$(get /metrics)"; }
ready() { [[ "$(code /readyz)" == 200 ]]; }
not_ready() { [[ "$(code /readyz)" == 503 ]]; }
K1='{cluster="west",provider="aesgcm",key="key1"}'
OLDK='{cluster="west",provider="aescbc",key="old"}'

h_log "every key in use offered: counted, ready"
h_bg drd h_drd run --config drd.yaml
h_wait_until 60 "key1 counted on west" has "drd_encryption_key_objects$K1 612"
h_wait_until 60 "ready" ready
scrape=$(get /metrics)
h_assert_contains "$scrape" "drd_encryption_key_missing$K1 0" "key1 is offered"
h_wait_until 30 "the roles read" has 'drd_epoch 0'
scrape=$(get /metrics)
h_assert_contains "$scrape" 'drd_role{cluster="east",role="primary"} 1' "east is the primary"
h_assert_contains "$scrape" 'drd_role{cluster="west",role="standby"} 1' "west is the standby"
h_assert_contains "$scrape" 'drd_role{cluster="west",role="primary"} 0' "west is not the primary"
h_assert_contains "$scrape" 'drd_cluster_epoch{cluster="west"} 0' "west holds no epoch record"
if grep -q '^drd_runbook_last' <<<"$scrape"; then h_fail "runbook series before any run"; fi
lint=$(promtool check metrics <<<"$scrape" 2>&1) || h_fail "promtool check metrics: $lint"
h_run_drd 30 status --config drd.yaml
h_assert_eq "$rc" 0 "drd status: $err"
h_assert_contains "$out" "roles (epoch 0): east primary (holds epoch 0), west standby (holds epoch 0)" "drd status: roles"
h_assert_contains "$out" "encryption keys in use on west at revision" "drd status: the scan"
h_assert_contains "$out" "aesgcm:key1 (612)" "drd status: the count"
h_assert_contains "$out" "all offered by its EncryptionConfiguration $H_TMP/enc.yaml" "drd status: compared"

h_log "a key missing from the EncryptionConfiguration: the alarm"
for i in $(seq 1 3); do h_etcdctl east put "/registry/secrets/kube-system/o$i" "k8s:enc:aescbc:v1:old:xxxxxxxx" >/dev/null; done
h_wait_until 60 "old counted missing" has "drd_encryption_key_missing$OLDK 3"
h_wait_until 30 "/readyz 503" not_ready
why="west's EncryptionConfiguration ($H_TMP/enc.yaml) lacks aescbc:old (3 objects): 3 objects would be unreadable after the promotion"
h_assert_contains "$(get /readyz)" "keys failover: $why" "/readyz names the key and the count"
h_assert_contains "$(get /metrics)" "drd_encryption_key_missing$K1 0" "key1 still offered"
h_assert_eq "$(get /status | jq -c '.jobs[] | select(.kind == "keys") | .encryption_keys.keys')" \
    '[{"name":"aesgcm:key1","objects":612,"missing":false},{"name":"aescbc:old","objects":3,"missing":true}]' "/status"
h_run_drd 30 status --config drd.yaml
h_assert_contains "$out" "MISSING from its EncryptionConfiguration $H_TMP/enc.yaml: aescbc:old (3 objects)" "drd status: missing"
h_assert_contains "$out" "NOT READY: keys failover: $why" "drd status: not ready"
h_run_drd 60 failover --config drd.yaml --planned
h_assert_eq "$rc" 3 "the switchover is refused by its check step ($err)"
h_assert_contains "$err" "$why" "the check names the key too"
scrape=$(get /metrics)
h_assert_contains "$scrape" 'operation="planned",status="failed",old_primary="east",new_primary="west"} 1' "drd_runbook_last_info"
h_assert_contains "$scrape" 'drd_runbook_last_epoch 1' "the epoch it would have raised"
h_assert_contains "$scrape" 'drd_runbook_last_finish_timestamp_seconds ' "it ended"
if grep -qE '^drd_runbook_last_(rpo|rto)' <<<"$scrape"; then h_fail "RPO/RTO series of a run that promoted nothing"; fi
lint=$(promtool check metrics <<<"$scrape" 2>&1) || h_fail "promtool check metrics: $lint"
run=$(h_drd runbook list --config drd.yaml | awk '{print $1}' | tail -1)
h_run_drd 30 runbook abort "$run" --config drd.yaml
h_assert_eq "$rc" 0 "abort: $err"
h_assert_eq "$(h_etcdctl east alarm list)" "" "no fence: the check stopped the run first"

h_log "SIGHUP scans again: still missing; the key added, SIGHUP: ready"
reload_scanned() { # $1: the reloads so far; the keys scan after the last of them is done
    awk -v n="$1" '/config reloaded/ { r++; f = 0 } r == n && /job keys failover: done/ { f = 1 } END { exit !(r == n && f) }' "$DRD_LOG"
}
config 1h # no periodic scan within this test from here: only the reloads'
kill -HUP "$DRD_PID"
h_wait_until 60 "the first reload's scan" reload_scanned 1
h_assert_contains "$(get /metrics)" 'drd_job_interval_seconds{kind="keys",name="failover"} 3600.000' "the new interval"
h_assert_contains "$(get /metrics)" "drd_encryption_key_missing$OLDK 3" "still missing after the reload's scan"
not_ready || h_fail "ready with a key missing"
sed -i "s|            - { name: key1, secret: $KEY1 }|&\n      - aescbc:\n          keys:\n            - { name: old, secret: $OLD }|" enc.yaml
sleep 3 # the file alone changes nothing until a scan
not_ready || h_fail "ready again without a scan"
kill -HUP "$DRD_PID"
h_wait_until 60 "the second reload's scan" reload_scanned 2
h_assert_contains "$(get /metrics)" "drd_encryption_key_missing$OLDK 0" "old offered"
h_wait_until 30 "ready again" ready

h_log "no secret printed"
all="$(get /metrics)$(get /status)$(get /status.txt)$(get /readyz)$(cat "$DRD_LOG")"
h_assert_eq "$(grep -cE "$KEY1|$OLD|secret is secure" <<<"$all" || true)" 0 "no key material"
h_stop drd
h_pass
