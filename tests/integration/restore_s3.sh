#!/usr/bin/env bash
# drd restore and drd drill end to end on an s3:// store (a real Ceph RGW): the same cases as
# restore_file.sh (tests/harness/restore_cases.sh), objects fetched and replaced with curl's own
# SigV4.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/rgw.sh"

h_tmpdir
h_rgw_use
P="restore-$$-$RANDOM"
STORE="s3://$RGW_BUCKET/$P"
STORE_FLAGS=(--s3-endpoint "$RGW_ENDPOINT" --s3-insecure-http)
store_fetch() { h_rgw_curl GET "$RGW_BUCKET/$P/$1" -f -o "$2" || h_fail "curl GET $1"; }
store_put() { h_rgw_curl PUT "$RGW_BUCKET/$P/$1" -f --data-binary "@$2" -o /dev/null || h_fail "curl PUT $1"; }

source "$HARNESS/restore_cases.sh"
restore_cases_run
h_pass
