#!/usr/bin/env bash
# Bad input to `drd replicate ...`: each case exits non-zero (with the documented code where there
# is one) within 30 s and prints exactly one line on stderr that says what is wrong, at the default
# log level and with --log-level error. Nothing is written to the target when drd refuses.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
start=$SECONDS

# expect_error DESC CODE NEEDLE args...: exit CODE (or any non-zero for "-"), one line on stderr
# containing NEEDLE, within 30 s; run at the default log level and at --log-level error
expect_error() {
    local desc=$1 code=$2 needle=$3 lvl
    shift 3
    for lvl in default error; do
        if [[ "$lvl" == default ]]; then h_run_drd 45 "$@"; else h_run_drd 45 --log-level error "$@"; fi
        ((rc != 0)) || h_fail "$desc: drd $* exited 0"
        [[ "$code" == - ]] || h_assert_eq "$rc" "$code" "$desc (log level $lvl): exit status (stderr: $err)"
        h_assert_eq "$(wc -l <"$H_TMP/err")" 1 "$desc (log level $lvl): lines on stderr (stderr: $err)"
        h_assert_contains "$err" "$needle" "$desc (log level $lvl): error message"
        ((took <= 30)) || h_fail "$desc (log level $lvl): took ${took}s"
    done
    h_log "$desc: exit $rc in ${took}s: $err"
}

h_etcd_start primary "$H_TMP/primary"
h_etcd_start standby "$H_TMP/standby"
for i in $(seq 1 30); do h_etcdctl primary put "/registry/pods/default/pod-$i" "{\"kind\":\"Pod\",\"i\":$i}" >/dev/null; done
P=$PRIMARY_URL S=$STANDBY_URL

# unreachable endpoints: the error names the endpoint that cannot be reached
expect_error "unreachable source" - 127.0.0.1:1 replicate etcd --source http://127.0.0.1:1 --target "$S" --until-caught-up
[[ "$err" != *"127.0.0.1:$STANDBY_CLIENT_PORT"* ]] || h_fail "unreachable source: the error names the (reachable) target: $err"
expect_error "unreachable source, long-running form" - 127.0.0.1:1 replicate etcd --source http://127.0.0.1:1 --target "$S"
expect_error "unreachable source, filtered" - 127.0.0.1:1 replicate etcd --mode filtered --source http://127.0.0.1:1 --target "$S"
expect_error "unreachable target" - 127.0.0.1:1 replicate etcd --source "$P" --target http://127.0.0.1:1 --until-caught-up
expect_error "unreachable source, seed" - 127.0.0.1:1 replicate seed --source http://127.0.0.1:1 --data-dir "$H_TMP/never" \
    --name never --initial-cluster never=http://127.0.0.1:2 --initial-advertise-peer-urls http://127.0.0.1:2
expect_error "unreachable source, verify" - 127.0.0.1:1 replicate verify --source http://127.0.0.1:1 --target "$S"
expect_error "unreachable source, status" - 127.0.0.1:1 replicate status --source http://127.0.0.1:1 --target "$S"
expect_error "second endpoint unreachable too" - 127.0.0.1:1 replicate etcd --source http://127.0.0.1:1,http://127.0.0.1:3 --target "$S" --until-caught-up

# the command line
expect_error "unknown flag" 2 --no-such-flag replicate etcd --source "$P" --target "$S" --no-such-flag
expect_error "unknown flag (seed)" 2 --bogus replicate seed --bogus --source "$P"
expect_error "missing --target" 2 --target replicate etcd --source "$P"
expect_error "missing --source" 2 --source replicate etcd --target "$S"
expect_error "flag without its value" 2 --source replicate etcd --target "$S" --source
expect_error "--mode bogus" 2 bogus replicate etcd --source "$P" --target "$S" --mode bogus
expect_error "--dest-prefix with two --prefix" 2 --dest-prefix replicate etcd --mode filtered --source "$P" --target "$S" \
    --prefix /a/ --prefix /b/ --dest-prefix /c/
