#!/usr/bin/env bash
# The etcd client (drd/lib/etcd) against a real etcd: every wrapped RPC and the error translation
# (tests/integration/etcd_client/test_etcd_client.c). The snapshot it streams must be byte-for-byte
# what `etcdctl snapshot status` accepts, with the same hash as etcdctl reports.
source "${HARNESS:?}/etcd.sh"
h_tmpdir
h_etcd_start primary "$H_TMP/primary"
bin=${TEST_ETCD_CLIENT:?}
DRD_TEST_ETCD=$PRIMARY_URL DRD_TEST_SNAPSHOT_OUT=$H_TMP/drd.db "$bin" >"$H_TMP/out.log" 2>&1 || {
    cat "$H_TMP/out.log" >&2
    h_fail "test_etcd_client failed"
}
cat "$H_TMP/out.log"
ETCDCTL_API=3 etcdctl snapshot status "$H_TMP/drd.db" -w json >"$H_TMP/status.json" 2>&1 ||
    h_fail "etcdctl snapshot status refused drd's snapshot: $(cat "$H_TMP/status.json")"
h_pass
