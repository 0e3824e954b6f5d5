#!/usr/bin/env bash
# The bounded gRPC receive size (--etcd-max-recv-bytes, default 2 MiB: etcd's own receive limit).
# With the default, everything drd legitimately asks for fits: a watch catching up on 3 MB of
# history (etcd cuts it into fragments, joined again by drd), Range pages of 3 MB (halved until
# they fit), a 200 KiB value. With --etcd-max-recv-bytes 64KiB pages of small values still go
# through (halved), and the 200 KiB value stops drd with one line naming the limit and the flag,
# quickly and without a reconnect loop; snapshot save (32 KiB messages) still works. On the
# sending side, filtered replication keeps its transactions under etcd's request limit.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
export ETCDCTL_API=3

# put_values PREFIX N BYTES: N puts (one revision each) of BYTES random printable bytes
put_values() {
    local i raw=$(($3 * 3 / 4))
    for ((i = 0; i < $2; i++)); do
        printf 'url = %s/v3/kv/put\ndata = {"key":"%s","value":"%s"}\nnext\n' "$PRIMARY_URL" \
            "$(printf '%s%05d' "$1" "$i" | base64 -w0)" "$(head -c "$raw" /dev/urandom | base64 -w0 | base64 -w0)"
    done | sed '$d' >"$H_TMP/put.curl"
    curl -sS --max-time 120 -K "$H_TMP/put.curl" >"$H_TMP/put.out" || h_fail "loading values"
    h_assert_eq "$(grep -o '"revision"' "$H_TMP/put.out" | wc -l)" "$2" "puts under $1"
}
dump() { h_etcdctl "$1" get --prefix "$2" -w json | jq -c '[.kvs[]? | {key, value}]'; }
repl() { # NAME DEST LIMIT_FLAGS...: filtered replication of /m/ to DEST until caught up
    local name=$1 dest=$2
    shift 2
    h_run_drd 120 --log-level warn replicate etcd --mode filtered --name "$name" --prefix /m/ \
        --dest-prefix "$dest" --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up "$@"
}
expect_ok() { h_assert_eq "$rc" 0 "$1 (stderr: $err)"; }

h_log "default limit: a watch catching up on 3 MB of history"
repl w /w/
expect_ok "first run on an empty prefix"
put_values /m/small- 300 10000 # 300 revisions of 10 kB: one watch batch of 3 MB unless fragmented
repl w /w/
expect_ok "catch-up through the watch with the default limit"
h_assert_eq "$(dump standby /w/ | jq length)" 300 "keys replicated through the watch"
h_assert_eq "$(dump standby /w/ | sed 's|"L3cv|"L20v|g')" "$(dump primary /m/)" "values replicated through the watch"

h_log "default limit: Range pages of 3 MB are halved"
repl r /r/
expect_ok "first copy (Range pages) with the default limit"
h_assert_eq "$(dump standby /r/ | jq length)" 300 "keys copied by Range pages"

h_log "a 200 KiB value"
head -c 150000 /dev/urandom | base64 -w0 | h_etcdctl primary put /m/big >/dev/null
repl w /w/
expect_ok "a 200 KiB value through the watch with the default limit"
repl r2 /r2/
expect_ok "a 200 KiB value in a Range page with the default limit"
h_assert_eq "$(dump standby /r2/ | jq length)" 301 "keys copied with the big one"

h_log "--etcd-max-recv-bytes 64KiB"
t0=$SECONDS
repl s /s/ --etcd-max-recv-bytes 65536
h_assert_eq "$rc" 2 "exit status over the limit (stderr: $err)"
h_assert_eq "$(printf '%s\n' "$err" | grep -c .)" 1 "one line on stderr (stderr: $err)"
h_assert_contains "$err" "receive limit of 65536 bytes" "the error names the limit"
h_assert_contains "$err" "--etcd-max-recv-bytes" "the error names the flag"
h_assert_contains "$err" "127.0.0.1:$PRIMARY_CLIENT_PORT" "the error names the endpoint"
((SECONDS - t0 < 30)) || h_fail "over the limit took $((SECONDS - t0)) s"
h_log "over the limit: $err"
h_etcdctl primary del /m/big >/dev/null
repl s /s/ --etcd-max-recv-bytes 64KiB
expect_ok "10 kB values in Range pages halved down to 64 KiB"
h_assert_eq "$(dump standby /s/ | jq length)" 300 "keys copied with a 64 KiB limit"

