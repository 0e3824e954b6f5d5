#!/usr/bin/env bash
# drd replicate volume refuses what it must: a hostile source (tests/harness/vol_evil.py, over TLS
# with a valid client certificate) sending '../', absolute names, NUL bytes, paths through a
# symlink, hard links through a symlink, data beyond a file's size, a huge frame, entries out of
# order; nothing is written outside the root and the server keeps serving; a delta whose result
# fails the sha256 check is asked for again whole. A wrong PSK, a short PSK, a PSK others can
# read, a client certificate from another CA are refused at the handshake. Bad input (missing dir,
# unreadable key file, port in use, bad flags) gives one line and the error's exit code.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/volume.sh"

v_setup
h_certs "$H_TMP/certs"
CERTS=$H_TMP/certs
OUT=$H_TMP/outside
mkdir -p "$OUT"
echo secret >"$OUT/secret"
snapshot() { (cd "$H_TMP" && find . -path ./dst -prune -o -print | sort | grep -v '\.log$' | grep -v '^./out$\|^./err$'); }

h_log "a hostile source, with a valid certificate"
v_serve dst "$H_TMP/dst" --cert "$CERTS/server.pem" --key "$CERTS/server-key.pem" --cacert "$CERTS/ca.pem"
before=$(snapshot)
answers=$(python3 "$HARNESS/vol_evil.py" 127.0.0.1 "$V_PORT" "$CERTS/ca.pem" "$CERTS/client.pem" \
    "$CERTS/client-key.pem" "$OUT" dotdot dotdot-deep absolute nul symlink-parent \
    hardlink-through-symlink publish-symlink dir-over-symlink data-beyond-size huge-frame \
    out-of-order complete-early delta-mismatch)
h_log "answers:
$answers"
for sc in dotdot dotdot-deep absolute nul symlink-parent hardlink-through-symlink data-beyond-size \
    huge-frame out-of-order complete-early; do
    grep -q "^$sc: ERROR " <<<"$answers" || h_fail "$sc was not refused: $(grep "^$sc:" <<<"$answers")"
done
h_assert_contains "$(grep '^dotdot:' <<<"$answers")" "refused" "names the bad path"
h_assert_contains "$answers" "publish-symlink: PUBLISHED" "a symlink out of the root is stored as a symlink"
h_assert_contains "$answers" "dir-over-symlink: DONE" "a directory replaces the symlink"
h_assert_eq "$(snapshot)" "$before" "nothing written outside the server's root"
h_assert_eq "$(cat "$OUT/secret")" secret "outside file intact"
[[ -f "$H_TMP/dst/evil/current/esc/evil" && ! -L "$H_TMP/dst/evil/current/esc" ]] ||
    h_fail "the file meant for the symlink's target is not inside the root"
h_assert_contains "$answers" "delta-mismatch: WANT_WHOLE, then DONE" \
    "a delta whose result fails the sha256 check is asked for again whole"
h_assert_eq "$(cat "$H_TMP/dst/evil/current/dm")" 12345678 "the file sent whole after the bad delta"
h_running dst || h_fail "the server died"
grep -q "refused" "$DST_LOG" || h_fail "server log does not say what it refused"

h_log "certificates: the right ones work, another CA's client is refused"
mkdir -p "$H_TMP/src"
echo data >"$H_TMP/src/f"
CERT_ARGS=(--cert "$CERTS/client.pem" --key "$CERTS/client-key.pem" --cacert "$CERTS/ca.pem")
h_run_drd 60 replicate volume push --to "$V_ADDR" --source "$H_TMP/src" --name c "${CERT_ARGS[@]}"
h_assert_eq "$rc" 0 "push with certificates (stderr: $err)"
h_run_drd 60 replicate volume push --to "$V_ADDR" --source "$H_TMP/src" --name c \
    --cert "$CERTS/other-client.pem" --key "$CERTS/other-client-key.pem" --cacert "$CERTS/ca.pem"
h_assert_eq "$rc" 5 "client of another CA: ETLS ($err)"
h_assert_eq "$(wc -l <<<"$err")" 1 "one line: $err"
h_run_drd 60 replicate volume push --to "$V_ADDR" --source "$H_TMP/src" --name c \
    --cert "$CERTS/client.pem" --key "$CERTS/client-key.pem" --cacert "$CERTS/other-ca.pem"
h_assert_eq "$rc" 5 "server not signed by our CA: ETLS ($err)"
h_assert_contains "$err" "certificate" "says it is the certificate: $err"
h_stop dst

h_log "PSK: wrong key refused at the handshake, on both sides"
v_serve dst2 "$H_TMP/dst2" --psk-file "$PSK"
h_drd key generate --psk --out "$H_TMP/other-psk" >/dev/null
h_run_drd 60 replicate volume push --to "$V_ADDR" --psk-file "$H_TMP/other-psk" --source "$H_TMP/src" --name p
h_assert_eq "$rc" 5 "wrong PSK: ETLS ($err)"
h_assert_eq "$(wc -l <<<"$err")" 1 "one line: $err"
h_assert_contains "$err" "psk-file" "names the likely cause: $err"
[[ ! -e "$H_TMP/dst2/p" ]] || h_fail "a push with the wrong key created the volume"
h_wait_until 10 "server logs the refused handshake" grep -q "TLS handshake with client" "$DST2_LOG"
! grep -q "$(head -c 64 "$PSK")" "$DST2_LOG" "$H_TMP/err" || h_fail "the key appears in a log"
v_push --source "$H_TMP/src" --name p
h_assert_eq "$rc" 0 "right PSK (stderr: $err)"

