#!/usr/bin/env bash
# The s3:// object store driver against a real S3 server (Ceph RGW, tests/harness/rgw.sh):
#  1. the functional suite (tests/integration/objstore/test_objstore.c) with 5 MiB parts: round
#     trips small, empty, exactly one and two parts, 50 MiB streamed in random write sizes
#     (multipart, sha256), ranged gets, a paused reader, 1100 objects listed in pages (and in
#     pages of 7), prefixes, head, delete, immutability, abort by freeing the writer (no upload
#     left), invalid names;
#  2. a real peer: curl --aws-sigv4 reads what drd wrote (multipart, 4 parts in parallel) and drd
#     reads what curl wrote; the file:// driver stores the same bytes;
#  3. kill -9 of writers mid-upload: no object, multipart uploads that dr_store_cleanup aborts
#     by prefix or all (ListMultipartUploads shows none after), and keeps while young;
#  4. faults injected by a proxy (objstore/faultproxy.py): SlowDown and 500 are retried, a
#     download cut mid-object resumes where it broke, a request that gets no answer times out and
#     is retried; SlowDown that never ends is DR_EUNAVAILABLE after the retries;
#  5. bad input: missing bucket, wrong secret, unknown key, unreachable endpoint, no credentials,
#     credentials file and profile, TLS with the right and a wrong CA: exit codes, one-line
#     messages that never contain the secret.
# Set OBJSTORE_BENCH_MIB=256 to also print the streamed PUT/GET throughput and peak RSS.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$H_DIR/rgw.sh"

T=${TESTBIN:-$H_REPO/build/testbin}/test_objstore
[[ -x "$T" ]] || h_fail "test program not found at '$T' (build the test_objstore target)"
h_tmpdir
h_rgw_use
prefix="$H_TEST_NAME-$$-$RANDOM"
url="s3://$RGW_BUCKET/$prefix"
S3=(--endpoint "$RGW_ENDPOINT" --insecure-http)
secret=$AWS_SECRET_ACCESS_KEY

# run CMD...: sets rc, out (stdout), err (stderr); a secret never appears in either
run() {
    rc=0
    "$@" >"$H_TMP/out" 2>"$H_TMP/err" || rc=$?
    out=$(cat "$H_TMP/out")
    err=$(cat "$H_TMP/err")
    [[ "$out$err" != *"$secret"* && "$out$err" != *wrong-secret* ]] || h_fail "a secret was printed by: $*"
}

# 1. the suite
t0=$SECONDS
run "$T" "${S3[@]}" --part-size 5242880 suite "$url/suite"
[[ $rc == 0 ]] || h_fail "suite failed (exit $rc): $err"
h_log "$out (suite: $((SECONDS - t0)) s)"

# 2. peers
run "$T" "${S3[@]}" --part-size 5242880 --parallel 4 put "$url" peer/multi 23000000
h_assert_eq "$rc" 0 "put peer/multi ($err)"
want=$("$T" gensha peer/multi 23000000)
h_assert_eq "$out" "$want" "sha256 reported by put"
h_assert_eq "$(h_rgw_curl GET "$RGW_BUCKET/$prefix/peer/multi" --fail | sha256sum | cut -d' ' -f1)" \
    "${want%% *}" "curl --aws-sigv4 reads the multipart object"
etag=$(h_rgw_curl HEAD "$RGW_BUCKET/$prefix/peer/multi" -I | tr -d '\r' | grep -i '^etag:')
h_assert_contains "$etag" '-5"' "ETag of a 5-part multipart object"
head -c 7000000 /dev/urandom >"$H_TMP/rand"
h_rgw_curl PUT "$RGW_BUCKET/$prefix/peer/by-curl" --fail -T "$H_TMP/rand" -o /dev/null
run "$T" "${S3[@]}" sha "$url" peer/by-curl
h_assert_eq "$out" "$(sha256sum <"$H_TMP/rand" | cut -d' ' -f1) 7000000" "drd reads curl's object"
cmp -s <("$T" "${S3[@]}" cat "$url" peer/by-curl 123457 4567891) \
    <(tail -c +123458 "$H_TMP/rand" | head -c 4567891) || h_fail "ranged get differs from curl's bytes"
