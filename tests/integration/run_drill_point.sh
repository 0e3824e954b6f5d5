#!/usr/bin/env bash
# drd run's drill restores the newest restorable point: with snapshots rare and segments every
# second, the drill's point is the full snapshot the segments job starts with plus the segments
# after it (replayed into the throw-away etcd), at the newest revision written before it; the
# restored keys per resource show in /status, drd status and drd_drill_keys; with the daemon
# down, drd status shows the store's newest restorable point from its catalog.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
export DRD_CATALOG_DIR=$H_TMP/catalog
h_etcd_start primary "$H_TMP/primary"
h_drd key generate --out "$H_TMP/keys" >/dev/null
mkdir -p "$H_TMP/store"
h_free_port PORT
cat >"$H_TMP/drd.yaml" <<YAML
listen: 127.0.0.1:$PORT
state_dir: $H_TMP/state
clusters:
  primary: { endpoints: [$PRIMARY_URL] }
stores:
  main: { url: "file://$H_TMP/store", key_file: $H_TMP/keys }
snapshots:
  - { name: primary, cluster: primary, store: main, schedule: "@every 24h", segments: 1s }
drills:
  - { name: proof, store: main, schedule: "@every 4s" }
YAML
get() { curl -s --max-time 5 "http://127.0.0.1:$PORT$1"; }
up() { [[ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")" == 200 ]]; }
drill_detail() { get /status | jq -r '.jobs[] | select(.kind == "drill") | .last_detail // ""'; }
drill_at() { [[ "$(drill_detail)" == "revision $1 ("*" + "[1-9]*" segments), restore time"* ]]; }

h_bg drd h_drd run --config "$H_TMP/drd.yaml"
h_wait_until 30 "status server" up
for i in $(seq 1 20); do h_etcdctl primary put "/registry/pods/p$i" "$i" >/dev/null; done
for i in 1 2 3; do h_etcdctl primary put "/registry/secrets/ns/s$i" "k8s:enc:aesgcm:v1:key2:ct$i" >/dev/null; done
rev=$(h_etcd_revision primary)
h_wait_until 60 "a drill of revision $rev through segments" drill_at "$rev"
h_log "drill: $(drill_detail)"
# the encryption keys the restored data needs, in the job's status
h_assert_contains "$(drill_detail)" "; encryption keys: aesgcm:key2 (3); 23 values read" "drill detail names the keys in use"
# the drill's restored keys per resource: /status, drd status, and capped metrics
h_assert_eq "$(get /status | jq -c '.jobs[] | select(.kind == "drill") | [.keys.revision, .keys.restored.resources.pods, .keys.snapshot != null]')" "[$rev,20,true]" "/status: restored pods at the point, and the snapshot's"
h_assert_contains "$(get /metrics)" 'drd_drill_keys{name="proof",resource="pods"} 20' "drd_drill_keys"
h_assert_contains "$(get /metrics)" 'drd_drill_keys{name="proof",resource="(other)"} 0' "other keys"
h_run_drd 30 status --config "$H_TMP/drd.yaml"
h_assert_contains "$out" "keys restored at revision $rev: 20 pods" "drd status"
h_assert_contains "$out" "recorded with the snapshot at revision " "and the snapshot's"
h_stop drd
h_assert_eq "$DRD_STATUS" 0 "SIGTERM exit"

h_log "the daemon down: drd status falls back to the store's catalog"
h_run_drd 30 status --config "$H_TMP/drd.yaml"
h_assert_eq "$rc" 4 "EUNAVAILABLE (stderr: $err)"
[[ "$out" =~ store\ main:\ newest\ restorable\ revision\ ([0-9]+),\ taken\ 20[0-9-]+T[0-9:]+Z\ \(([0-9]+)s\ ago\),\ from\ its\ catalog\ $H_TMP/state/catalog-main.db ]] ||
    h_fail "no point from the catalog in: $out"
((BASH_REMATCH[1] >= rev && BASH_REMATCH[2] < 120)) || h_fail "point ${BASH_REMATCH[1]} (${BASH_REMATCH[2]}s old), want >= $rev"
h_run_drd 30 status --config "$H_TMP/drd.yaml" --json
h_assert_eq "$rc" 4 "--json: EUNAVAILABLE"
h_assert_eq "$(jq -r '.daemon' <<<"$out")" unreachable "--json says so"
(($(jq '.stores[] | select(.name == "main") | .newest_revision' <<<"$out") >= rev)) || h_fail "--json: $out"
# a store whose catalog is not there (yet): said, and nothing created
sed -i "s|^  main: |  spare: { url: \"file://$H_TMP/spare\", key_file: $H_TMP/keys }\n  main: |" "$H_TMP/drd.yaml"
h_run_drd 30 status --config "$H_TMP/drd.yaml"
h_assert_contains "$out" "store spare: no catalog at $H_TMP/state/catalog-spare.db yet" "a store without a catalog"
[[ ! -e "$H_TMP/state/catalog-spare.db" ]] || h_fail "status created a catalog"
h_pass
