#!/usr/bin/env bash
# drd snapshot end to end on a file:// store against a real etcd: keyring handling, save/list/
# show/get round trip checked with etcdctl (same hash, revision and key count as etcdctl's own
# snapshot), no plaintext at rest, tampering (flipped byte, truncation, swapped chunks, wrong or
# missing key, edited manifest) refused with a clear error, key rotation, concurrent saves,
# segments across kill -9 of follow (contiguous, every event once), kill -9 during save (nothing
# half visible, the next run cleans up), prune and catalog rebuild, bad input. The cases are in
# tests/harness/snapshot_cases.sh, shared with snapshot_s3.sh.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
mkdir -p "$H_TMP/store"
STORE="file://$H_TMP/store"
STORE_FLAGS=()
store_fetch() { cp "$H_TMP/store/$1" "$2"; }
store_put() { cat "$2" >"$H_TMP/store/$1"; }
store_ls() {
    (cd "$H_TMP/store" && find . -type f -not -path './.tmp/*' | sed 's|^\./||' | grep "^$1" || true)
}
store_pending() { find "$H_TMP/store/.tmp" -type f 2>/dev/null || true; }

source "$HARNESS/snapshot_cases.sh"
snap_cases_run
h_pass