mkdir "$H_TMP/fs"
run "$T" put "file://$H_TMP/fs" peer/multi 23000000
h_assert_eq "$out" "$want" "file:// put of the same object"
cmp -s <("$T" "${S3[@]}" cat "$url" peer/multi) "$H_TMP/fs/peer/multi" ||
    h_fail "s3:// and file:// hold different bytes for the same object"

# 3. kill -9 of two writers mid-upload; cleanup by prefix, then of all
uploads() { h_rgw_curl GET "$RGW_BUCKET?prefix=$prefix%2F&uploads=" | grep -o '<UploadId>' | wc -l; }
h_assert_eq "$(uploads)" 0 "multipart uploads before the crash"
h_bg writer "$T" "${S3[@]}" --part-size 5242880 --hang-after 12000000 put "$url" crash/obj 104857600
h_bg writer2 "$T" "${S3[@]}" --part-size 5242880 --hang-after 6000000 put "$url" other/obj 104857600
h_wait_until 30 "writer to have written 12 MB" grep -q hanging "$WRITER_LOG"
h_wait_until 30 "writer2 to have written 6 MB" grep -q hanging "$WRITER2_LOG"
h_kill9 writer
h_kill9 writer2
run "$T" "${S3[@]}" head "$url" crash/obj
h_assert_eq "$rc" 3 "head of the killed writer's object (out: $out, err: $err)"
h_assert_eq "$(uploads)" 2 "multipart uploads left by the killed writers"
run "$T" "${S3[@]}" cleanup "$url" 3600000
h_assert_eq "$out" 0 "cleanup with a 1 h threshold keeps young uploads ($err)"
h_assert_eq "$(uploads)" 2 "multipart uploads after a cleanup that keeps young ones"
run "$T" "${S3[@]}" cleanup "$url" 0 crash/
h_assert_eq "$out" 1 "cleanup of prefix crash/ aborts that writer's upload ($err)"
h_assert_eq "$(uploads)" 1 "multipart uploads after cleanup of crash/"
run "$T" "${S3[@]}" cleanup "$url" 0
h_assert_eq "$out" 1 "cleanup of everything aborts the other upload ($err)"
h_assert_eq "$(uploads)" 0 "multipart uploads after cleanup"
run "$T" "${S3[@]}" list "$url" crash/
h_assert_eq "$out" "" "list after the crash"

# 4. faults
proxy() {  # NAME RULE...: a fault proxy in front of RGW; sets NAME_PORT
    local name=$1 v
    shift
    v=$(_h_var "$name")
    h_bg "$name" python3 "$H_REPO/tests/integration/objstore/faultproxy.py" "$H_TMP/$name.port" \
        "$RGW_ENDPOINT" "$@"
    h_wait_until 10 "fault proxy $name" test -s "$H_TMP/$name.port"
    _h_set "${v}_PORT" "$(cat "$H_TMP/$name.port")"
}
faults() { grep -c "^fault $2" "$(_h_get "$(_h_var "$1")_LOG")" || true; }
proxy flaky 'slowdown:2:^GET /[^/ ]+\?list-type' 'cut=3000000:1:^GET /[^?]*/peer/multi ' \
    'stall:1:^HEAD /[^?]*/faults/put ' 'error500:2:partNumber=2&'
F=(--endpoint "127.0.0.1:$FLAKY_PORT" --insecure-http --timeout-ms 2000)
run "$T" "${F[@]}" open "$url"
h_assert_eq "$rc" 0 "open through two SlowDown answers ($err)"
h_assert_eq "$(faults flaky slowdown)" 2 "SlowDown answers given"
run "$T" "${F[@]}" sha "$url" peer/multi
h_assert_eq "$out" "$want" "download cut after 3 MB resumes"
h_assert_eq "$(faults flaky cut)" 1 "downloads cut"
run "$T" "${F[@]}" --part-size 5242880 put "$url" faults/put 12000000
h_assert_eq "$out" "$("$T" gensha faults/put 12000000)" "put through a stalled HEAD and two 500s ($err)"
h_assert_eq "$(faults flaky stall)" 1 "requests stalled"
h_assert_eq "$(faults flaky error500)" 2 "500 answers given"
run "$T" "${S3[@]}" sha "$url" faults/put
h_assert_eq "$out" "$("$T" gensha faults/put 12000000)" "object written through faults reads back"
proxy busy 'slowdown:1000:.'
t0=$SECONDS
run "$T" --endpoint "127.0.0.1:$BUSY_PORT" --insecure-http --retries 3 open "$url"
h_assert_eq "$rc" 4 "open against a server that always says SlowDown ($err)"
h_assert_contains "$err" "SlowDown" "message names SlowDown"
h_assert_contains "$err" "3 attempts" "message says how often it tried"
h_assert_eq "$(faults busy slowdown)" 3 "attempts made"
((SECONDS - t0 < 15)) || h_fail "giving up on SlowDown took $((SECONDS - t0)) s"

