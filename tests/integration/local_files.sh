#!/usr/bin/env bash
# Secrets and local files (issue 10, parts 5 and 6), with the real drd against a real etcd over TLS:
#  - every secret file is refused (exit 10, DR_EAUTH), not warned about, when group or others may
#    read it or another user owns it: the keyring (--key-file), the etcd client key (--etcd-key)
#    and the S3 credentials file (AWS_SHARED_CREDENTIALS_FILE);
#  - an S3 session token is never sent over plain http (exit 2 before any request);
#  - the local catalog: no fallback to a shared /tmp location (an error naming XDG_STATE_HOME and
#    --catalog), drd's own dir made 0700, a dir another user owns or others may write refused;
#  - restore keys prints etcd keys escaped (a key holding a terminal escape sequence);
#  - no drd scratch dir is left behind under TMPDIR.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
drd=$(h_drd_path)
export TMPDIR="$H_TMP/tmp" # the scratch dirs drd makes land here (and are checked for at the end)
mkdir -m 0700 "$TMPDIR"
export DRD_CATALOG_DIR="$H_TMP/catalog"
mkdir -p "$H_TMP/store"
STORE="file://$H_TMP/store"
NOBODY=65534

# run CMD...: rc, out, err of one command (with a time limit)
run() {
    rc=0
    timeout 120 "$@" >"$H_TMP/out" 2>"$H_TMP/err" || rc=$?
    out=$(cat "$H_TMP/out")
    err=$(cat "$H_TMP/err")
    ((rc != 124)) || h_fail "$* did not finish within 120 s"
}
expect() { # expect RC PART DESC
    h_assert_eq "$rc" "$1" "$3: exit code (stderr: $err)"
    h_assert_contains "$err" "$2" "$3: the message names the problem"
}

h_certs "$H_TMP/certs"
h_etcd_start primary "$H_TMP/primary" --tls "$H_TMP/certs"
TLS=(--etcd-cacert "$PRIMARY_CACERT" --etcd-cert "$PRIMARY_CERT")
h_run_drd 10 key generate --out "$H_TMP/keys"
h_assert_eq "$rc" 0 "key generate ($err)"
cp "$PRIMARY_KEY" "$H_TMP/client-key.pem"
chmod 600 "$H_TMP/client-key.pem"
save() { run "$drd" --log-level warn snapshot save --etcd "$PRIMARY_URL" "${TLS[@]}" --store "$STORE" "$@"; }

h_log "the private files work"
save --etcd-key "$H_TMP/client-key.pem" --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "snapshot save with a private keyring and client key ($err)"

# refused WHAT GOOD USE: copies of the private file GOOD that are 0644, 0640, another user's, or a
# symlink to a 0640 one are each refused by `USE FILE` (exit 10, the message names WHAT and FILE)
refused() {
    local what=$1 good=$2 use=$3
    cp "$good" "$good.open"
    chmod 644 "$good.open"
    "$use" "$good.open"
    expect 10 "$what '$good.open' has mode 0644" "0644 $what"
    h_assert_contains "$err" "chmod 600" "0644 $what: the hint"
    chmod 640 "$good.open"
    "$use" "$good.open"
    expect 10 "$what '$good.open' has mode 0640" "0640 $what"
    cp "$good" "$good.nobody"
    chown "$NOBODY" "$good.nobody"
    "$use" "$good.nobody"
    expect 10 "$what '$good.nobody' is owned by uid $NOBODY" "$what owned by another user"
    ln -s "$good.open" "$good.link"
    "$use" "$good.link"
    expect 10 "has mode 0640" "a symlink to a 0640 $what"
    h_assert_eq "$(grep -c PRIVATE <<<"$err" || true)" 0 "no key material in the message"
}
with_keyring() { save --etcd-key "$H_TMP/client-key.pem" --key-file "$1"; }
with_client_key() { save --etcd-key "$1" --key-file "$H_TMP/keys"; }
h_log "keyring: readable by others, or another user's: refused"
refused keyring "$H_TMP/keys" with_keyring
h_log "etcd client key: readable by others, or another user's: refused"
refused "etcd client key" "$H_TMP/client-key.pem" with_client_key

