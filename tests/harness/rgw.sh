# shellcheck shell=bash
# tests/harness/rgw.sh: a real S3 endpoint for drd's tests: a single-node Ceph cluster (one monitor,
# one bluestore OSD on a sparse file, radosgw) on loopback, entirely inside one directory.
# Source it after etcd.sh; do not run it.
#
#   source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
#   source "$HARNESS/rgw.sh"
#   h_rgw_use                     # the shared ctest instance, or a private one (standalone run)
#   aws_url="s3://$RGW_BUCKET/$H_TEST_NAME-$$"    # each test uses its own prefix
#
# What it must never do: touch /etc/ceph, /var/lib/ceph, /var/run/ceph or any system-wide state,
# start anything through systemd, or stop a process it did not start. Every daemon runs with
# `-c DIR/ceph.conf` in the foreground (-f) and is stopped by the PID recorded when it started
# (checked against the process start time, so a recycled PID is left alone), never by name.
# Daemons write to log files under DIR/log, never to the test's stdout/stderr.
#
# Functions:
#   h_rgw_start DIR    starts mon, osd and radosgw in DIR (emptied first: it must be empty or
#                      an earlier instance's dir, whose daemons are then stopped),
#                      creates the test user and bucket, warms up, exports (also written to
#                      DIR/env, a file of `export` lines):
#                        RGW_ENDPOINT  host:port (plain http on 127.0.0.1)
#                        RGW_TLS_ENDPOINT  host:port of the same radosgw over https, with a
#                                      certificate (SAN 127.0.0.1) signed by RGW_CACERT;
#                                      RGW_OTHER_CACERT is an unrelated CA (for "wrong CA")
#                        RGW_OTHER_NAME_ENDPOINT  host:port of the same radosgw over https with a
#                                      certificate signed by RGW_CACERT for another name only
#                                      (DNS:other.example): "certificate for another name"
#                        RGW_BUCKET    an existing bucket
#                        AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   the test user's fixed keys
#                        RGW_DIR, RGW_CONF (DIR/ceph.conf, for radosgw-admin -c / ceph -c)
#                      The daemons are tracked like h_bg processes: stopped when the test exits.
#   h_rgw_stop         stops radosgw, osd, mon (TERM, KILL after 10 s) by PID and waits.
#   h_rgw_use          sources $RGW_ENV_FILE (written by the ctest fixture integration.rgw_start)
#                      when it exists and its radosgw answers; else starts a private instance in
#                      a temp dir (so a script also runs standalone, ~20 s).
#   h_rgw_admin args...   radosgw-admin on the instance.
#   h_rgw_curl METHOD PATH [curl args...]   SigV4-signed curl to http://$RGW_ENDPOINT/PATH
#                      (curl's own --aws-sigv4: an independent peer for our client).
#
# The ctest fixture (tests/integration/objstore/rgw_fixture.sh start|stop DIR) runs h_rgw_start
# with H_RGW_DETACH=1: the daemons then outlive the setup script (they are not tracked, and run
# in their own session) and are stopped by `rgw_fixture.sh stop`, which reads DIR/pids. A stale
# instance left by a killed run is stopped (by those recorded PIDs) before a new one starts.
#
# Environment: H_RGW_START_TIMEOUT (default 90 s), H_RGW_ACCESS_KEY / H_RGW_SECRET_KEY (fixed
# test keys), H_RGW_BUCKET (default drd-test).

H_RGW_START_TIMEOUT=${H_RGW_START_TIMEOUT:-90}
H_RGW_ACCESS_KEY=${H_RGW_ACCESS_KEY:-DRDTESTACCESSKEY0001}
H_RGW_SECRET_KEY=${H_RGW_SECRET_KEY:-drdtestsecretkey0000000000000000000000001}
H_RGW_BUCKET=${H_RGW_BUCKET:-drd-test}
H_RGW_DETACH=${H_RGW_DETACH:-0}

_H_RGW_NAMES=()   # harness names of the daemons of the private instance, start order

# ---------------------------------------------------------------------------------------------

