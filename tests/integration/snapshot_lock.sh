#!/usr/bin/env bash
# Lock objects in the store (locks/<job>-<start ms>-<nonce>.json) that someone planted cannot hold
# `drd snapshot save` off for longer than the lock TTL after they were written, whatever their
# expires_ms says (the store's mtime bounds them: drd/lib/repo/lock.c); garbage bodies and names
# with a start time in the future are removed at once; a live lock still refuses (exit 18).
# DRD_TEST_LOCK_TTL_MS (a test knob) shortens the TTL so that this takes seconds.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
h_etcd_start primary "$H_TMP/primary"
h_etcdctl primary put /a 1 >/dev/null
mkdir -p "$H_TMP/store"
h_run_drd 10 key generate --out "$H_TMP/keys"
h_assert_eq "$rc" 0 "key generate ($err)"
save() {
    h_run_drd 60 --log-level error snapshot save --etcd "$PRIMARY_URL" --store "file://$H_TMP/store" \
        --key-file "$H_TMP/keys" --catalog "$H_TMP/catalog.db"
}
now_ms() { date +%s%3N; }
# plant NAME_START_MS NONCE BODY: a lock object as another host's drd would write it
plant() {
    local f="$H_TMP/store/locks/save-$1-$2.json"
    mkdir -p "$H_TMP/store/locks" # the file store removes empty directories
    printf '%s\n' "$3" >"$f"
    printf '%s' "$f"
}
YEAR_2100=4102444800000
body() { printf '{"host": "elsewhere.example", "pid": 4242, "expires_ms": %s}' "$1"; }

h_log "a lock that says year 2100, written just now: blocks only until TTL + skew (test TTL 4 s)"
export DRD_TEST_LOCK_TTL_MS=4000 # skew 1 s: live until mtime + 5 s
t0=$(now_ms)
f=$(plant "$t0" 00000001 "$(body $YEAR_2100)")
save
h_assert_eq "$rc" 18 "refused while the planted lock counts (stderr: $err)"
h_assert_contains "$err" "host elsewhere.example pid 4242" "the error names the holder"
secs=$(sed -n 's/.*until \([0-9]*\)s from now.*/\1/p' <<<"$err")
((secs <= 5)) || h_fail "the holder is said to hold for ${secs}s, more than TTL + skew"
until save && ((rc != 18)); do
    (($(now_ms) - t0 < 15000)) || h_fail "the planted lock still blocks after 15 s (stderr: $err)"
    sleep 0.5
done
h_assert_eq "$rc" 0 "save after the planted lock lapsed (stderr: $err)"
waited=$(($(now_ms) - t0))
h_log "the year-2100 lock blocked for $waited ms"
((waited >= 3500)) || h_fail "the planted lock counted only $waited ms (want about 5 s)"
[[ ! -e "$f" ]] || h_fail "the lapsed lock was not removed"
unset DRD_TEST_LOCK_TTL_MS

h_log "default TTL: a year-2100 lock last written 10 minutes ago does not block"
f=$(plant "$(($(now_ms) - 600000))" 00000002 "$(body $YEAR_2100)")
touch -d '10 minutes ago' "$f"
save
h_assert_eq "$rc" 0 "save past a stale year-2100 lock (stderr: $err)"
[[ ! -e "$f" ]] || h_fail "the stale lock was not removed"

h_log "garbage bodies and start times in the future are not locks"
g1=$(plant "$(now_ms)" 00000003 'garbage{')
g2=$(plant "$(now_ms)" 00000004 '{"host": "elsewhere.example", "pid": 4242}')
g3=$(plant "$(($(now_ms) + 3600000))" 00000005 "$(body $(($(now_ms) + 60000)))")
t0=$SECONDS
save
h_assert_eq "$rc" 0 "save past garbage locks (stderr: $err)"
((SECONDS - t0 < 10)) || h_fail "garbage locks delayed the save by $((SECONDS - t0)) s"
for f in "$g1" "$g2" "$g3"; do [[ ! -e "$f" ]] || h_fail "'$f' was not removed"; done

h_log "a live lock (expires in 60 s, written now) still refuses"
f=$(plant "$(now_ms)" 00000006 "$(body $(($(now_ms) + 60000)))")
save
h_assert_eq "$rc" 18 "refused by a live lock (stderr: $err)"
h_assert_eq "$(printf '%s\n' "$err" | grep -c .)" 1 "one line (stderr: $err)"
[[ -e "$f" ]] || h_fail "the live lock was removed"
h_pass
