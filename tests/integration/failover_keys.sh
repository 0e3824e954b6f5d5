#!/usr/bin/env bash
# The check step's encryption-key scan: the standby holds values the API server encrypted with
# keys aesgcm:key1 and aescbc:old (and plain ones); with an EncryptionConfiguration that lacks
# aescbc:old, drd failover --planned --dry-run refuses, naming the key and how many objects need
# it; with the key added it passes and lists the keys in use with their counts. 600 more key1
# values (configmaps) make the scan read more than one page (dr_enc_keys_scan, 500 a page).
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
cd "$H_TMP"
h_etcd_start east "$H_TMP/east"
h_etcd_start west "$H_TMP/west"
for i in $(seq 1 12); do h_etcdctl east put "/registry/secrets/default/s$i" "k8s:enc:aesgcm:v1:key1:$(head -c 20 /dev/urandom | base64)" >/dev/null; done
for i in $(seq 1 3); do h_etcdctl east put "/registry/secrets/kube-system/o$i" "k8s:enc:aescbc:v1:old:xxxxxxxx" >/dev/null; done
for i in $(seq 1 5); do h_etcdctl east put "/registry/pods/default/p$i" "plain$i" >/dev/null; done
h_etcdctl east put /registry/configmaps/x "k8s:enc:not a key" >/dev/null
for t in $(seq 1 5); do # etcdctl txn: no compares, the puts, no failure ops (128 ops at most)
    { echo; for i in $(seq 1 120); do echo "put /registry/configmaps/default/c$t-$i k8s:enc:aesgcm:v1:key1:v"; done; echo; echo; } >txn.in
    h_etcdctl east txn <txn.in >/dev/null
done
cat >enc.yaml <<'YAML'
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - { name: key1, secret: c2VjcmV0IGlzIHNlY3VyZQ== }
      - identity: {}
YAML
chmod 600 enc.yaml # it holds the encryption keys: a secret, refused readable by others
RB=$H_REPO/policies/runbooks
cat >drd.yaml <<YAML
state_dir: $H_TMP/state
clusters:
  east: { endpoints: [$EAST_URL] }
  west: { endpoints: [$WEST_URL] }
replicate:
  - { name: dr, mode: filtered, source: east, target: west, prefixes: [/registry/] }
failover:
  primary: east
  standby: west
  replicate: dr
  planned: $RB/planned-switchover.yaml
  emergency: $RB/emergency-failover.yaml
  failback: $RB/failback.yaml
  encryption_config: $H_TMP/enc.yaml
YAML
h_run_drd 60 replicate etcd --mode filtered --prefix /registry/ --name dr --source "$EAST_URL" --target "$WEST_URL" --until-caught-up
h_assert_eq "$rc" 0 "catch up: $err"
h_run_drd 60 failover --config drd.yaml --planned --dry-run
h_assert_eq "$rc" 3 "refused: a key in use is missing ($err)"
h_assert_contains "$err" "west's EncryptionConfiguration ($H_TMP/enc.yaml) lacks aescbc:old (3 objects): 3 objects would be unreadable after the promotion" "names the key and the count"
# the key added (as a rotation keeps the old ones): accepted, with the counts
sed -i 's|            - { name: key1, secret: c2VjcmV0IGlzIHNlY3VyZQ== }|&\n      - aescbc:\n          keys:\n            - { name: old, secret: b2xkIGtleSBvbGQga2V5IG9sZCBrZXkgb2xkIGtleQ== }|' enc.yaml
h_run_drd 60 failover --config drd.yaml --planned --dry-run
h_assert_eq "$rc" 0 "accepted with every key: $err"
h_assert_contains "$out" "encryption keys in use on west" "scan reported"
h_assert_contains "$out" "aesgcm:key1 (612), aescbc:old (3); all offered by its EncryptionConfiguration" "counts per key"
h_assert_eq "$(grep -c secret <<<"$out$err" || true)" 0 "no secret printed"
h_pass
