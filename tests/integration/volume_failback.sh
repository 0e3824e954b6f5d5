#!/usr/bin/env bash
# drd replicate volume failover and failback: the standby's latest copy is promoted; the new
# primary changes a little; failback runs `serve` on the old primary over the data it still holds
# (moved, not copied, under ROOT/NAME/current) and `push` from the new primary: only the changes
# cross, and the old primary ends equal to the new one. The server's /metrics shows the sync.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/volume.sh"

v_setup
A=$H_TMP/site-a/data
mkdir -p "$A/db" "$A/logs"
for i in $(seq 1 8); do head -c 3000000 /dev/urandom >"$A/db/seg$i"; done
seq 1 300000 >"$A/logs/app.log"
total=$(du -sb "$A" | cut -f1)

h_log "replication A -> B, with /metrics"
h_free_port MPORT
v_serve standby "$H_TMP/site-b" --psk-file "$PSK" --status-listen "127.0.0.1:$MPORT"
v_push --source "$A" --name app
h_assert_eq "$rc" 0 "push A -> B (stderr: $err)"
metrics=$(curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics")
h_assert_contains "$metrics" 'drd_volume_out_of_sync{name="app"} 0' "in sync on /metrics"
h_assert_contains "$metrics" 'drd_volume_syncs_total{name="app"} 1' "one sync on /metrics"
grep -q '^drd_volume_last_sync_timestamp_seconds{name="app"} 1[0-9]*' <<<"$metrics" ||
    h_fail "no last sync time on /metrics: $metrics"
grep -q '^drd_volume_last_sync_bytes_received{name="app"} [1-9]' <<<"$metrics" ||
    h_fail "no bytes on /metrics: $metrics"

h_log "failover: promote B's latest copy; the new primary writes"
h_run_drd 120 replicate volume promote --root "$H_TMP/site-b" --name app --to "$H_TMP/site-b/live"
h_assert_eq "$rc" 0 "promote (stderr: $err)"
B=$H_TMP/site-b/live
v_compare "$A" "$B"
printf 'new row\n' >>"$B/logs/app.log"
head -c 30000 /dev/urandom | dd of="$B/db/seg3" bs=1 seek=1000000 conv=notrunc status=none
head -c 50000 /dev/urandom >"$B/db/seg9"
rm "$B/db/seg8"
h_stop standby

h_log "failback: serve on A over the data it holds, push from B: only the changes cross"
mkdir -p "$H_TMP/site-a/root/app"
mv "$A" "$H_TMP/site-a/root/app/current"
v_serve old-primary "$H_TMP/site-a/root" --psk-file "$PSK" --no-sync
v_push --source "$B" --name app --verbose
h_assert_eq "$rc" 0 "push B -> A (stderr: $err)"
sent=$(v_field "$out" sent)
h_log "failback sent $sent bytes for a tree of $total bytes"
((sent < total / 20)) || h_fail "failback sent $sent bytes of $total: a full copy"
h_assert_contains "$out" "send delta of db/seg3" "the changed file goes as a delta"
h_assert_contains "$out" "delete db/seg8" "the deleted file is deleted"
v_compare "$B" "$H_TMP/site-a/root/app/current"
v_compare "$B" "$H_TMP/site-a/root/app/$(readlink "$H_TMP/site-a/root/app/latest")"
h_pass
