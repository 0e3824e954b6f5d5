#!/usr/bin/env bash
# The file:// object store driver against a real directory:
#  1. the functional suite (tests/integration/objstore/test_objstore.c): round trips small, empty
#     and 50 MiB (random write and read sizes, sha256), ranged gets, list of 1100 objects with
#     prefixes and paging, order across "directories", head, delete, immutability (also when the
#     name appears while a writer is under way), abort by freeing the writer, invalid names;
#  2. the bytes on disk are exactly what was written (sha256sum of the file, a real peer);
#  3. kill -9 of writers mid-object: nothing under the name, temp files under .tmp/ that
#     dr_store_cleanup removes by prefix or all (and keeps while younger than the threshold);
#  4. bad input: unknown scheme, malformed URL, missing directory, not a directory: exit code
#     and one-line message.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

T=${TESTBIN:-$H_REPO/build/testbin}/test_objstore
[[ -x "$T" ]] || h_fail "test program not found at '$T' (build the test_objstore target)"
h_tmpdir
store="$H_TMP/store"
mkdir -p "$store"
url="file://$store"

# run CMD...: sets rc, out (stdout), err (stderr)
run() {
    rc=0
    "$@" >"$H_TMP/out" 2>"$H_TMP/err" || rc=$?
    out=$(cat "$H_TMP/out")
    err=$(cat "$H_TMP/err")
}

# 1. the suite
run "$T" suite "$url"
[[ $rc == 0 ]] || h_fail "suite failed (exit $rc): $err"
h_log "$out"

# 2. bytes on disk
run "$T" put "$url" peer/blob 20000000
h_assert_eq "$rc" 0 "put peer/blob ($err)"
want=$("$T" gensha peer/blob 20000000)
h_assert_eq "$out" "$want" "sha256 reported by put"
h_assert_eq "$(sha256sum <"$store/peer/blob" | cut -d' ' -f1)" "${want%% *}" "sha256sum of the file on disk"
h_assert_eq "$("$T" cat "$url" peer/blob 1000 4096 | wc -c)" 4096 "cat with a range"
cmp -s <("$T" cat "$url" peer/blob 1000 4096) <(tail -c +1001 "$store/peer/blob" | head -c 4096) ||
    h_fail "ranged get differs from the file's bytes"

# 3. kill -9 of two writers; cleanup by prefix, then of all
h_bg writer "$T" --hang-after 20000000 put "$url" crash/obj 104857600
h_bg writer2 "$T" --hang-after 1000000 put "$url" .other/obj 104857600
h_wait_until 20 "writer to have written 20 MB" grep -q hanging "$WRITER_LOG"
h_wait_until 20 "writer2 to have written 1 MB" grep -q hanging "$WRITER2_LOG"
h_kill9 writer
h_kill9 writer2
run "$T" head "$url" crash/obj
h_assert_eq "$rc" 3 "head of the killed writer's object (out: $out, err: $err)"
h_assert_contains "$err" "no such object" "message for a missing object"
[[ ! -e "$store/crash/obj" ]] || h_fail "killed writer left an object under its name"
h_assert_eq "$(find "$store/.tmp" -type f | wc -l)" 2 "temp files after the kills"
h_assert_eq "$(find "$store/.tmp" -type f -size +19M | wc -l)" 1 "the temp file holds what was written"
run "$T" list "$url" ""
[[ "$out" != *".tmp"* && "$out" != *crash/obj* && "$out" != *.other* ]] ||
    h_fail "list shows temp or unfinished objects: $out"
run "$T" cleanup "$url" 3600000
h_assert_eq "$out" 0 "cleanup with a 1 h threshold keeps young temp files"
run "$T" cleanup "$url" 0 crash/
h_assert_eq "$out" 1 "cleanup of prefix crash/ removes that writer's temp file"
h_assert_eq "$(find "$store/.tmp" -type f | wc -l)" 1 "temp files after cleanup of crash/"
run "$T" cleanup "$url" 0 cr
h_assert_eq "$out" 0 "cleanup of prefix cr finds nothing left"
run "$T" cleanup "$url" 0
h_assert_eq "$out" 1 "cleanup of everything removes the other temp file"
h_assert_eq "$(find "$store/.tmp" -type f | wc -l)" 0 "temp files after cleanup"
run "$T" put "$url" crash/obj 1000
h_assert_eq "$rc" 0 "the name is free after the crash ($err)"

# 4. bad input
check_fail() {  # WANT_RC PART URL
    run "$T" open "$3"
    h_assert_eq "$rc" "$1" "exit status for '$3' (err: $err)"
    h_assert_contains "$err" "$2" "message for '$3'"
    h_assert_eq "$(printf '%s\n' "$err" | wc -l)" 1 "one-line message for '$3'"
}
check_fail 2 "unknown store URL scheme" "ftp://host/x"
check_fail 2 "malformed store URL" "$store"
check_fail 2 "file:///absolute/path" "file://relative/dir"
check_fail 3 "does not exist" "file://$H_TMP/nonexistent"
check_fail 2 "is not a directory" "file://$store/peer/blob"
check_fail 2 "malformed store URL" "s3://Bad_Bucket/x"
check_fail 2 "missing store URL" ""
run env -u AWS_ACCESS_KEY_ID "$T" open "s3://some-bucket/x"
h_assert_eq "$rc" 2 "s3:// without an endpoint"
h_assert_contains "$err" "--s3-endpoint" "message names the missing option"

h_pass
