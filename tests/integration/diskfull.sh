#!/usr/bin/env bash
# Full disks and failing disks, with an LD_PRELOAD shim (tests/integration/faults/diskfull.c) that
# fails the Nth write or sync on chosen paths with ENOSPC or EIO: a file:// `snapshot save`, a
# restore into a data dir, the catalog, `key rotate` and `replicate seed`, each at several points.
# Every failure is one clear line and a non-zero exit, nothing half written is visible (no
# manifest, no data dir, the old keyring intact), and the next run succeeds once space is back.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

SHIM="$TESTBIN/drd_diskfull.so"
[[ -f "$SHIM" ]] || h_fail "no shim at $SHIM"
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0"
export ETCDCTL_API=3
h_tmpdir
S="$H_TMP/store"
mkdir -p "$S"
export DRD_CATALOG_DIR="$H_TMP/catdir"

# faulty AFTER OPS ERRNO PATH -- drd ARGS...: drd with the shim armed
faulty() {
    local after=$1 ops=$2 errno=$3 path=$4
    shift 5
    rc=0
    LD_PRELOAD="$SHIM" DRD_FAULT_AFTER="$after" DRD_FAULT_OPS="$ops" DRD_FAULT_ERRNO="$errno" \
        DRD_FAULT_PATH="$path" timeout 120 "$(h_drd_path)" --log-level error "$@" \
        >"$H_TMP/out" 2>"$H_TMP/err" || rc=$?
    out=$(cat "$H_TMP/out")
    err=$(cat "$H_TMP/err")
}
one_line_error() {
    ((rc != 0 && rc != 124)) || h_fail "$1: exit $rc, expected a failure (stderr: $err)"
    h_assert_eq "$(grep -c '^drd: ' <<<"$err")" 1 "$1: one error line (stderr: $err)"
    grep -Eqi "no space|input/output|I/O" <<<"$err" || h_fail "$1: the error does not say why: $err"
    grep -qi 'sanitizer\|runtime error' <<<"$err" && h_fail "$1: sanitizer report: $err"
    return 0
}
visible() { find "$S/manifests" -name "*.json" 2>/dev/null | wc -l || true; }

h_etcd_start primary "$H_TMP/primary"
for ((i = 0; i < 60; i++)); do # ~250 KiB of incompressible values: many writes per object
    h_etcdctl primary put "/registry/pods/p-$i" "$(head -c 3000 /dev/urandom | base64 -w0)" >/dev/null
done
h_run_drd 10 key generate --out "$H_TMP/keys" --name k1
h_assert_eq "$rc" 0 "key generate"

h_log "snapshot save into a file:// store that fills up or fails"
for spec in "1 write ENOSPC" "3 write ENOSPC" "5 write EIO" "1 sync ENOSPC" "2 sync EIO" "4 sync EIO"; do
    read -r after ops errno <<<"$spec"
    before=$(visible)
    faulty "$after" "$ops" "$errno" "$S/" -- snapshot save --etcd "$PRIMARY_URL" --store "file://$S" --key-file "$H_TMP/keys"
    if ((rc == 0)); then
        # the fault came after the object was complete (a directory sync): it must be whole
        h_log "  $spec: save succeeded (the failing call came after the commit)"
        h_run_drd 120 snapshot verify "$out" --store "file://$S" --key-file "$H_TMP/keys"
        h_assert_eq "$rc" 0 "a save that reported success verifies ($spec; $err)"
        continue
    fi
    one_line_error "save with $spec"
    h_assert_eq "$(visible)" "$before" "no manifest visible after a failed save ($spec)"
    h_log "  $spec: $(grep "^drd: " <<<"$err")"
done
h_run_drd 120 --log-level error snapshot save --etcd "$PRIMARY_URL" --store "file://$S" --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "save once space is back ($err)"
GOOD=$out
h_run_drd 120 snapshot verify --all --store "file://$S" --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "every visible object verifies after the faults ($err)"
h_assert_eq "$(find "$S/.tmp" -type f 2>/dev/null | wc -l)" 0 "the successful save cleaned the failed ones' temp files"