h_log "snapshot save streams 32 KiB messages: fine with 64 KiB"
head -c 150000 /dev/urandom | base64 -w0 | h_etcdctl primary put /m/big >/dev/null
mkdir -p "$H_TMP/store"
h_run_drd 60 --log-level error snapshot save --etcd "$PRIMARY_URL" --etcd-max-recv-bytes 64KiB \
    --store "file://$H_TMP/store" --no-encryption
expect_ok "snapshot save with a 64 KiB limit"

h_log "snapshot follow: a watch response over the limit stops it with one line"
mkdir -p "$H_TMP/fstore"
h_bg follow h_drd --log-level error snapshot follow --etcd "$PRIMARY_URL" --etcd-max-recv-bytes 64KiB \
    --store "file://$H_TMP/fstore" --no-encryption --segment-period 1s
full_saved() { compgen -G "$H_TMP/fstore/manifests/*-full-*" >/dev/null; }
t0=$SECONDS
h_wait_until 60 "follow's first full snapshot" full_saved
h_log "follow's full snapshot after $((SECONDS - t0)) s"
head -c 150000 /dev/urandom | base64 -w0 | h_etcdctl primary put /m/big-watched >/dev/null
st=0 t0=$SECONDS
h_wait_exit follow 30 || st=$?
h_log "follow stopped $((SECONDS - t0)) s after the big value"
h_assert_eq "$st" 2 "follow's exit status over the limit ($(cat "$FOLLOW_LOG"))"
h_assert_eq "$(grep -c . "$FOLLOW_LOG")" 1 "one line from follow ($(cat "$FOLLOW_LOG"))"
h_assert_contains "$(cat "$FOLLOW_LOG")" "Watch: a response of" "follow names the watch"
h_assert_contains "$(cat "$FOLLOW_LOG")" "--etcd-max-recv-bytes" "follow names the flag"
h_etcdctl primary del /m/big-watched >/dev/null

h_log "request sizes: filtered batches close at 1 MiB, not only at --max-txn-ops"
# 150 values of 20 kB: 127 of them in one transaction would be 2.5 MB, which etcd refuses
# (over its --max-request-bytes); in the resync and while streaming
put_values /m/mid- 150 20000
repl b /b/
expect_ok "resync of 20 kB values"
h_assert_eq "$(dump standby /b/ | jq length)" "$(dump primary /m/ | jq length)" "keys copied by the resync"
put_values /m/late- 150 20000
repl b /b/
expect_ok "streaming of 20 kB values"
h_assert_eq "$(dump standby /b/ | jq length)" "$(dump primary /m/ | jq length)" "keys replicated while streaming"

h_log "bad values"
for v in 1000 3GiB 12x; do
    h_run_drd 10 snapshot save --etcd "$PRIMARY_URL" --etcd-max-recv-bytes "$v" --store "file://$H_TMP/store" --no-encryption
    h_assert_eq "$rc" 2 "--etcd-max-recv-bytes $v refused (stderr: $err)"
    h_assert_contains "$err" "--etcd-max-recv-bytes" "--etcd-max-recv-bytes $v: the error names the flag"
done
h_run_drd 10 replicate status --source "$PRIMARY_URL" --target "$STANDBY_URL" --etcd-max-recv-bytes 12x
h_assert_eq "$rc" 2 "replicate: --etcd-max-recv-bytes 12x refused (stderr: $err)"
h_assert_contains "$err" "--etcd-max-recv-bytes" "replicate: the error names the flag"
h_pass
