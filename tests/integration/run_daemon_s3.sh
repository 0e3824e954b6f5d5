#!/usr/bin/env bash
# drd run with its store on a real S3 (Ceph RGW, tests/harness/rgw.sh) against a real primary and
# standby: the standby follows, scheduled snapshots (@every 3s) and their segments land in the
# bucket (seen by drd and, as objects, by curl's own SigV4 listing), retention prunes there,
# a drill of the newest point passes and is in the metrics (result, RTO), the store's newest
# restorable point is on /metrics, and SIGTERM exits 0 leaving no unfinished multipart upload.
# Snapshots and drills never run at once (the daemon's memory peak), nor while the segments job
# takes its base snapshot: one due while the other runs waits, as the log shows.
# The daemon reads its S3 credentials from the file named by s3_credentials: the environment
# variables are unset for it.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/rgw.sh"

h_tmpdir
h_rgw_use
P="daemon-$$-$RANDOM"
STORE="s3://$RGW_BUCKET/$P"
S3=(--s3-endpoint "$RGW_ENDPOINT" --s3-insecure-http --key-file "$H_TMP/keys")
export DRD_CATALOG_DIR=$H_TMP/catalog
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
for i in $(seq 1 50); do h_etcdctl primary put "/registry/pods/default/p-$i" "v$i" >/dev/null; done
h_drd key generate --out "$H_TMP/keys" >/dev/null
(umask 077 && printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
    "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$H_TMP/aws-credentials")
h_free_port PORT
LISTEN=127.0.0.1:$PORT

cat >"$H_TMP/drd.yaml" <<YAML
listen: $LISTEN
state_dir: $H_TMP/state
clusters:
  primary: { endpoints: [$PRIMARY_URL] }
  standby: { endpoints: [$STANDBY_URL] }
stores:
  main: { url: "$STORE", s3_endpoint: "$RGW_ENDPOINT", s3_insecure_http: true, s3_part_size: 5,
          s3_credentials: $H_TMP/aws-credentials, key_file: $H_TMP/keys }
replicate:
  - { name: apps, mode: filtered, source: primary, target: standby, prefixes: [/registry/] }
snapshots:
  - { name: primary, cluster: primary, store: main, schedule: "@every 3s", segments: 1s,
      retention: { keep_last: 3 } }
drills:
  - { name: proof, store: main, schedule: "@every 6s" }
YAML
h_run_drd 30 run --config "$H_TMP/drd.yaml" --check
h_assert_eq "$rc" 0 "config check (stderr: $err)"

get() { curl -s --max-time 5 "http://$LISTEN$1"; }
metric() { # NAME LABELS -> value (integer part), 0 when absent
    local v
    v=$(get /metrics | awk -v k="$1{$2}" '$1 == k { print $2 }')
    echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}
at_least() { (($(metric "$1" "$2") >= $3)); }
count() { # KIND -> objects of that kind drd trusts in the store
    h_drd snapshot list --store "$STORE" "${S3[@]}" --json 2>/dev/null |
        jq --arg k "$1" '[.[] | select(.kind == $k and .status == "ok")] | length'
}
fulls_at_least() { (($(count full) >= $1)); }
a_segment() { (($(count incr) >= 1)); }
standby_has() { [[ "$(h_etcdctl standby get --print-value-only "$1")" == "$2" ]]; }
rgw_keys() { # the bucket's keys under our prefix, listed by curl (an independent S3 client)
    h_rgw_curl GET "$RGW_BUCKET?list-type=2&max-keys=1000&prefix=$P%2F" -f |
        grep -o '<Key>[^<]*</Key>' | sed -e 's|<Key>||; s|</Key>||' || true
}
SNAP='kind="snapshot",name="primary"'
DRILL='kind="drill",name="proof"'

saved_id=$AWS_ACCESS_KEY_ID saved_secret=$AWS_SECRET_ACCESS_KEY
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
h_bg drd h_drd run --config "$H_TMP/drd.yaml"
export AWS_ACCESS_KEY_ID=$saved_id AWS_SECRET_ACCESS_KEY=$saved_secret

h_wait_until 60 "two scheduled snapshots on /metrics" at_least drd_job_last_success_timestamp_seconds "$SNAP" 1
h_wait_until 90 "two snapshots in the bucket" fulls_at_least 2
h_etcdctl primary put /registry/pods/default/late x >/dev/null
h_wait_until 30 "the standby follows" standby_has /registry/pods/default/late x
h_wait_until 60 "a segment in the bucket" a_segment
keys=$(rgw_keys)
h_log "objects under $P: $(wc -l <<<"$keys")"
grep -q -- "-full-" <<<"$keys" || h_fail "curl lists no full snapshot under $P: $keys"
grep -q -- "-incr-" <<<"$keys" || h_fail "curl lists no segment under $P: $keys"

h_wait_until 120 "a drill passes" at_least drd_job_last_success_timestamp_seconds "$DRILL" 1
h_assert_eq "$(metric drd_job_last_result "$DRILL")" 0 "the drill's result"
h_assert_eq "$(metric drd_job_failures_total "$DRILL")" 0 "no failed drill"
grep -q '^drd_drill_rto_seconds{name="proof"} [0-9]' <<<"$(get /metrics)" || h_fail "no drd_drill_rto_seconds"
h_assert_contains "$(get /status | jq -r '.jobs[] | select(.kind == "drill") | .last_detail')" "restore time" \
    "/status names the drilled point"
rev=$(h_etcd_revision primary)
h_wait_until 60 "the store's newest point reaches revision $rev" at_least drd_store_newest_revision 'store="main"' "$rev"

h_log "retention (keep_last 3) prunes in the bucket"
h_wait_until 60 "five snapshot runs" at_least drd_job_runs_total "$SNAP" 5
n=$(count full)
((n <= 4)) || h_fail "$n full snapshots in the bucket with keep_last 3 (one may be on its way)"
h_assert_eq "$(metric drd_job_failures_total "$SNAP")" 0 "no failed snapshot"

h_log "one snapshot or drill at a time"
waited() { grep -q "due; waits for" "$DRD_LOG"; }
h_wait_until 60 "a run that waited for another" waited
# the segments job's base snapshot (the store holds none at start) counts as a snapshot too
overlap=$(awk '
    / job (snapshot|drill) [^ ]+: started$|taking a full snapshot: / { if (n) print "overlap: " $0; n++ }
    / job (snapshot|drill) [^ ]+: (done in|failed after|run skipped)|following from revision/ { n-- }' "$DRD_LOG")
h_assert_eq "$overlap" "" "snapshot and drill runs overlapping in the log"
if grep -q "is running on this host" "$DRD_LOG"; then
    h_fail "a job of the daemon found the store's save lock taken by another of its own jobs"
fi
grep -q "job snapshot primary: started" "$DRD_LOG" || h_fail "no snapshot start in the log"

h_stop drd
h_assert_eq "$DRD_STATUS" 0 "exit status after SIGTERM (log: $(tail -n 5 "$DRD_LOG"))"
pending=$(h_rgw_curl GET "$RGW_BUCKET?prefix=$P%2F&uploads=" -f | grep -o '<Key>[^<]*</Key>' || true)
h_assert_eq "$pending" "" "unfinished multipart uploads after SIGTERM"
h_pass
