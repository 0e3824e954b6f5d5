#!/usr/bin/env bash
# drd restore and drd drill end to end on a file:// store against a real etcd: restore the latest
# snapshot and start etcd on it (every key, value and revision as at the snapshot); point-in-time
# restores inside a segment and at the last revision, compared with the source's Range at that
# revision (taken before anything compacts), leases included; dry run, non-empty dir, a revision
# past the last segment, a corrupt segment, a wrong key and a missing segment refused before the
# data dir exists; drills pass on good backups and fail, with the reason, on a tampered one. The
# cases are in tests/harness/restore_cases.sh, shared with restore_s3.sh.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
mkdir -p "$H_TMP/store"
STORE="file://$H_TMP/store"
STORE_FLAGS=()
store_fetch() { cp "$H_TMP/store/$1" "$2"; }
store_put() { mkdir -p "$(dirname "$H_TMP/store/$1")" && cat "$2" >"$H_TMP/store/$1"; }

source "$HARNESS/restore_cases.sh"
restore_cases_run
h_pass