_h_rgw_log() { printf '=== %s: %s\n' "$(date '+%F %T')" "$*" >>"$RGW_DIR/log/harness.log"; }

# ceph CLI against the instance, as client.admin, bounded in time
_h_rgw_ceph() {
    timeout 30 ceph -c "$RGW_CONF" --connect-timeout 10 "$@" 2>>"$RGW_DIR/log/harness.log"
}

h_rgw_admin() {
    timeout 60 radosgw-admin -c "$RGW_CONF" -n client.admin "$@" 2>>"$RGW_DIR/log/harness.log"
}

# curl 7.88 signs x-amz-content-sha256 only when given (RGW requires it: without it every request
# fails with SignatureDoesNotMatch), and signs the query string as written: give it sorted, with
# "key=" for empty values.
h_rgw_curl() {
    local method=$1 path=$2
    shift 2
    curl -sS --max-time 60 -X "$method" --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        "$@" "http://$RGW_ENDPOINT/$path"
}

# Stops the processes listed in FILE ("pid starttime name" lines, start order): TERM in reverse
# order (radosgw, osd, mon), KILL after 10 s; only those whose start time still matches.
_h_rgw_stop_file() {
    local file=$1 recs=() line i
    [[ -r "$file" ]] || return 0
    while read -r line; do [[ -n "$line" ]] && recs+=("$line"); done <"$file"
    for ((i = ${#recs[@]} - 1; i >= 0; i--)); do
        # shellcheck disable=SC2086
        set -- ${recs[i]}
        _h_stop_trees TERM 10 "$1 $2"
    done
    rm -f "$file"
}

# Starts one daemon NAME (mon, osd, rgw) with cmd... in the background, records it.
_h_rgw_daemon() {
    local name=$1 pid st
    shift
    _h_rgw_log "$name: $*"
    if [[ "$H_RGW_DETACH" == 1 ]]; then
        setsid "$@" >>"$RGW_DIR/log/$name.out" 2>&1 </dev/null &
    else
        "$@" >>"$RGW_DIR/log/$name.out" 2>&1 </dev/null &
    fi
    pid=$!
    _h_track "$pid" "rgw-$name"
    _h_set "RGW_$(_h_var "$name")_PID" "$pid"
    _H_RGW_NAMES+=("rgw-$name")
    _H_LOGS+=("$RGW_DIR/log/$name.out")
    st=$(_h_starttime "$pid") || st=0
    printf '%s %s %s\n' "$pid" "$st" "$name" >>"$RGW_DIR/pids"
}

_h_rgw_alive() {  # NAME: the recorded daemon runs
    local pid
    pid=$(_h_get "RGW_$(_h_var "$1")_PID")
    [[ -n "$pid" ]] && h_running "rgw-$1"
}

_h_rgw_check_alive() {
    local d
    for d in "$@"; do
        _h_rgw_alive "$d" || h_fail "ceph $d exited during start (logs: $RGW_DIR/log)"
    done
}

# RGW answers S3 requests with our keys (a signed bucket listing of the service)
_h_rgw_ready() {
    [[ "$(h_rgw_curl GET "" -o /dev/null -w '%{http_code}' --max-time 5 2>/dev/null)" == 200 ]]
}

h_rgw_start() {
    _h_main_shell h_rgw_start
    (($# == 1)) || h_fail "usage: h_rgw_start DIR"
    local dir=$1 fsid mon_port rgw_port tls_port other_port osd_uuid osd_secret osd_id deadline t0=$SECONDS
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ -n "$(ls -A "$dir")" && ! -e "$dir/ceph.conf" && ! -e "$dir/pids" ]]; then
        h_fail "h_rgw_start: '$dir' is neither empty nor an RGW test dir: refusing to empty it"
    fi
    # a stale instance from a killed run: stop it by its recorded PIDs, then start afresh
    _h_rgw_stop_file "$dir/pids"
    rm -rf "${dir:?}"/*
    mkdir -p "$dir"/{log,run,mon,osd/ceph-0,rgw}
    _h_set RGW_DIR "$dir"
    _h_set RGW_CONF "$dir/ceph.conf"
    : >"$dir/pids"
    h_free_port mon_port
    h_free_port rgw_port
    h_free_port tls_port
    h_free_port other_port
    h_certs "$dir/certs"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)

    cat >"$RGW_CONF" <<EOF
# drd test cluster: one mon, one OSD, radosgw, all inside $dir (tests/harness/rgw.sh)
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/admin.keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = true
crash dir = $dir/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
osd crush chooseleaf type = 0

[mon]
mon data = $dir/mon/ceph-\$id
keyring = $dir/mon/ceph-\$id/keyring
mon cluster log file = $dir/log/cluster.log

[osd]
osd data = $dir/osd/ceph-\$id
keyring = $dir/osd/ceph-\$id/keyring
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 21474836480
bluestore fsck on mkfs = false
osd memory target = 939524096
osd max object size = 134217728

[client.rgw.a]
keyring = $dir/rgw/keyring
rgw data = $dir/rgw
rgw frontends = beast endpoint=127.0.0.1:$rgw_port ssl_endpoint=127.0.0.1:$tls_port ssl_certificate=$dir/certs/server.pem ssl_private_key=$dir/certs/server-key.pem, beast ssl_endpoint=127.0.0.1:$other_port ssl_certificate=$dir/certs/other-name.pem ssl_private_key=$dir/certs/other-name-key.pem
rgw dns name = 127.0.0.1
EOF
    _h_set RGW_ENDPOINT "127.0.0.1:$rgw_port"
    _h_set RGW_TLS_ENDPOINT "127.0.0.1:$tls_port"
    _h_set RGW_CACERT "$dir/certs/ca.pem"
    _h_set RGW_OTHER_CACERT "$dir/certs/other-ca.pem"
    _h_set RGW_OTHER_NAME_ENDPOINT "127.0.0.1:$other_port"
    _h_set RGW_BUCKET "$H_RGW_BUCKET"
    _h_set AWS_ACCESS_KEY_ID "$H_RGW_ACCESS_KEY"
    _h_set AWS_SECRET_ACCESS_KEY "$H_RGW_SECRET_KEY"

    # monitor: keys, map, mkfs, run
    {
        ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' &&
            ceph-authtool --create-keyring "$dir/admin.keyring" --gen-key -n client.admin \
                --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' &&
            ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/admin.keyring" &&
            monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" &&
            ceph-mon -c "$RGW_CONF" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring"
    } >>"$dir/log/harness.log" 2>&1 || h_fail "cannot create the ceph monitor (log: $dir/log/harness.log)"
    _h_rgw_daemon mon ceph-mon -c "$RGW_CONF" -f -i a
    deadline=$((SECONDS + H_RGW_START_TIMEOUT))
    until _h_rgw_ceph mon stat >/dev/null; do
        _h_rgw_check_alive mon
        ((SECONDS < deadline)) || h_fail "ceph mon not up after ${H_RGW_START_TIMEOUT}s (logs: $dir/log)"
        sleep 0.2
    done

    # OSD: register, mkfs on a sparse block file, run
    osd_secret=$(ceph-authtool --gen-print-key) || h_fail "ceph-authtool --gen-print-key failed"
    osd_id=$(printf '{"cephx_secret": "%s"}' "$osd_secret" |
        _h_rgw_ceph osd new "$osd_uuid" -i -) || h_fail "ceph osd new failed (log: $dir/log/harness.log)"
    [[ "$osd_id" == 0 ]] || h_fail "unexpected osd id '$osd_id'"
    printf '[osd.0]\n\tkey = %s\n' "$osd_secret" >"$dir/osd/ceph-0/keyring"
    ceph-osd -c "$RGW_CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/harness.log" 2>&1 ||
        h_fail "ceph-osd --mkfs failed (log: $dir/log/harness.log)"
    _h_rgw_daemon osd ceph-osd -c "$RGW_CONF" -f -i 0
    until [[ "$(_h_rgw_ceph osd stat -f json | jq -r '.num_up_osds' 2>/dev/null)" == 1 ]]; do
        _h_rgw_check_alive mon osd
        ((SECONDS < deadline)) || h_fail "ceph osd not up after ${H_RGW_START_TIMEOUT}s (logs: $dir/log)"
        sleep 0.2
    done

    # radosgw
    _h_rgw_ceph auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' \
        -o "$dir/rgw/keyring" || h_fail "cannot create the radosgw key"
    _h_rgw_daemon rgw radosgw -c "$RGW_CONF" -f -n client.rgw.a
    h_rgw_admin user create --uid=drd-test --display-name="drd test" \
        --access-key="$AWS_ACCESS_KEY_ID" --secret-key="$AWS_SECRET_ACCESS_KEY" >/dev/null ||
        h_fail "radosgw-admin user create failed (log: $dir/log/harness.log)"
    until _h_rgw_ready; do
        _h_rgw_check_alive mon osd rgw
        ((SECONDS < deadline)) || h_fail "radosgw not answering at $RGW_ENDPOINT after ${H_RGW_START_TIMEOUT}s (logs: $dir/log)"
        sleep 0.2
    done

    # bucket, and a first PUT (pools are created lazily: ~2.5 s each the first time)
    h_rgw_curl PUT "$RGW_BUCKET" -o /dev/null --fail || h_fail "cannot create bucket '$RGW_BUCKET'"
    h_rgw_curl PUT "$RGW_BUCKET/.warmup" -o /dev/null --fail --data-binary warmup ||
        h_fail "warm-up PUT failed"
    h_rgw_curl DELETE "$RGW_BUCKET/.warmup" -o /dev/null --fail || h_fail "warm-up DELETE failed"

    {
        printf 'export RGW_ENDPOINT=%q RGW_BUCKET=%q RGW_DIR=%q RGW_CONF=%q\n' \
            "$RGW_ENDPOINT" "$RGW_BUCKET" "$RGW_DIR" "$RGW_CONF"
        printf 'export RGW_TLS_ENDPOINT=%q RGW_CACERT=%q RGW_OTHER_CACERT=%q RGW_OTHER_NAME_ENDPOINT=%q\n' \
            "$RGW_TLS_ENDPOINT" "$RGW_CACERT" "$RGW_OTHER_CACERT" "$RGW_OTHER_NAME_ENDPOINT"
        printf 'export AWS_ACCESS_KEY_ID=%q AWS_SECRET_ACCESS_KEY=%q\n' \
            "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
    } >"$dir/env.tmp" && mv -f "$dir/env.tmp" "$dir/env"
    _h_rgw_log "ready at $RGW_ENDPOINT after $((SECONDS - t0)) s"
    if [[ "$H_RGW_DETACH" == 1 ]]; then
        # up: from now on the daemons outlive this shell (DIR/pids lists them)
        local n
        for n in "${_H_RGW_NAMES[@]}"; do _h_untrack "$(_h_get "$(_h_var "$n")_PID")"; done
        _H_RGW_NAMES=()
    fi
}

h_rgw_stop() {
    _h_main_shell h_rgw_stop
    local i name
    for ((i = ${#_H_RGW_NAMES[@]} - 1; i >= 0; i--)); do
        name=${_H_RGW_NAMES[i]}
        if _h_record "$name" >/dev/null; then
            _h_stop_named TERM 10 "$name"
        fi
    done
    _H_RGW_NAMES=()
    # a detached instance is no longer tracked: its pids file still lists it
    [[ -z "${RGW_DIR:-}" ]] || _h_rgw_stop_file "$RGW_DIR/pids"
}

h_rgw_use() {
    _h_main_shell h_rgw_use
    if [[ -n "${RGW_ENV_FILE:-}" && -r "$RGW_ENV_FILE" ]]; then
        # shellcheck disable=SC1090
        source "$RGW_ENV_FILE"
        if _h_rgw_ready; then
            h_log "using the shared RGW at $RGW_ENDPOINT"
            return 0
        fi
        h_log "shared RGW at $RGW_ENDPOINT does not answer: starting a private one"
    fi
    local d
    h_tmpdir d
    h_rgw_start "$d/rgw"
    h_on_exit h_rgw_stop
}
