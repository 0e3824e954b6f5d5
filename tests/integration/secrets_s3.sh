#!/usr/bin/env bash
# No secret in `ps` output or in a child's environment while drd restores from S3 (issue 10,
# part 5). drd restore (with segments replayed through the throw-away etcd), drd drill and drd
# restore keys run in the background against a real Ceph RGW, with the S3 keys in drd's
# environment (and a DRD_* and an ETCD_* variable that must not reach a child either); every
# few ms the test reads drd's command line and the command line and environment of each child
# (etcdctl, etcd). Checked: no AWS_* variable, S3 secret key, access key id or keyring key in any
# of them; a child's environment is PATH, TMPDIR and ETCDCTL_API at most; the throw-away etcd
# listens on no TCP port (only on unix sockets in a 0700 dir). At least one etcdctl and one
# throw-away etcd must have been seen, or the test would prove nothing.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/rgw.sh"

h_tmpdir
h_rgw_use
drd=$(h_drd_path)
export ETCDCTL_API=3
export TMPDIR="$H_TMP/tmp"
mkdir -m 0700 "$TMPDIR"
export DRD_CATALOG_DIR="$H_TMP/catalog"
STORE="s3://$RGW_BUCKET/secrets-$$-$RANDOM"
S=(--store "$STORE" --s3-endpoint "$RGW_ENDPOINT" --s3-insecure-http --key-file "$H_TMP/keys")
SAMPLES="$H_TMP/samples"
mkdir "$SAMPLES"

h_etcd_start primary "$H_TMP/primary"
h_run_drd 10 key generate --out "$H_TMP/keys"
h_assert_eq "$rc" 0 "key generate ($err)"
for ((i = 0; i < 200; i++)); do
    h_etcdctl primary put "/registry/secrets/ns-$((i % 4))/s-$i" "{\"i\":$i}" >/dev/null
done
h_run_drd 60 --log-level warn snapshot save --etcd "$PRIMARY_URL" "${S[@]}"
h_assert_eq "$rc" 0 "snapshot save ($err)"
for ((i = 0; i < 50; i++)); do
    h_etcdctl primary put "/registry/secrets/ns-1/s-$i" "{\"i\":$i,\"v\":2}" >/dev/null
done
FINAL_REV=$(h_etcd_revision primary)
h_run_drd 120 --log-level warn snapshot follow --etcd "$PRIMARY_URL" "${S[@]}" --until-revision "$FINAL_REV"
h_assert_eq "$rc" 0 "segments up to revision $FINAL_REV ($err)"

# sample PID: until PID exits, copy its command line and each child's command line, environment
# and listening TCP sockets into $SAMPLES (one file per child and kind, appended)
sample() {
    local pid=$1 c n=0
    while [[ -d /proc/$pid ]]; do
        tr '\0' ' ' <"/proc/$pid/cmdline" >>"$SAMPLES/drd.cmdline" 2>/dev/null || true
        for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
            local comm
            comm=$(cat "/proc/$c/comm" 2>/dev/null) || continue
            # a child still named drd has not exec'd yet: it shares drd's memory (posix_spawn's
            # vfork), so /proc shows drd's own environment, not the one the child will get
            [[ "$comm" != drd ]] || continue
            # environment and command line first: a short-lived child may be gone after the wait
            tr '\0' '\n' <"/proc/$c/environ" >>"$SAMPLES/$comm.$c.environ" 2>/dev/null || true
            tr '\0' ' ' <"/proc/$c/cmdline" >>"$SAMPLES/$comm.$c.cmdline" 2>/dev/null || true
            if [[ "$comm" == etcd && ! -e "$SAMPLES/$comm.$c.tcp" ]]; then
                sleep 0.5 # long enough for it to have bound its listeners
                ss -ltnpH 2>/dev/null | grep "pid=$c," >"$SAMPLES/$comm.$c.tcp" || true
            fi
        done
        n=$((n + 1))
        sleep 0.005
    done
    echo "$n" >>"$SAMPLES/rounds"
}

# watched NAME ARGS...: drd ARGS in the background with the secrets in its environment, sampled
watched() {
    local name=$1
    shift
    h_bg "$name" env DRD_SAMPLE_MARKER=drd-only ETCD_NAME=must-not-reach-etcd "$drd" --log-level warn "$@"
    local pid_var
    pid_var="$(_h_var "$name")_PID"
    sample "${!pid_var}"
    h_wait_exit "$name" 300 || h_fail "drd $1 failed: $(tail -n 5 "$H_TMP/$name.log")"
}

h_log "restore to revision $FINAL_REV (segments replayed through the throw-away etcd), sampled"
h_etcd_reserve r1
watched restore restore "${S[@]}" --revision "$FINAL_REV" --data-dir "$H_TMP/r1" --name r1 \
    --initial-cluster "$R1_INITIAL_CLUSTER" --initial-advertise-peer-urls "$R1_PEER_URL"
h_log "drill, sampled"
watched drill drill "${S[@]}" --revision "$FINAL_REV"
h_log "restore keys, sampled"
watched keys restore keys "${S[@]}" --revision "$FINAL_REV" --prefix /registry/secrets/ns-1/ \
    --target "$PRIMARY_URL" --dry-run

h_log "checking $(awk '{n += $1} END {print n}' "$SAMPLES/rounds") sampling rounds"
ls "$SAMPLES" >"$H_TMP/sample-files"
grep -q '^etcdctl\..*\.environ$' "$H_TMP/sample-files" || h_fail "no etcdctl child was sampled: $(cat "$H_TMP/sample-files")"
grep -q '^etcd\..*\.environ$' "$H_TMP/sample-files" || h_fail "no throw-away etcd was sampled: $(cat "$H_TMP/sample-files")"
[[ -s "$SAMPLES/drd.cmdline" ]] || h_fail "drd's command line was not sampled"
secrets=("$AWS_SECRET_ACCESS_KEY" "$AWS_ACCESS_KEY_ID")
while read -r word name hex; do
    [[ "$word" == key ]] && secrets+=("$hex")
done <"$H_TMP/keys"
((${#secrets[@]} >= 3)) || h_fail "no keyring key to look for"
for f in "$SAMPLES"/*; do
    for s in "${secrets[@]}"; do
        ! grep -qF -- "$s" "$f" || h_fail "a secret appears in $(basename "$f")"
    done
    ! grep -q 'AWS_' "$f" || h_fail "an AWS_ variable appears in $(basename "$f"): $(grep AWS_ "$f" | cut -d= -f1)"
    case "$f" in
    *.environ)
        extra=$(cut -d= -f1 "$f" | sort -u | grep -Ev '^(PATH|TMPDIR|ETCDCTL_API)$' || true)
        h_assert_eq "$extra" "" "$(basename "$f"): only PATH, TMPDIR and ETCDCTL_API"
        ;;
    *.tcp)
        h_assert_eq "$(cat "$f")" "" "$(basename "$f"): the child listens on no TCP port"
        ;;
    esac
done
grep -h 'unix://' "$SAMPLES"/etcd.*.cmdline >/dev/null || h_fail "the throw-away etcd was not on a unix socket"
! grep -h '127\.0\.0\.1' "$SAMPLES"/etcd.*.cmdline || h_fail "the throw-away etcd was given a TCP URL"
left=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 ! -name 'drd-harness-*' | head -5)
h_assert_eq "$left" "" "drd's scratch and socket dirs under TMPDIR were removed"
h_pass