h_log "the catalog on a full disk"
rm -rf "$DRD_CATALOG_DIR"
faulty 1 all ENOSPC "$DRD_CATALOG_DIR" -- snapshot list --store "file://$S" --key-file "$H_TMP/keys"
((rc != 0)) || h_fail "list with a catalog that cannot be written succeeded silently"
h_assert_eq "$(grep -vc '^HINT: ' <<<"$err")" 1 "catalog failure: one line ($err)"
h_run_drd 60 snapshot list --store "file://$S" --key-file "$H_TMP/keys" --json
h_assert_eq "$rc" 0 "list once space is back ($err)"
h_assert_contains "$out" "$GOOD" "the catalog recovers from the store"

h_log "restore into a data dir on a full disk"
h_etcd_reserve r1
for spec in "1 write ENOSPC" "3 write EIO" "1 sync ENOSPC"; do
    read -r after ops errno <<<"$spec"
    faulty "$after" "$ops" "$errno" "$H_TMP/r1" -- restore --snapshot "$GOOD" --store "file://$S" \
        --key-file "$H_TMP/keys" --data-dir "$H_TMP/r1" --name r1 \
        --initial-cluster "$R1_INITIAL_CLUSTER" --initial-advertise-peer-urls "$R1_PEER_URL"
    one_line_error "restore with $spec"
    [[ ! -e "$H_TMP/r1" ]] || h_fail "a failed restore left the data dir ($spec)"
    h_log "  $spec: $(grep "^drd: " <<<"$err")"
done
h_run_drd 120 --log-level error restore --snapshot "$GOOD" --store "file://$S" --key-file "$H_TMP/keys" \
    --data-dir "$H_TMP/r1" --name r1 --initial-cluster "$R1_INITIAL_CLUSTER" \
    --initial-advertise-peer-urls "$R1_PEER_URL"
h_assert_eq "$rc" 0 "restore once space is back ($err)"
h_etcd_start_existing r1 "$H_TMP/r1" "$R1_CLIENT_PORT" "$R1_PEER_PORT"
h_assert_eq "$(h_etcd_count r1 /registry/)" "$(h_etcd_count primary /registry/)" "restored keys"
h_stop r1

h_log "key rotate on a full disk leaves the old keyring intact"
cp "$H_TMP/keys" "$H_TMP/keys.before"
for spec in "1 write ENOSPC" "1 sync EIO"; do
    read -r after ops errno <<<"$spec"
    faulty "$after" "$ops" "$errno" "$H_TMP/" -- key rotate --keyring "$H_TMP/keys" --name k2
    one_line_error "key rotate with $spec"
    cmp -s "$H_TMP/keys" "$H_TMP/keys.before" || h_fail "a failed rotation changed the keyring ($spec)"
done
h_run_drd 10 key rotate --keyring "$H_TMP/keys" --name k2
h_assert_eq "$rc" 0 "key rotate once space is back ($err)"

h_log "replicate seed on a full disk"
h_etcd_reserve standby
for spec in "1 write ENOSPC" "10 write EIO" "1 sync ENOSPC"; do
    read -r after ops errno <<<"$spec"
    faulty "$after" "$ops" "$errno" "$H_TMP/standby" -- replicate seed --source "$PRIMARY_URL" \
        --data-dir "$H_TMP/standby" --name standby --initial-cluster "$STANDBY_INITIAL_CLUSTER" \
        --initial-advertise-peer-urls "$STANDBY_PEER_URL"
    one_line_error "seed with $spec"
    [[ ! -e "$H_TMP/standby/member" ]] || h_fail "a failed seed left a member dir ($spec)"
    h_log "  $spec: $(grep "^drd: " <<<"$err")"
done
h_run_drd 120 --log-level error replicate seed --source "$PRIMARY_URL" --data-dir "$H_TMP/standby" \
    --name standby --initial-cluster "$STANDBY_INITIAL_CLUSTER" --initial-advertise-peer-urls "$STANDBY_PEER_URL"
h_assert_eq "$rc" 0 "seed once space is back ($err)"
h_etcd_start_existing standby "$H_TMP/standby" "$STANDBY_CLIENT_PORT" "$STANDBY_PEER_PORT"
h_assert_eq "$(h_etcd_count standby /registry/)" "$(h_etcd_count primary /registry/)" "seeded keys"
h_pass
