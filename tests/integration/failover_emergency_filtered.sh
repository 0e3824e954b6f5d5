#!/usr/bin/env bash
# Emergency failover and failback in filtered mode (two live clusters, /registry/ replicated; the
# exact-mode twin is failover_emergency.sh, the shared steps are tests/harness/emergency.sh):
#  - a writer puts /registry/w/<n> on the primary east and records every acknowledged put and its
#    time; drd run replicates; west's etcd is stopped (SIGSTOP) so that replication falls behind;
#    east also takes a write outside /registry/ (its own key, never replicated, so not lost);
#    kill -9 of east's etcd; drd failover --emergency --force promotes west at its cursor (a
#    revision of east), with the RPO in seconds known at once;
#  - east comes back; drd failback fences it, lists what it wrote after the cursor into
#    divergent.tsv: exactly the acknowledged /registry/ writes missing on west (not its own key),
#    records the RPO in revisions (east's revisions past the cursor that carried replicated
#    writes), which equals that count, and resyncs east from west by itself (no reseed): east's
#    /registry/ keys and values are west's, the divergent writes gone from it, each side's own
#    keys untouched;
#  - a planned switchover returns the roles (epoch 2, east) and drd run replicates east -> west
#    again.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$H_DIR/emergency.sh"

h_tmpdir
cd "$H_TMP"
h_etcd_start east "$H_TMP/east"
h_etcd_start west "$H_TMP/west"
for i in $(seq 1 30); do h_etcdctl east put "/registry/pods/default/p$i" "pod$i" >/dev/null; done
h_etcdctl east put /local/east-only yes >/dev/null
for i in $(seq 1 5); do h_etcdctl west put "/local/west$i" "w$i" >/dev/null; done
em_config "mode: filtered, prefixes: [/registry/]"
em_write_and_stall /registry/w/
h_etcdctl east put /local/east-late yes >/dev/null # acknowledged, east's own: not a loss
em_kill
em_failover
cursor=$(h_etcdctl west get --print-value-only /drd/replicate/dr/revision)
h_assert_eq "$promoted" "$cursor" "promoted at west's cursor (a revision of east)"
em_missing /registry/w/
em_check_rpo_seconds
h_etcdctl west put /registry/after/failover yes >/dev/null || h_fail "west refuses writes after promotion"

# east comes back; failback: fence, list, resync
h_etcd_start east "$H_TMP/east"
east_rev=$(h_etcd_revision east)
h_log "east holds revisions up to $east_rev, west's cursor $cursor"
h_run_drd 300 failback --config drd.yaml
h_assert_eq "$rc" 0 "failback: $err / $out"
h_log "$out"
run=$(h_drd runbook list --config drd.yaml | awk '/failback/ {print $1}')
h_assert_contains "$out$err" "run $run: done" "failback done"
h_assert_contains "$out" "resynced" "filtered: east resynced by drd"
h_assert_contains "$(cat "state/runs/$run/audit.log")" '"step":"fence-old-primary"' "east fenced first"
em_check_divergent "$run" /registry/w/
grep -q /local/ "state/runs/$run/divergent.tsv" && h_fail "east's own keys listed as lost"
# east holds west's data: the same /registry/ keys and values, without the divergent writes
diff <(h_etcdctl east get --prefix /registry/) <(h_etcdctl west get --prefix /registry/) >registry.diff ||
    h_fail "east's /registry/ differs from west's: $(head -c 600 registry.diff)"
h_assert_eq "$(h_etcdctl east get --print-value-only /registry/after/failover)" yes "east follows west"
n=$(head -1 missing.txt | cut -d' ' -f1)
h_assert_eq "$(h_etcdctl east get --print-value-only "/registry/w/$n")" "" "a divergent write gone from east"
h_assert_eq "$(h_etcd_count east /registry/w/)" "$((acked_n - missing))" "east's writes: those west has"
h_assert_eq "$(h_etcdctl east get --print-value-only /local/east-late)" yes "east's own key untouched"
h_assert_eq "$(h_etcd_count west /local/)" 5 "west's own keys untouched"
h_assert_eq "$(h_etcdctl east alarm list)" "" "east's fence lifted"
h_assert_contains "$(h_etcdctl east get --print-value-only /drd/epoch)" '"epoch":1,"primary":"west"' "east's own epoch record"

# the roles back; drd run replicates east -> west again
h_run_drd 300 failover --config drd.yaml --planned
h_assert_eq "$rc" 0 "switchover back: $err"
h_assert_contains "$(h_etcdctl east get --print-value-only /drd/epoch)" '"epoch":2,"primary":"east"' "epoch 2 on east"
h_assert_contains "$(h_etcdctl west get --print-value-only /drd/epoch)" '"epoch":2,"primary":"east"' "epoch 2 on west"
h_bg daemon2 "$(h_drd_path)" run --config drd.yaml
h_etcdctl east put /registry/after/back yes >/dev/null || h_fail "east refuses writes after the switchover"
h_wait_until 30 "east -> west replication" bash -c "[[ \$(ETCDCTL_API=3 etcdctl --endpoints '$WEST_URL' get --print-value-only /registry/after/back) == yes ]]"
h_stop daemon2
diff <(h_etcdctl east get --prefix /registry/) <(h_etcdctl west get --prefix /registry/) >registry.diff ||
    h_fail "west's /registry/ differs from east's after the switchover back: $(head -c 600 registry.diff)"
h_assert_eq "$(h_etcd_count west /local/)" 5 "west's own keys untouched"
h_pass