h_log "PSK files: too short, readable by others, missing"
printf '%s\n' 0123456789abcdef0123456789abcdef >"$H_TMP/short-psk"
chmod 600 "$H_TMP/short-psk"
h_run_drd 30 replicate volume push --to "$V_ADDR" --psk-file "$H_TMP/short-psk" --source "$H_TMP/src" --name p
h_assert_eq "$rc" 10 "16-byte PSK: EAUTH ($err)"
h_assert_contains "$err" "fewer than 32" "says why: $err"
cp "$PSK" "$H_TMP/open-psk"
chmod 644 "$H_TMP/open-psk"
h_run_drd 30 replicate volume serve --listen 127.0.0.1:0 --root "$H_TMP/dst2" --psk-file "$H_TMP/open-psk"
h_assert_eq "$rc" 10 "PSK readable by others: EAUTH ($err)"
h_assert_contains "$(head -n 1 <<<"$err")" "mode 0644" "one line naming the problem, then a HINT: $err"
h_run_drd 30 replicate volume push --to "$V_ADDR" --psk-file "$H_TMP/missing" --source "$H_TMP/src" --name p
h_assert_eq "$rc" 3 "missing PSK file: ENOTFOUND ($err)"
h_assert_eq "$(wc -l <<<"$err")" 1 "one line: $err"
h_run_drd 30 key generate --psk --out "$PSK"
h_assert_eq "$rc" 2 "key generate never replaces a key ($err)"
h_assert_eq "$(stat -c %a "$PSK")" 600 "PSK mode"

h_log "bad input: one line each"
one_line() { # EXPECTED_RC WHAT PART
    h_assert_eq "$rc" "$1" "$2: exit ($err)"
    h_assert_eq "$(wc -l <<<"$err")" 1 "$2: one line: $err"
    h_assert_contains "$err" "$3" "$2: names the problem"
}
h_run_drd 30 replicate volume push --to "$V_ADDR" --psk-file "$PSK" --source "$H_TMP/nope" --name p
one_line 3 "missing source dir" "nope"
h_run_drd 30 replicate volume serve --listen "$V_ADDR" --root "$H_TMP/dst2" --psk-file "$PSK"
one_line 2 "port in use" "$V_ADDR"
h_run_drd 30 replicate volume serve --listen 127.0.0.1:0 --root "$H_TMP/nope" --psk-file "$PSK"
one_line 3 "missing root" "nope"
h_run_drd 30 replicate volume push --to "$V_ADDR" --psk-file "$PSK" --source "$H_TMP/src" --name ../x
one_line 2 "bad volume name" "volume name"
h_run_drd 30 replicate volume push --to "$V_ADDR" --source "$H_TMP/src" --name p
one_line 2 "no key" "--psk-file"
h_run_drd 30 replicate volume push --to "$V_ADDR" --psk-file "$PSK" --source "$H_TMP/src" --name p --bwlimit fast
one_line 2 "bad rate" "--bwlimit"
chmod 000 "$H_TMP/src"
if [[ $(id -u) != 0 ]]; then
    h_run_drd 30 replicate volume push --to "$V_ADDR" --psk-file "$PSK" --source "$H_TMP/src" --name p
    one_line 12 "unreadable source" "src"
fi
chmod 755 "$H_TMP/src"
# unreadable: mode 000 stops anyone but root; a directory in its place stops root too
cp "$CERTS/client-key.pem" "$H_TMP/key-unreadable.pem"
chmod 000 "$H_TMP/key-unreadable.pem"
[[ $(id -u) != 0 ]] || { rm "$H_TMP/key-unreadable.pem" && mkdir "$H_TMP/key-unreadable.pem"; }
h_run_drd 30 replicate volume push --to "$V_ADDR" --source "$H_TMP/src" --name p \
    --cert "$CERTS/client.pem" --key "$H_TMP/key-unreadable.pem" --cacert "$CERTS/ca.pem"
((rc != 0 && rc != 5)) || h_fail "an unreadable key file got as far as the handshake ($rc: $err)"
h_assert_eq "$(wc -l <<<"$err")" 1 "unreadable key: one line: $err"
h_assert_contains "$err" "key-unreadable.pem" "names the key file"
h_run_drd 30 replicate volume push --to "$V_ADDR" --source "$H_TMP/src" --name p \
    --psk-file "$H_TMP/key-unreadable.pem"
((rc != 0 && rc != 5)) || h_fail "an unreadable PSK file got as far as the handshake ($rc: $err)"
h_assert_eq "$(wc -l <<<"$err")" 1 "unreadable PSK: one line: $err"
h_run_drd 30 replicate volume push --to 127.0.0.1:1 --psk-file "$PSK" --source "$H_TMP/src" --name p
one_line 4 "nothing listening" "127.0.0.1:1"
h_pass