expect_error "--prefix in exact mode" 2 --prefix replicate etcd --source "$P" --target "$S" --prefix /a/
expect_error "--max-txn-ops not a number" 2 --max-txn-ops replicate etcd --source "$P" --target "$S" --max-txn-ops lots
expect_error "same source and target" 2 same replicate etcd --source "$P" --target "$P"
expect_error "unexpected argument" 2 stray replicate etcd --source "$P" --target "$S" stray
expect_error "flag of another command" 2 --data-dir replicate etcd --source "$P" --target "$S" --data-dir /tmp/x
h_run_drd 45 --log-level loud replicate etcd --source "$P" --target "$S"
h_assert_eq "$rc" 2 "unknown log level: exit status (stderr: $err)"
h_assert_eq "$(wc -l <"$H_TMP/err")" 1 "unknown log level: lines on stderr (stderr: $err)"
h_assert_contains "$err" loud "unknown log level: error message"
expect_error "not a URL" - nota replicate etcd --source nota-url --target "$S" --until-caught-up

# exact mode on a standby that was not seeded but has keys of its own: exit 15, nothing written
h_etcd_start other "$H_TMP/other"
for i in $(seq 1 5); do h_etcdctl other put "/other/key-$i" "v$i" >/dev/null; done
before=$(h_etcd_revision other)
expect_error "standby with its own keys" 15 seed replicate etcd --source "$P" --target "$OTHER_URL" --until-caught-up
h_assert_contains "$err" "drd replicate seed" "standby with its own keys: the error names the seed command"
# the long-running form stays up in state alarm (for monitoring) and exits 15 on SIGTERM
h_bg alarmed h_drd --log-level error replicate etcd --source "$P" --target "$OTHER_URL"
h_wait_until 30 "long-running form in alarm" grep -q "alarm: .*seed" "$ALARMED_LOG"
h_running alarmed || h_fail "the long-running form exited on an alarm instead of staying up"
kill -TERM "$ALARMED_PID"
arc=0
h_wait_exit alarmed 30 || arc=$?
h_assert_eq "$arc" 15 "standby with its own keys, long-running form: exit status after SIGTERM ($(cat "$ALARMED_LOG"))"
h_assert_eq "$(grep -c '^drd: ' "$ALARMED_LOG")" 1 "one error line at exit ($(cat "$ALARMED_LOG"))"
h_assert_eq "$(h_etcd_revision other)" "$before" \
    "revision of the standby with its own keys after drd refused"
h_run_drd 45 --log-level error replicate verify --source "$P" --target "$OTHER_URL"
((rc != 0)) || h_fail "verify of an unseeded standby exited 0"
h_assert_eq "$(wc -l <"$H_TMP/err")" 1 "verify of an unseeded standby: lines on stderr (stderr: $err)"
h_log "verify of an unseeded standby: exit $rc: $err"

# seed into a data dir that is not empty: refused, the dir is left alone
h_etcd_reserve seeded
mkdir -p "$H_TMP/full"
echo keep >"$H_TMP/full/file"
expect_error "seed into a non-empty dir" - "not empty" replicate seed --source "$P" --data-dir "$H_TMP/full" --name seeded \
    --initial-cluster "$SEEDED_INITIAL_CLUSTER" --initial-advertise-peer-urls "$SEEDED_PEER_URL"
h_assert_eq "$(ls -A "$H_TMP/full")" file "the non-empty dir is left alone"
expect_error "seed without --data-dir" 2 --data-dir replicate seed --source "$P" --name seeded \
    --initial-cluster "$SEEDED_INITIAL_CLUSTER" --initial-advertise-peer-urls "$SEEDED_PEER_URL"

# exact mode on a standby that was not seeded: a fresh etcd, while the primary has keys. Last,
# since drd may write to it. Expected: exit 15, one line naming the seed command, nothing written.
before=$(h_etcd_revision standby)
h_run_drd 45 replicate etcd --source "$P" --target "$S" --until-caught-up
after=$(h_etcd_revision standby)
h_log "fresh standby: exit $rc, revision $before -> $after, stdout: $out, stderr: $err"
if ((rc == 0)); then
    h_fail "exact mode on a fresh, unseeded standby exited 0 instead of 15: drd replayed the primary's history onto it (standby revision $before -> $after)"
fi
h_assert_eq "$rc" 15 "fresh standby: exit status (stderr: $err)"
h_assert_eq "$(wc -l <"$H_TMP/err")" 1 "fresh standby: lines on stderr (stderr: $err)"
h_assert_contains "$err" "drd replicate seed" "fresh standby: the error names the seed command"
h_assert_eq "$after" "$before" "revision of the fresh standby after drd refused"

h_log "took $((SECONDS - start))s"
h_pass
