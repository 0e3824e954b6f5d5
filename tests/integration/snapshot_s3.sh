#!/usr/bin/env bash
# drd snapshot end to end on an s3:// store (a real Ceph RGW, tests/harness/rgw.sh) against a real
# etcd: the same cases as snapshot_file.sh (tests/harness/snapshot_cases.sh), with the raw objects
# fetched and replaced through curl's own SigV4 (an independent peer), plus S3-only bad input:
# a missing bucket and wrong credentials.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/rgw.sh"

h_tmpdir
h_rgw_use
P="snap-$$-$RANDOM"
STORE="s3://$RGW_BUCKET/$P"
STORE_FLAGS=(--s3-endpoint "$RGW_ENDPOINT" --s3-insecure-http --s3-part-size 5)
store_fetch() { h_rgw_curl GET "$RGW_BUCKET/$P/$1" -f -o "$2" || h_fail "curl GET $1"; }
store_put() { h_rgw_curl PUT "$RGW_BUCKET/$P/$1" -f --data-binary "@$2" -o /dev/null || h_fail "curl PUT $1"; }
store_ls() {
    # SigV4 wants the canonical query: sorted, '/' encoded
    h_rgw_curl GET "$RGW_BUCKET?list-type=2&max-keys=1000&prefix=$P%2F${1//\//%2F}" -f |
        grep -o '<Key>[^<]*</Key>' | sed -e 's|<Key>||; s|</Key>||' -e "s|^$P/||" || true
}
store_pending() {
    h_rgw_curl GET "$RGW_BUCKET?prefix=$P%2F&uploads=" -f | grep -o '<Key>[^<]*</Key>' || true
}

source "$HARNESS/snapshot_cases.sh"
snap_cases_run

h_log "S3 bad input"
h_run_drd 30 snapshot list --store "s3://no-such-bucket-$$/x" --s3-endpoint "$RGW_ENDPOINT" --s3-insecure-http
expect_fail 3 "missing bucket" "no-such-bucket-$$"
AWS_SECRET_ACCESS_KEY=wrong-secret h_run_drd 30 snapshot list --store "$STORE" --s3-endpoint "$RGW_ENDPOINT" --s3-insecure-http
expect_fail 10 "bad credentials" "bad credentials"
if grep -q "wrong-secret" <<<"$err"; then h_fail "the secret appears in an error message"; fi
h_run_drd 30 snapshot list --store "$STORE" --s3-endpoint "127.0.0.1:1" --s3-insecure-http
expect_fail 4 "unreachable endpoint" "127.0.0.1:1"
h_pass
