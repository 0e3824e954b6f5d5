#!/usr/bin/env bash
# drd run --config F --check: the issue's example config (with real files) is accepted; bad
# configs (unknown key, wrong type, bad cron, bad time zone, missing file, dangling reference,
# inline secret, YAML syntax, a missing config) exit non-zero with one line
# "file:line:column: message". No etcd is needed: --check never connects.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
cd "$H_TMP"
touch ca.pem c.pem k.pem keys
chmod 600 k.pem keys
good() {
    cat <<YAML
listen: 127.0.0.1:9100             # /healthz /readyz /metrics /status
state_dir: $H_TMP/state
clusters:
  primary: { endpoints: [http://127.0.0.1:2379], cacert: ca.pem, cert: c.pem, key: k.pem }
  standby: { endpoints: [http://127.0.0.1:2479] }
stores:
  main: { url: s3://bucket/prefix, s3_endpoint: "h:9000", s3_insecure_http: false, key_file: keys }
replicate:
  - { name: global, mode: exact, source: primary, target: standby }
snapshots:
  - { name: primary, cluster: primary, store: main, schedule: "*/15 * * * *", segments: 10s,
      retention: { keep_last: 4, hourly: 24, daily: 7, weekly: 4, monthly: 6 } }
drills:
  - { name: nightly, store: main, schedule: "CRON_TZ=Europe/Berlin 0 3 * * *" }
YAML
}
good >drd.yaml
h_run_drd 30 run --config drd.yaml --check
h_assert_eq "$rc" 0 "the example config is accepted (stderr: $err)"
h_assert_contains "$out" "drd.yaml: ok (2 clusters, 1 stores; jobs: 1 replicate, 1 snapshot, 1 drill)" "summary"

# bad SED_EXPR WANT: the good config edited by sed must fail with WANT on one line
bad() {
    good | sed -e "$1" >bad.yaml
    h_run_drd 30 run --config bad.yaml --check
    ((rc != 0)) || h_fail "accepted: $1"
    h_assert_eq "$rc" 2 "exit status for $1 (stderr: $err)"
    h_assert_eq "$(wc -l <<<"$err")" 1 "one line for $1: $err"
    h_assert_contains "$err" "$2" "message for $1"
}
bad 's/^listen:/lisen:/' "drd: bad.yaml:1:1: unknown key 'lisen'"
bad 's/s3_insecure_http: false/s3_insecure_http: "no"/' "bad.yaml:7:77: stores.main.s3_insecure_http: expected true or false"
bad 's#"\*/15 \* \* \* \*"#"*/15 * * *"#' "bad.yaml:11:63: snapshots[0].schedule: schedule '*/15 * * *': expected 5 fields"
bad 's#"\*/15 \* \* \* \*"#"0 3 * * mon-xyz"#' "bad.yaml:11:63: snapshots[0].schedule: schedule '0 3 * * mon-xyz': day-of-week field 'mon-xyz': unknown name"
bad 's#Europe/Berlin#Europe/Atlantis#' "bad.yaml:14:45: drill nightly: unknown time zone 'Europe/Atlantis'"
bad 's#cacert: ca.pem#cacert: missing.pem#' "bad.yaml:4:58: cacert 'missing.pem': cannot read it: No such file or directory"
bad 's#key_file: keys#key_file: nokeys#' "bad.yaml:7:94: key_file 'nokeys': cannot read it"
bad 's#store: main, schedule: "CRON#store: mian, schedule: "CRON#' "bad.yaml:14:29: drill nightly: no store 'mian' (stores: main)"
bad 's#key_file: keys#s3_secret_access_key: hunter2#' "stores.main: 's3_secret_access_key': secrets are never written into the config"
bad 's#mode: exact#mode: exact, prefixes: [/a/]#' "bad.yaml:9:5: replicate global: prefixes, exclude and dest_prefix need mode: filtered"
bad 's#^replicate:#replicate: [#' "bad.yaml:"
bad 's#retention: {#retention: { keep_last: -1,#' "bad.yaml:12:31: snapshots[0].retention.keep_last: expected a whole number, found '-1'"
if grep -q hunter2 <<<"$err"; then h_fail "the secret was printed"; fi

h_log "a secret file (keyring, TLS key, S3 credentials) others may read is refused, as the commands do"
good >drd.yaml
for f in keys:7:94:key_file:keyring k.pem:4:84:key:"etcd client key"; do
    IFS=: read -r file line col key what <<<"$f"
    chmod 644 "$file"
    h_run_drd 30 run --config drd.yaml --check
    h_assert_eq "$rc" 2 "a $what at 0644 is refused (stderr: $err)"
    h_assert_contains "$err" "drd.yaml:$line:$col: $key: $what '$file' has mode 0644: group or others may access it" "message for $file"
    h_assert_contains "$err" "HINT: chmod 600 '$file'" "hint for $file"
    chmod 600 "$file"
done
printf '[default]\naws_access_key_id = A\naws_secret_access_key = B\n' >creds
chmod 640 creds
good | sed 's#key_file: keys#key_file: keys, s3_credentials: creds#' >drd.yaml
h_run_drd 30 run --config drd.yaml --check
h_assert_eq "$rc" 2 "S3 credentials at 0640 are refused (stderr: $err)"
h_assert_contains "$err" "drd.yaml:7:116: s3_credentials: S3 credentials file 'creds' has mode 0640" "message for the credentials"
chmod 600 creds
h_run_drd 30 run --config drd.yaml --check
h_assert_eq "$rc" 0 "at 0600 they are accepted (stderr: $err)"
chmod 644 ca.pem c.pem
good >drd.yaml
h_run_drd 30 run --config drd.yaml --check
h_assert_eq "$rc" 0 "a CA bundle and a certificate may be readable by others (stderr: $err)"

h_log "a volume's TLS key and PSK are named as such (not as the etcd client key of the same key name); an EncryptionConfiguration (it holds the encryption keys) is a secret too"
touch vk.pem psk enc.yaml
chmod 600 vk.pem psk enc.yaml
RB=$H_REPO/policies/runbooks
scoped() {
    good
    cat <<YAML
volumes:
  - { name: v1, role: push, source: $H_TMP, to: "127.0.0.1:9", schedule: "@every 1h",
      cert: c.pem, key: vk.pem, cacert: ca.pem }
  - { name: v2, role: push, source: $H_TMP, to: "127.0.0.1:9", schedule: "@every 1h",
      psk_file: psk }
failover:
  primary: primary
  standby: standby
  replicate: global
  planned: $RB/planned-switchover.yaml
  emergency: $RB/emergency-failover.yaml
  failback: $RB/failback.yaml
  encryption_config: enc.yaml
YAML
}
scoped >drd.yaml
h_run_drd 30 run --config drd.yaml --check
h_assert_eq "$rc" 0 "volume secrets and the EncryptionConfiguration at 0600 are accepted (stderr: $err)"
for f in vk.pem:17:25:key:"volume TLS key" psk:19:17:psk_file:"volume pre-shared key" \
    enc.yaml:27:22:encryption_config:EncryptionConfiguration; do
    IFS=: read -r file line col key what <<<"$f"
    chmod 644 "$file"
    h_run_drd 30 run --config drd.yaml --check
    h_assert_eq "$rc" 2 "a $what at 0644 is refused (stderr: $err)"
    h_assert_contains "$err" "drd.yaml:$line:$col: $key: $what '$file' has mode 0644: group or others may access it" "message for $file"
    chmod 600 "$file"
done

h_log "every flag the option table names (docs/daemon.md) is a flag of some command"
docs=$(dirname "$0")/../../docs/daemon.md
help=$(for c in "replicate etcd" "snapshot save" "snapshot follow" "snapshot prune" "restore" "drill" \
    "replicate volume push" "replicate volume serve"; do
    h_drd $c --help
done)
flags=$(sed -n '/^<!-- keys:begin -->$/,/^<!-- keys:end -->$/p' "$docs" | grep -o '`--[^`]*`' | tr -d '`')
(($(wc -l <<<"$flags") > 20)) || h_fail "too few flags found in $docs"
for f in $flags; do
    for g in $(eval echo "$f"); do # --{etcd,source,target}-cacert -> three flags
        grep -q -- "$g\b" <<<"$help" || h_fail "$g (docs/daemon.md) is in no command's --help"
    done
done

h_run_drd 30 run --config nothere.yaml --check
h_assert_eq "$rc" 3 "missing config: ENOTFOUND"
h_assert_contains "$err" "cannot read 'nothere.yaml'" "missing config named"
h_run_drd 30 run --check
h_assert_eq "$rc" 2 "no --config"
h_pass
