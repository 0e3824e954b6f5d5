#!/usr/bin/env bash
# The drd command line: version, help, and bad input answered with one line on stderr and a
# non-zero exit, never a hang or a stack of messages.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir

# expect_error DESC NEEDLE args...: non-zero exit, exactly one line on stderr that contains NEEDLE
expect_error() {
    local desc=$1 needle=$2
    shift 2
    h_run_drd 30 "$@"
    ((rc != 0)) || h_fail "$desc: drd $* exited 0"
    h_assert_eq "$(wc -l <"$H_TMP/err")" 1 "$desc: lines on stderr (stderr: $err)"
    h_assert_contains "$err" "$needle" "$desc: error message"
}

h_run_drd 10 --version
h_assert_eq "$rc" 0 "drd --version exit status"
[[ "$out" =~ [0-9]+\.[0-9]+\.[0-9]+ ]] || h_fail "drd --version printed no version: '$out'"

h_run_drd 10 --help
h_assert_eq "$rc" 0 "drd --help exit status"
h_assert_contains "$out" replicate "drd --help lists subcommands"

# the group's help lists its commands as command lines, and only those (the global help also
# contains the words etcd, seed, status and verify, so a substring check could not fail)
h_run_drd 10 replicate --help
h_assert_eq "$rc" 0 "drd replicate --help exit status"
for sub in etcd seed status verify; do
    grep -Eq "^  replicate $sub +[a-z]" <<<"$out" || h_fail "drd replicate --help lists no 'replicate $sub' line: $out"
done
h_assert_eq "$(grep -Ec '^  (snapshot|restore|drill|key|catalog)' <<<"$out")" 0 \
    "commands of other groups in drd replicate --help"

h_run_drd 10 replicate etcd --help
h_assert_eq "$rc" 0 "drd replicate etcd --help exit status"
for flag in --source --target --mode --until-caught-up --status-listen; do
    h_assert_contains "$out" "$flag" "drd replicate etcd --help documents $flag"
done

expect_error "unknown command" nosuchcmd nosuchcmd
expect_error "unknown flag" --bogus-flag replicate etcd --bogus-flag

start=$SECONDS
expect_error "unreachable endpoint" 127.0.0.1: \
    replicate etcd --source http://127.0.0.1:1 --target http://127.0.0.1:2 --until-caught-up
[[ "$err" == *127.0.0.1:1* || "$err" == *127.0.0.1:2* ]] || h_fail "error names no endpoint: $err"
h_log "unreachable endpoint reported in $((SECONDS - start))s: $err"

h_pass