h_log "S3 credentials file: readable by others, or another user's: refused"
NOCREDS=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE)
S3=(snapshot list --store s3://some-bucket/p --s3-endpoint 127.0.0.1:1 --s3-insecure-http)
(umask 077 && printf '[default]\naws_access_key_id = AKIDLOCALFILES\naws_secret_access_key = sEcReT-lOcAl-FiLeS\n' >"$H_TMP/creds")
chmod 644 "$H_TMP/creds"
run "${NOCREDS[@]}" AWS_SHARED_CREDENTIALS_FILE="$H_TMP/creds" "$drd" "${S3[@]}"
expect 10 "S3 credentials file '$H_TMP/creds' has mode 0644" "0644 credentials file"
mkdir -p "$H_TMP/home/.aws"
cp "$H_TMP/creds" "$H_TMP/home/.aws/credentials"
run "${NOCREDS[@]}" -u AWS_SHARED_CREDENTIALS_FILE HOME="$H_TMP/home" "$drd" "${S3[@]}"
expect 10 "S3 credentials file '$H_TMP/home/.aws/credentials' has mode 0644" "0644 ~/.aws/credentials"
chmod 600 "$H_TMP/creds"
chown "$NOBODY" "$H_TMP/creds"
run "${NOCREDS[@]}" AWS_SHARED_CREDENTIALS_FILE="$H_TMP/creds" "$drd" "${S3[@]}"
expect 10 "is owned by uid $NOBODY" "credentials file owned by another user"
chown 0 "$H_TMP/creds"
run "${NOCREDS[@]}" AWS_SHARED_CREDENTIALS_FILE="$H_TMP/creds" "$drd" "${S3[@]}"
h_assert_eq "$rc" 4 "a private credentials file is used (the endpoint is down: exit 4) ($err)"
for text in "$out" "$err"; do
    [[ "$text" != *sEcReT-lOcAl-FiLeS* ]] || h_fail "the secret key was printed: $text"
done

h_log "a session token never travels over plain http"
run env AWS_ACCESS_KEY_ID=AKIDTOKEN AWS_SECRET_ACCESS_KEY=sEcReT-tOkEn AWS_SESSION_TOKEN=tOkEn-VaLuE \
    "$drd" "${S3[@]}"
expect 2 "refusing to send an S3 session token over plain http" "session token over http"
[[ "$err" != *tOkEn-VaLuE* && "$err" != *sEcReT-tOkEn* ]] || h_fail "a secret was printed: $err"

h_log "catalog: no shared /tmp fallback, 0700, owner and mode checked"
run env -u HOME -u XDG_STATE_HOME -u DRD_CATALOG_DIR "$drd" snapshot list --store "$STORE"
expect 2 "XDG_STATE_HOME" "no HOME, XDG_STATE_HOME or DRD_CATALOG_DIR"
h_assert_contains "$err" "--catalog" "the catalog error names --catalog"
run env -u DRD_CATALOG_DIR XDG_STATE_HOME="$H_TMP/state" "$drd" snapshot list --store "$STORE"
h_assert_eq "$rc" 0 "catalog under XDG_STATE_HOME ($err)"
h_assert_eq "$(stat -c %a "$H_TMP/state/drd")" 700 "the catalog dir is 0700"
h_assert_eq "$(stat -c %a "$H_TMP/state/drd"/catalog-*.db)" 600 "the catalog is 0600"
mkdir -p "$H_TMP/home2/.local/state/drd"
chmod 755 "$H_TMP/home2/.local/state/drd"
run env -u DRD_CATALOG_DIR -u XDG_STATE_HOME HOME="$H_TMP/home2" "$drd" snapshot list --store "$STORE"
h_assert_eq "$rc" 0 "catalog under HOME ($err)"
h_assert_eq "$(stat -c %a "$H_TMP/home2/.local/state/drd")" 700 "drd's own catalog dir made 0700"
mkdir -m 0777 "$H_TMP/shared"
run env DRD_CATALOG_DIR="$H_TMP/shared" "$drd" snapshot list --store "$STORE"
expect 10 "catalog dir '$H_TMP/shared' has mode 0777" "a catalog dir others may write to"
run "$drd" snapshot list --store "$STORE" --catalog /tmp/drd-local-files-$$.db
expect 10 "catalog dir '/tmp'" "--catalog in /tmp"
[[ ! -e /tmp/drd-local-files-$$.db ]] || h_fail "a catalog was created in /tmp"
mkdir -m 0700 "$H_TMP/theirs"
chown "$NOBODY" "$H_TMP/theirs"
run env DRD_CATALOG_DIR="$H_TMP/theirs" "$drd" snapshot list --store "$STORE"
expect 10 "is owned by uid $NOBODY" "a catalog dir another user owns"

h_log "restore keys: keys are printed escaped, through a throw-away etcd on a unix socket"
ESC_KEY=$'/esc/\e]0;pwned\a\e[2J'
h_etcdctl primary put "$ESC_KEY" v >/dev/null
save --etcd-key "$H_TMP/client-key.pem" --key-file "$H_TMP/keys"
h_assert_eq "$rc" 0 "snapshot save ($err)"
h_etcdctl primary del "$ESC_KEY" >/dev/null
run "$drd" --log-level warn restore keys --store "$STORE" --key-file "$H_TMP/keys" --snapshot latest \
    --prefix /esc/ --target "$PRIMARY_URL" "${TLS[@]}" --etcd-key "$H_TMP/client-key.pem" --dry-run
h_assert_eq "$rc" 0 "restore keys --dry-run ($err)"
h_assert_contains "$out" 'would create /esc/\x1b]0;pwned\x07\x1b[2J' "the key is shown escaped"
[[ "$out$err" != *$'\e'* && "$out$err" != *$'\a'* ]] || h_fail "a raw control byte reached the terminal"

h_log "a TMPDIR too long for the throw-away etcd's socket path: a clear error"
LONG="$TMPDIR/$(printf 'x%.0s' {1..90})"
mkdir -m 0700 "$LONG"
run env TMPDIR="$LONG" "$drd" --log-level warn drill --store "$STORE" --key-file "$H_TMP/keys"
((rc != 0)) || h_fail "drill with a socket path over 107 bytes exited 0"
h_assert_contains "$out$err" "set TMPDIR to a shorter directory" "the socket path error says what to do"
rmdir "$LONG" || h_fail "drill left something under the long TMPDIR: $(ls -A "$LONG")"

h_log "no scratch dir left behind"
left=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 ! -name 'drd-harness-*' | head -5)
h_assert_eq "$left" "" "drd's scratch dirs under TMPDIR were removed"
h_pass