# 5. bad input
check() {  # WANT_RC PART CMD...: exit status and a one-line message containing PART
    local want=$1 part=$2
    shift 2
    run "$@"
    h_assert_eq "$rc" "$want" "exit status of: $* (err: $err)"
    h_assert_contains "$err" "$part" "message of: $*"
    h_assert_eq "$(printf '%s\n' "$err" | wc -l)" 1 "one-line message of: $*"
}
check 3 "bucket 'no-such-bucket-$$' does not exist" "$T" "${S3[@]}" open "s3://no-such-bucket-$$/x"
check 10 "bad credentials" env AWS_SECRET_ACCESS_KEY=wrong-secret "$T" "${S3[@]}" open "$url"
check 10 "bad credentials" env AWS_ACCESS_KEY_ID=NOSUCHACCESSKEY "$T" "${S3[@]}" open "$url"
dead_port=""
h_free_port dead_port
t0=$SECONDS
check 4 "127.0.0.1:$dead_port" "$T" --endpoint "127.0.0.1:$dead_port" --insecure-http --retries 3 open "$url"
((SECONDS - t0 < 10)) || h_fail "giving up on an unreachable endpoint took $((SECONDS - t0)) s"
nocreds=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SHARED_CREDENTIALS_FILE
    -u AWS_PROFILE HOME="$H_TMP/nohome")
check 2 "no S3 credentials" "${nocreds[@]}" "$T" "${S3[@]}" open "$url"
check 2 "S3 endpoint" "$T" open "$url"
check 2 "malformed store URL" "$T" "${S3[@]}" open "s3://ab/x"
(umask 077 && printf '[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong-secret\n\n[drd]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
    "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$H_TMP/creds")
run "${nocreds[@]}" AWS_PROFILE=drd "$T" "${S3[@]}" --credentials "$H_TMP/creds" open "$url"
h_assert_eq "$rc" 0 "credentials file, profile drd ($err)"
run "${nocreds[@]}" AWS_PROFILE=drd AWS_SHARED_CREDENTIALS_FILE="$H_TMP/creds" "$T" "${S3[@]}" open "$url"
h_assert_eq "$rc" 0 "AWS_SHARED_CREDENTIALS_FILE, profile drd ($err)"
check 10 "bad credentials" "${nocreds[@]}" AWS_SHARED_CREDENTIALS_FILE="$H_TMP/creds" "$T" "${S3[@]}" open "$url"
check 2 "no aws_access_key_id" "${nocreds[@]}" AWS_PROFILE=other "$T" "${S3[@]}" --credentials "$H_TMP/creds" open "$url"
# TLS
TLS=(--endpoint "$RGW_TLS_ENDPOINT" --cacert "$RGW_CACERT")
run "$T" "${TLS[@]}" put "$url" tls/obj 100000
h_assert_eq "$out" "$("$T" gensha tls/obj 100000)" "put over https ($err)"
run "$T" "${TLS[@]}" sha "$url" tls/obj
h_assert_eq "$out" "$("$T" gensha tls/obj 100000)" "get over https ($err)"
check 5 "TLS" "$T" --endpoint "$RGW_TLS_ENDPOINT" --cacert "$RGW_OTHER_CACERT" open "$url"
check 5 "TLS" "$T" --endpoint "$RGW_ENDPOINT" --cacert "$RGW_CACERT" open "$url"

if [[ -n "${OBJSTORE_BENCH_MIB:-}" ]]; then
    run "$T" "${S3[@]}" bench "$url" bench/obj $((OBJSTORE_BENCH_MIB * 1048576))
    h_assert_eq "$rc" 0 "bench ($err)"
    h_log "$out"
fi

# (objects stay under the test's prefix: the fixture's bucket goes away with the fixture)
h_pass
