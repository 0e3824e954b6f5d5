#!/usr/bin/env bash
# Emergency failover and failback in exact mode:
#  - a writer on the primary east records every acknowledged put and its time; drd run replicates
#    (and records the loss window: the last applied revision and time, when west was last caught
#    up, when east last answered); west's etcd is stopped (SIGSTOP) so that replication falls
#    behind while drd still hears east; kill -9 of east's etcd; drd failover --emergency (without
#    --force: refused) --force promotes west at the last revision it applied (epoch 1), needing
#    nothing from east, and records RPO in seconds: at least the span of the acknowledged writes
#    west lacks, at most the time west's etcd was stopped plus the recorder's probe period;
#  - east comes back (its writes that never reached west still on it); drd failback fences it,
#    lists what it wrote after the promoted revision into divergent.tsv (exactly the acknowledged
#    writes missing on west) and records the RPO in revisions, which equals that count; the step
#    that makes east a standby waits, saying how to reseed it (shown by drd runbook list), goes
#    on by itself once east is reseeded from west, and reverse replication runs;
#  - a planned switchover then returns the roles (epoch 2, east).
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$H_DIR/emergency.sh"

h_tmpdir
cd "$H_TMP"
h_etcd_start east "$H_TMP/east"
for i in $(seq 1 30); do h_etcdctl east put "/registry/pods/default/p$i" "pod$i" >/dev/null; done
h_etcd_reserve west
h_run_drd 60 replicate seed --source "$EAST_URL" --data-dir "$H_TMP/west" --name west \
    --initial-cluster "$WEST_INITIAL_CLUSTER" --initial-advertise-peer-urls "$WEST_PEER_URL"
h_assert_eq "$rc" 0 "seed: $err"
h_etcd_start west "$H_TMP/west"
em_config "mode: exact"
em_write_and_stall /w/
em_kill
em_failover
em_missing /w/
em_check_rpo_seconds
h_etcdctl west put /after/failover yes >/dev/null || h_fail "west refuses writes after promotion"

# east comes back; failback: fence, list, wait for the reseed
h_etcd_start east "$H_TMP/east"
h_bg failback "$(h_drd_path)" failback --config drd.yaml
h_wait_until 60 "failback waiting for the reseed" bash -c "'$(h_drd_path)' runbook list --config '$H_TMP/drd.yaml' 2>/dev/null | grep -q 'waiting: reseed east from west'"
run=$(h_drd runbook list --config drd.yaml | awk '/failback/ {print $1}')
h_assert_contains "$(h_etcdctl east alarm list)" "alarm:CORRUPT" "east fenced"
em_check_divergent "$run" /w/
# reseed east from west
h_etcd_stop east
mv "$H_TMP/east" "$H_TMP/east.diverged"
h_run_drd 60 replicate seed --source "$WEST_URL" --data-dir "$H_TMP/east" --name east \
    --initial-cluster "$EAST_INITIAL_CLUSTER" --initial-advertise-peer-urls "$EAST_PEER_URL"
h_assert_eq "$rc" 0 "reseed east: $err"
h_etcd_start east "$H_TMP/east"
h_wait_exit failback 120 || h_fail "failback: $(tail -5 "$FAILBACK_LOG")"
h_assert_contains "$(cat "$FAILBACK_LOG")" "run $run: done" "failback done"
h_assert_eq "$(h_etcdctl east get --print-value-only /after/failover)" yes "east follows west"
# and the roles back
h_run_drd 300 failover --config drd.yaml --planned
h_assert_eq "$rc" 0 "switchover back: $err"
h_assert_contains "$(h_etcdctl east get --print-value-only /drd/epoch)" '"epoch":2,"primary":"east"' "epoch 2"
h_pass
