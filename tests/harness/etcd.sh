# shellcheck shell=bash
# tests/harness/etcd.sh: real etcd servers (and other background processes) for drd's integration
# tests, scripts/demo and the benchmarks. Source it; do not run it.
#
#   source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"   # also sets -euo pipefail
#   h_tmpdir                                   # -> $H_TMP, removed at exit unless KEEP_TMP=1
#   h_etcd_start primary "$H_TMP/primary"      # -> $PRIMARY_URL $PRIMARY_PID $PRIMARY_PEER_URL ...
#   h_etcd_start standby "$H_TMP/standby"
#   h_etcdctl primary put /a 1
#   h_drd replicate etcd --source "$PRIMARY_URL" --target "$STANDBY_URL" --until-caught-up
#   h_assert_eq "$(h_etcdctl standby get --print-value-only /a)" 1 "value replicated"
#   h_pass
#
# What it must never do: stop a process it did not start. Everything is stopped by the PID recorded
# when it was started (checked against the process start time, so a recycled PID is left alone),
# never by name. Every process it starts writes to a log file, never to the test's stdout/stderr
# (ctest waits until those are closed).
#
# Servers and variables. A server has a NAME ("primary", "standby", ...); its variables use NAME in
# upper case with non-alphanumerics as "_" (standby-2 -> STANDBY_2_...), all exported:
#   NAME_URL          client URL, http://127.0.0.1:PORT (https:// with --tls)
#   NAME_PEER_URL     peer URL, always http://127.0.0.1:PORT
#   NAME_CLIENT_PORT, NAME_PEER_PORT
#   NAME_INITIAL_CLUSTER   "NAME=NAME_PEER_URL", what --initial-cluster must say for this member
#   NAME_PID          PID while running, empty after h_stop/h_kill9; then NAME_STATUS = exit status
#   NAME_DATADIR, NAME_LOG (DATADIR/../NAME.log, appended to across restarts)
#   NAME_CERTDIR      the --tls dir, empty without TLS; then NAME_CACERT, NAME_CERT, NAME_KEY are
#                     the CA and *client* cert/key a client (etcdctl, drd) uses to reach it
#
# Ports and restarts. A NAME gets its two ports once and keeps them: h_etcd_stop then h_etcd_start
# with the same NAME comes back on the same URLs, on whatever is in DATADIR. To start etcd on a data
# dir made by someone else (`drd replicate seed`, `etcdctl snapshot restore`), reserve the ports
# first, so that the restore and the server agree on member name, peer URL and initial cluster:
#   h_etcd_reserve standby
#   h_drd replicate seed --source "$PRIMARY_URL" --data-dir "$H_TMP/standby" --name standby \
#       --initial-cluster "$STANDBY_INITIAL_CLUSTER" --initial-advertise-peer-urls "$STANDBY_PEER_URL"
#   h_etcd_start standby "$H_TMP/standby"
# h_etcd_start_existing NAME DATADIR CLIENT_PORT PEER_PORT does the same with ports you chose.
#
# Functions (all of them end the test with h_fail when they cannot do their job):
#   h_tmpdir [VAR]            new temp dir under ${TMPDIR:-/tmp}, path in VAR (default H_TMP)
#   h_free_port [VAR]         a free 127.0.0.1 TCP port, never handed out twice (also not across
#                             tests running in parallel); prints it, or sets VAR
#   h_etcd_reserve NAME [--tls CERTDIR]
#   h_etcd_start NAME DATADIR [--tls CERTDIR] [extra etcd flags...]   waits until healthy (20 s)
#   h_etcd_start_existing NAME DATADIR CLIENT_PORT PEER_PORT [--tls CERTDIR] [extra flags...]
#   h_etcd_start_seeded NAME SOURCE   an exact standby: NAME's data dir ($H_TMP/NAME) seeded from
#                             the running server SOURCE (drd replicate seed), then started
#   h_etcd_cluster NAME N DIR [flags...]   N members NAME-1..NAME-N started together;
#                             NAME_ENDPOINTS (all client URLs), NAME_INITIAL_CLUSTER
#   h_etcd_leader NAME N      prints the leading member's name
#   h_etcd_stop NAME / h_stop NAME     SIGTERM the process (and its children), SIGKILL after 5 s,
#                             reap; NAME_PID becomes empty, NAME_STATUS its exit status (0 for a
#                             clean stop, 143 if TERM killed it, 137 if it needed SIGKILL)
#   h_etcd_kill9 NAME / h_kill9 NAME   SIGKILL, then reap (NAME_STATUS 137)
#   h_etcdctl NAME args...    ETCDCTL_API=3 etcdctl --endpoints $NAME_URL (+ client cert with TLS)
#   h_etcd_count NAME [PREFIX]   prints the number of keys under PREFIX (default: all keys)
#   h_etcd_revision NAME      prints the server's current store revision
#   h_certs DIR               CA, server and client certs (tests/harness/certs.sh)
#   h_bg NAME cmd...          run cmd in the background, output to $H_TMP/NAME.log (NAME_LOG),
#                             NAME_PID; stopped at exit like the servers. cmd may be h_drd.
#   h_wait_exit NAME [SECS]   wait (default 30 s) for a h_bg process to exit; returns its status
#                             (also in NAME_STATUS), or 124 on timeout (the process keeps running until h_stop or exit)
#   h_running NAME            true while NAME's process is alive
#   h_drd args...             the drd binary: $DRD (set by ctest) or <repo>/build/drd/app/drd
#   h_drd_path                prints that path (for `timeout 30 "$(h_drd_path)" ...`)
#   h_wait_until SECS DESC cmd...   run cmd every 0.1 s until it succeeds, h_fail after SECS
#   h_on_exit CMD             run CMD (eval'd) at exit, before processes are stopped; use it
#                             instead of `trap ... EXIT`, which would replace the harness's trap
#   h_log MSG, h_fail MSG, h_assert_eq ACTUAL EXPECTED MSG, h_assert_contains TEXT PART MSG,
#   h_pass (prints "PASS: <test name>" and exits 0)
#
# Environment: H_ETCD_FENCED=1 makes h_etcd_start accept a server with an alarm (a fenced one);
# KEEP_TMP=1 keeps temp dirs (their paths are printed); H_TEST_NAME (default: script
# name without .sh); H_ETCD_LOG_LEVEL (default error); H_ETCD_START_TIMEOUT (default 20 s);
# H_PORT_DIR (default /tmp/drd-harness-ports: one symlink PORT -> owner PID per handed-out port).
#
# At exit (also on failure, SIGINT, SIGTERM): h_on_exit hooks, then every process still running is
# stopped (TERM, KILL after 5 s), temp dirs removed, port claims released. On failure the last lines
# of each log are printed. A watchdog process does the same if the test shell is killed with SIGKILL
# (as ctest does on TIMEOUT).

set -euo pipefail

H_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
H_REPO=$(cd "$H_DIR/../.." && pwd)
H_TEST_NAME=${H_TEST_NAME:-$(basename "$0" .sh)}
H_PORT_DIR=${H_PORT_DIR:-/tmp/drd-harness-ports}
H_ETCD_LOG_LEVEL=${H_ETCD_LOG_LEVEL:-error}
H_ETCD_START_TIMEOUT=${H_ETCD_START_TIMEOUT:-20}

_H_PROCS=()       # "pid starttime name" of every running process we started
_H_TMPDIRS=()     # temp dirs to remove
_H_LOGS=()        # log files to show on failure
_H_EXIT_HOOKS=()  # h_on_exit commands
_H_STATE=""       # file mirroring _H_PROCS and _H_TMPDIRS for the watchdog
_H_WATCHDOG_PID=""
_H_WATCHDOG_ST=""

# ---------------------------------------------------------------------------------------------
# messages and assertions

h_log() { printf '# %s: %s\n' "$H_TEST_NAME" "$*" >&2; }

h_fail() {
    printf 'FAIL: %s: %s\n' "$H_TEST_NAME" "$*" >&2
    _H_FAILED=1
    exit 1
}

h_pass() {
    printf 'PASS: %s\n' "$H_TEST_NAME"
    exit 0
}

h_assert_eq() {
    [[ "$1" == "$2" ]] || h_fail "${3:-values differ}: got '$1', want '$2'"
}

h_assert_contains() {
    [[ "$1" == *"$2"* ]] || h_fail "${3:-text lacks part}: '$2' not in '$1'"
}

h_wait_until() {
    local secs=$1 desc=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || h_fail "timed out after ${secs}s waiting for: $desc"
        sleep 0.1
    done
}

# The harness records PIDs and temp dirs in shell variables: functions that do so must run in the
# test's own shell, not in $(...) or a pipeline, or the records would be lost.
_h_main_shell() {
    [[ "$BASHPID" == "$$" ]] || h_fail "$1 must run in the test's shell, not in \$(...) or a pipeline"
}

# NAME -> variable prefix: primary -> PRIMARY, standby-2 -> STANDBY_2
_h_var() {
    local v=${1^^}
    v=${v//[^A-Z0-9_]/_}
    [[ "$v" =~ ^[A-Z_] ]] || v="_$v"
    printf '%s' "$v"
}

_h_set() { printf -v "$1" '%s' "$2"; export "${1?}"; }
_h_get() { local v=$1; printf '%s' "${!v:-}"; }

# ---------------------------------------------------------------------------------------------
# temp dirs and ports

h_tmpdir() {
    _h_main_shell h_tmpdir
    local var=${1:-H_TMP} dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/drd-${H_TEST_NAME}.XXXXXX") || h_fail "cannot create temp dir"
    _H_TMPDIRS+=("$dir")
    _h_state_write
    _h_set "$var" "$dir"
}

_h_port_busy() {
    if command -v ss >/dev/null 2>&1; then
        # any socket using it as its local port: listening, connected or in TIME_WAIT
        [[ -n "$(ss -Htan "sport = :$1" 2>/dev/null)" ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# Claim PORT for this test process: a symlink PORT -> $$ in H_PORT_DIR, made atomically. A claim
# whose owner is gone is stale and taken over. $$ is the test shell's PID also inside $(...).
_h_port_claim() {
    local port=$1 link="$H_PORT_DIR/$1" owner
    mkdir -p "$H_PORT_DIR" 2>/dev/null || true
    ln -s "$$" "$link" 2>/dev/null && return 0
    owner=$(readlink "$link" 2>/dev/null) || return 1
    [[ "$owner" != "$$" ]] || return 1  # ours already: handed out before
    if [[ "$owner" =~ ^[0-9]+$ ]] && ! kill -0 "$owner" 2>/dev/null; then
        rm -f "$link"
        ln -s "$$" "$link" 2>/dev/null && return 0
    fi
    return 1
}

h_free_port() {
    local lo=20000 hi=60000 elo=0 ehi=0 port tries
    # stay out of the kernel's ephemeral range, where outgoing connections take their local ports
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r elo ehi </proc/sys/net/ipv4/ip_local_port_range || true
    fi
    if ((elo <= lo && ehi >= hi)); then elo=0 ehi=0; fi
    for ((tries = 0; tries < 1000; tries++)); do
        port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
        ((port >= elo && port <= ehi)) && continue
        _h_port_busy "$port" && continue
        _h_port_claim "$port" || continue
        if (($# > 0)); then _h_set "$1" "$port"; else printf '%s\n' "$port"; fi
        return 0
    done
    h_fail "no free TCP port found on 127.0.0.1"
}

# ---------------------------------------------------------------------------------------------
# processes

_h_stat() {  # PID -> "STATE STARTTIME" from /proc/PID/stat (the name in field 2 may hold spaces)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    printf '%s %s' "$1" "${20}"
}

_h_starttime() { local s; s=$(_h_stat "$1") || return 1; printf '%s' "${s#* }"; }

_h_alive() {  # PID STARTTIME: running (not a zombie) and still the process we started
    local s
    s=$(_h_stat "$1") || return 1
    [[ "${s#* }" == "$2" && "${s%% *}" != Z && "${s%% *}" != X ]]
}

_h_children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

_h_tree() {  # PID and its descendants as "pid starttime" lines, children first
    local c st
    for c in $(_h_children "$1"); do _h_tree "$c"; done
    st=$(_h_starttime "$1") && printf '%s %s\n' "$1" "$st"
    return 0
}

_h_state_write() {
    [[ -n "$_H_STATE" ]] || return 0
    {
        local p d
        for p in "${_H_PROCS[@]}"; do printf 'proc %s\n' "$p"; done
        for d in "${_H_TMPDIRS[@]}"; do printf 'dir %s\n' "$d"; done
    } >"$_H_STATE.new" && mv -f "$_H_STATE.new" "$_H_STATE"
}

# The watchdog stops what the test started when the test shell dies without running its EXIT
# trap (SIGKILL; ctest's timeout kills the whole process tree with SIGKILL). It is started detached
# (its parent exits at once, so it is no longer in the test's process tree), reads the state file
# once the test shell is gone, and exits by itself within a second once the state file is removed.
_h_watchdog() {
    trap - EXIT ERR
    set +e
    local parent=$$ state=$_H_STATE procs=() dirs=() kind a b rec i left d link
    while kill -0 "$parent" 2>/dev/null && [[ -e "$state" ]]; do sleep 1; done
    [[ -e "$state" ]] || exit 0
    while read -r kind a b _; do
        case "$kind" in
            proc) procs+=("$a $b") ;;
            dir) dirs+=("$a") ;;
        esac
    done <"$state"
    rm -f "$state"
    for rec in "${procs[@]}"; do _h_alive "${rec%% *}" "${rec#* }" && kill -TERM "${rec%% *}"; done
    for ((i = 0; i < 50; i++)); do
        left=0
        for rec in "${procs[@]}"; do _h_alive "${rec%% *}" "${rec#* }" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for rec in "${procs[@]}"; do _h_alive "${rec%% *}" "${rec#* }" && kill -KILL "${rec%% *}"; done
    if [[ "${KEEP_TMP:-0}" != 1 ]]; then
        for d in "${dirs[@]}"; do rm -rf "$d"; done
    fi
    for link in "$H_PORT_DIR"/*; do
        [[ "$(readlink "$link")" == "$parent" ]] && rm -f "$link"
    done
    exit 0
}

_h_watchdog_start() {
    [[ -z "$_H_WATCHDOG_PID" ]] || return 0
    _H_STATE=$(mktemp "${TMPDIR:-/tmp}/drd-harness-state.XXXXXX")
    _h_state_write
    _H_WATCHDOG_PID=$( (_h_watchdog >/dev/null 2>&1 </dev/null & echo $!))
    _H_WATCHDOG_ST=$(_h_starttime "$_H_WATCHDOG_PID") || _H_WATCHDOG_ST=0
}

_h_track() {  # PID NAME
    local st
    st=$(_h_starttime "$1") || st=0
    _H_PROCS+=("$1 $st $2")
    _h_watchdog_start
    _h_state_write
}

_h_untrack() {  # PID
    local keep=() p
    for p in "${_H_PROCS[@]}"; do [[ "${p%% *}" == "$1" ]] || keep+=("$p"); done
    _H_PROCS=("${keep[@]}")
    _h_state_write
}

_h_record() {  # NAME -> "pid starttime" of NAME's tracked process, or fail
    local p pid
    pid=$(_h_get "$(_h_var "$1")_PID")
    [[ -n "$pid" ]] || return 1
    for p in "${_H_PROCS[@]}"; do
        if [[ "${p%% *}" == "$pid" ]]; then
            # shellcheck disable=SC2086
            set -- $p
            printf '%s %s' "$1" "$2"
            return 0
        fi
    done
    return 1
}

# Stop process trees: SIGNAL to every process of every tree, then wait up to GRACE seconds,
# then SIGKILL what is left. Args: SIGNAL GRACE "pid starttime"...
_h_stop_trees() {
    local sig=$1 grace=$2
    shift 2
    local all=() rec pid st left i
    for rec in "$@"; do
        read -r pid st <<<"$rec"
        _h_alive "$pid" "$st" || continue
        while read -r pid st; do [[ -n "$pid" ]] && all+=("$pid $st"); done < <(_h_tree "${rec%% *}")
    done
    ((${#all[@]})) || return 0
    for rec in "${all[@]}"; do read -r pid st <<<"$rec"; { _h_alive "$pid" "$st" && kill "-$sig" "$pid" 2>/dev/null; } || true; done
    for ((i = 0; i < grace * 10; i++)); do
        left=0
        for rec in "${all[@]}"; do read -r pid st <<<"$rec"; _h_alive "$pid" "$st" && left=1 && break; done
        ((left)) || break
        sleep 0.1
    done
    for rec in "${all[@]}"; do
        read -r pid st <<<"$rec"
        { _h_alive "$pid" "$st" && kill -KILL "$pid" 2>/dev/null; } || true  # it may exit meanwhile
    done
    return 0
}

_h_stop_named() {  # SIGNAL GRACE NAME
    local rec v
    v=$(_h_var "$3")
    rec=$(_h_record "$3") || h_fail "no running process named '$3'"
    _h_stop_trees "$1" "$2" "$rec"
    _h_reap "${v}" "${rec%% *}"
}

_h_reap() {  # VARPREFIX PID: collect the exit status into VARPREFIX_STATUS, forget the PID
    local st=0
    wait "$2" 2>/dev/null || st=$?
    _h_untrack "$2"
    _h_set "${1}_PID" ""
    _h_set "${1}_STATUS" "$st"
}

h_stop() { _h_main_shell h_stop; _h_stop_named TERM 5 "$1"; }
h_kill9() { _h_main_shell h_kill9; _h_stop_named KILL 0 "$1"; }
h_etcd_stop() { h_stop "$@"; }
h_etcd_kill9() { h_kill9 "$@"; }

h_running() {
    local rec
    rec=$(_h_record "$1") || return 1
    # shellcheck disable=SC2086
    _h_alive $rec
}

h_bg() {
    _h_main_shell h_bg
    local name=$1 v pid
    shift
    v=$(_h_var "$name")
    [[ -n "${H_TMP:-}" ]] || h_tmpdir H_TMP
    _h_set "${v}_LOG" "$H_TMP/$name.log"
    _H_LOGS+=("$H_TMP/$name.log")
    # run binaries directly, so that NAME_PID is the process itself and gets our signals
    if [[ "$1" == h_drd ]]; then
        local bin
        bin=$(h_drd_path) || exit 1
        shift
        set -- "$bin" "$@"
    fi
    "$@" >>"$H_TMP/$name.log" 2>&1 </dev/null &
    pid=$!
    _h_track "$pid" "$name"
    _h_set "${v}_PID" "$pid"
}

h_wait_exit() {
    _h_main_shell h_wait_exit
    local name=$1 secs=${2:-30} rec pid st rc=0 deadline
    rec=$(_h_record "$name") || h_fail "no process named '$name'"
    read -r pid st <<<"$rec"
    deadline=$((SECONDS + secs))
    while _h_alive "$pid" "$st"; do
        ((SECONDS < deadline)) || return 124
        sleep 0.1
    done
    _h_reap "$(_h_var "$name")" "$pid"
    rc=$(_h_get "$(_h_var "$name")_STATUS")
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# etcd

h_etcd_reserve() {
    _h_main_shell h_etcd_reserve
    local name=$1 v scheme=http
    shift
    v=$(_h_var "$name")
    if [[ "${1:-}" == --tls ]]; then
        [[ -n "${2:-}" ]] || h_fail "h_etcd_reserve: --tls needs a cert dir"
        scheme=https
    fi
    [[ -n "$(_h_get "${v}_CLIENT_PORT")" ]] || h_free_port "${v}_CLIENT_PORT"
    [[ -n "$(_h_get "${v}_PEER_PORT")" ]] || h_free_port "${v}_PEER_PORT"
    _h_set "${v}_URL" "$scheme://127.0.0.1:$(_h_get "${v}_CLIENT_PORT")"
    _h_set "${v}_PEER_URL" "http://127.0.0.1:$(_h_get "${v}_PEER_PORT")"
    _h_set "${v}_INITIAL_CLUSTER" "$name=$(_h_get "${v}_PEER_URL")"
}

h_etcd_start() {
    _h_main_shell h_etcd_start
    (($# >= 2)) || h_fail "usage: h_etcd_start NAME DATADIR [--tls CERTDIR] [etcd flags...]"
    local name=$1 datadir=$2 certdir="" v url peer log pid deadline
    shift 2
    if [[ "${1:-}" == --tls ]]; then
        certdir=${2:-}
        [[ -r "$certdir/server.pem" ]] || h_fail "h_etcd_start $name: no server.pem in '$certdir' (use h_certs)"
        certdir=$(cd "$certdir" && pwd)
        shift 2
    fi
    v=$(_h_var "$name")
    if [[ -n "$(_h_get "${v}_PID")" ]] && h_running "$name"; then
        h_fail "h_etcd_start: '$name' is already running"
    fi
    if [[ -n "$certdir" ]]; then h_etcd_reserve "$name" --tls "$certdir"; else h_etcd_reserve "$name"; fi
    url=$(_h_get "${v}_URL")
    peer=$(_h_get "${v}_PEER_URL")
    mkdir -p "$(dirname "$datadir")"
    datadir=$(cd "$(dirname "$datadir")" && pwd)/$(basename "$datadir")
    log="$(dirname "$datadir")/$name.log"
    _h_set "${v}_DATADIR" "$datadir"
    _h_set "${v}_LOG" "$log"
    _h_set "${v}_CERTDIR" "$certdir"
    _h_set "${v}_CACERT" "${certdir:+$certdir/ca.pem}"
    _h_set "${v}_CERT" "${certdir:+$certdir/client.pem}"
    _h_set "${v}_KEY" "${certdir:+$certdir/client-key.pem}"
    [[ " ${_H_LOGS[*]} " == *" $log "* ]] || _H_LOGS+=("$log")

    local args=(
        --name "$name" --data-dir "$datadir"
        --listen-client-urls "$url" --advertise-client-urls "$url"
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer"
        --initial-cluster "$name=$peer" --initial-cluster-state new
        --logger zap --log-outputs stderr --log-level "$H_ETCD_LOG_LEVEL"
        --quota-backend-bytes 8589934592
    )
    if [[ -n "$certdir" ]]; then
        args+=(--cert-file "$certdir/server.pem" --key-file "$certdir/server-key.pem"
            --client-cert-auth --trusted-ca-file "$certdir/ca.pem")
    fi
    printf '=== %s: etcd %s\n' "$(date '+%F %T')" "${args[*]} $*" >>"$log"
    etcd "${args[@]}" "$@" >>"$log" 2>&1 </dev/null &
    pid=$!
    _h_track "$pid" "$name"
    _h_set "${v}_PID" "$pid"

    [[ -n "${H_ETCD_NOWAIT:-}" ]] || _h_etcd_wait "$name"
}

# _h_etcd_wait NAME: until etcd NAME answers /health and a gRPC call (H_ETCD_START_TIMEOUT)
_h_etcd_wait() {
    local name=$1 v url certdir deadline log
    v=$(_h_var "$name")
    url=$(_h_get "${v}_URL")
    certdir=$(_h_get "${v}_CERTDIR")
    log=$(_h_get "${v}_LOG")
    deadline=$((SECONDS + H_ETCD_START_TIMEOUT))
    # poll /health with curl (an etcdctl probe of a port nobody listens on yet takes 2 s), then
    # check the gRPC path once with etcdctl
    local curl_tls=()
    [[ -z "$certdir" ]] || curl_tls=(--cacert "$certdir/ca.pem" --cert "$certdir/client.pem"
        --key "$certdir/client-key.pem")
    # H_ETCD_FENCED=1: the server holds an alarm (drd's fence), so /health and `endpoint health`
    # say false by design; an answer at all and a working `endpoint status` are enough then
    local want='"health":"true"' probe=health
    [[ -z "${H_ETCD_FENCED:-}" ]] || want='"health":' probe=status
    until [[ "$(curl -s --max-time 2 "${curl_tls[@]}" "$url/health" 2>/dev/null)" == *"$want"* ]] &&
        h_etcdctl "$name" --dial-timeout=2s --command-timeout=3s endpoint "$probe" >/dev/null 2>&1; do
        if ! h_running "$name"; then
            h_fail "etcd '$name' exited during start (log: $log)"
        fi
        if ((SECONDS >= deadline)); then
            h_fail "etcd '$name' not healthy at $url after ${H_ETCD_START_TIMEOUT}s (log: $log)"
        fi
        sleep 0.05
    done
}

# h_etcd_cluster NAME N DIR [etcd flags...]: N members NAME-1 .. NAME-N in DIR/NAME-I, one cluster,
# started together (a member alone has no quorum), each with the usual variables and
# NAME_I_INITIAL_CLUSTER set to the whole cluster; NAME_ENDPOINTS is every client URL,
# comma-separated. Restart one member later with h_etcd_start NAME-I DIR/NAME-I (same flags).
# Under load the members get calmer raft timings (heartbeat 200 ms, election 2 s).
h_etcd_cluster() {
    _h_main_shell h_etcd_cluster
    local name=$1 n=$2 dir=$3 i ic="" eps="" m
    shift 3
    for ((i = 1; i <= n; i++)); do
        h_etcd_reserve "$name-$i"
        ic+="${ic:+,}$name-$i=$(_h_get "$(_h_var "$name-$i")_PEER_URL")"
        eps+="${eps:+,}$(_h_get "$(_h_var "$name-$i")_URL")"
    done
    for ((i = 1; i <= n; i++)); do
        m="$name-$i"
        H_ETCD_NOWAIT=1 h_etcd_start "$m" "$dir/$m" --initial-cluster "$ic" \
            --heartbeat-interval 200 --election-timeout 2000 "$@"
        _h_set "$(_h_var "$m")_INITIAL_CLUSTER" "$ic"
    done
    for ((i = 1; i <= n; i++)); do _h_etcd_wait "$name-$i"; done
    _h_set "$(_h_var "$name")_ENDPOINTS" "$eps"
    _h_set "$(_h_var "$name")_INITIAL_CLUSTER" "$ic"
}

# h_etcd_leader NAME N: prints the member name (NAME-I) that leads the cluster
h_etcd_leader() {
    local i st
    for ((i = 1; i <= $2; i++)); do
        h_running "$1-$i" || continue
        st=$(h_etcdctl "$1-$i" endpoint status -w json 2>/dev/null) || continue
        if [[ "$(jq -r '.[0].Status.leader' <<<"$st")" == "$(jq -r '.[0].Status.header.member_id' <<<"$st")" ]]; then
            echo "$1-$i"
            return 0
        fi
    done
    return 1
}

h_etcd_start_existing() {
    _h_main_shell h_etcd_start_existing
    (($# >= 4)) || h_fail "usage: h_etcd_start_existing NAME DATADIR CLIENT_PORT PEER_PORT [--tls DIR] [flags...]"
    local name=$1 datadir=$2 v
    v=$(_h_var "$name")
    _h_set "${v}_CLIENT_PORT" "$3"
    _h_set "${v}_PEER_PORT" "$4"
    shift 4
    h_etcd_start "$name" "$datadir" "$@"
}

h_etcd_start_seeded() {
    _h_main_shell h_etcd_start_seeded
    local name=$1 v src
    v=$(_h_var "$name")
    src=$(_h_get "$(_h_var "$2")_URL")
    [[ -n "$src" ]] || h_fail "h_etcd_start_seeded: no etcd server named '$2'"
    h_etcd_reserve "$name"
    h_run_drd 60 replicate seed --source "$src" --data-dir "$H_TMP/$name" --name "$name" \
        --initial-cluster "$(_h_get "${v}_INITIAL_CLUSTER")" \
        --initial-advertise-peer-urls "$(_h_get "${v}_PEER_URL")"
    h_assert_eq "$rc" 0 "seed $name from $2: $err"
    h_etcd_start "$name" "$H_TMP/$name"
}

h_etcdctl() {
    local v url certdir
    v=$(_h_var "$1")
    shift
    url=$(_h_get "${v}_URL")
    [[ -n "$url" ]] || h_fail "h_etcdctl: no etcd server named '${v,,}' (start it with h_etcd_start)"
    certdir=$(_h_get "${v}_CERTDIR")
    if [[ -n "$certdir" ]]; then
        ETCDCTL_API=3 etcdctl --endpoints "$url" --cacert "$certdir/ca.pem" \
            --cert "$certdir/client.pem" --key "$certdir/client-key.pem" "$@"
    else
        ETCDCTL_API=3 etcdctl --endpoints "$url" "$@"
    fi
}

# etcdctl 3.4 has no --count-only: the Range response's count is the total even with --limit=1
h_etcd_count() {
    local out
    out=$(h_etcdctl "$1" get --prefix "${2:-}" --keys-only --limit=1 -w json) ||
        h_fail "h_etcd_count: cannot read '${2:-}' on '$1'"
    jq -r '.count // 0' <<<"$out"
}

# h_etcd_revision NAME: the server's store revision. Usually called in $(...), where h_fail would
# only end the subshell: when the revision cannot be read it prints a word that equals no other
# output (so two failed reads never compare equal), logs why and returns 1.
h_etcd_revision() {
    local out
    if out=$(h_etcdctl "$1" endpoint status -w json 2>&1) &&
        out=$(jq -er '.[0].Status.header.revision' <<<"$out" 2>&1); then
        printf '%s' "$out"
        return 0
    fi
    h_log "cannot read the revision of '$1': $(head -c 300 <<<"$out")"
    printf 'unreadable-revision-of-%s-%s' "$1" "$SRANDOM"
    return 1
}

h_certs() {
    bash "$H_DIR/certs.sh" "$1" >/dev/null || h_fail "cannot create certificates in '$1'"
}

# ---------------------------------------------------------------------------------------------
# drd

h_drd_path() {
    local bin=${DRD:-$H_REPO/build/drd/app/drd}
    [[ -x "$bin" ]] || h_fail "drd binary not found at '$bin' (run scripts/build.sh, or set DRD)"
    printf '%s' "$bin"
}

h_drd() {
    local bin
    bin=$(h_drd_path) || exit 1
    "$bin" "$@"
}

# h_run_drd SECS ARGS...: drd in the foreground under a timeout (the test fails when it runs
# out); sets rc (exit status), out and err (its stdout and stderr) and took (seconds it ran)
h_run_drd() {
    local limit=$1 t0=$SECONDS bin
    shift
    bin=$(h_drd_path) || exit 1
    rc=0
    timeout "$limit" "$bin" "$@" >"$H_TMP/out" 2>"$H_TMP/err" || rc=$?
    took=$((SECONDS - t0))
    out=$(cat "$H_TMP/out")
    err=$(cat "$H_TMP/err")
    ((rc != 124)) || h_fail "drd $* did not finish within ${limit}s (stderr: $(tail -n 3 "$H_TMP/err"))"
}

# ---------------------------------------------------------------------------------------------
# exit

h_on_exit() { _H_EXIT_HOOKS+=("$1"); }

_h_cleanup() {
    local rc=$? i rec log owner link
    set +e
    trap - ERR
    for ((i = ${#_H_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do eval "${_H_EXIT_HOOKS[i]}"; done
    if ((rc != 0)); then
        for log in "${_H_LOGS[@]}"; do
            [[ -s "$log" ]] || continue
            printf -- '--- %s: last lines of %s\n' "$H_TEST_NAME" "$log" >&2
            tail -n 20 "$log" >&2
        done
    fi
    if ((${#_H_PROCS[@]})); then
        local recs=()
        for rec in "${_H_PROCS[@]}"; do recs+=("${rec% *}"); done
        _h_stop_trees TERM 5 "${recs[@]}"
        for rec in "${recs[@]}"; do wait "${rec%% *}" 2>/dev/null; done
        _H_PROCS=()
    fi
    if [[ -n "$_H_WATCHDOG_PID" ]]; then
        rm -f "$_H_STATE"  # tells the watchdog its job is done; stop it now rather than in 1 s
        _h_stop_trees TERM 1 "$_H_WATCHDOG_PID $_H_WATCHDOG_ST"
    fi
    for i in "${_H_TMPDIRS[@]}"; do
        if [[ "${KEEP_TMP:-0}" == 1 ]]; then
            printf '# %s: kept %s\n' "$H_TEST_NAME" "$i" >&2
        else
            rm -rf "$i"
        fi
    done
    for link in "$H_PORT_DIR"/*; do
        [[ -L "$link" ]] || continue
        owner=$(readlink "$link") && [[ "$owner" == "$$" ]] && rm -f "$link"
    done
    if ((rc != 0)) && [[ -z "${_H_FAILED:-}" ]]; then
        printf 'FAIL: %s: exit status %d\n' "$H_TEST_NAME" "$rc" >&2
    fi
    exit "$rc"
}

# With set -e a failing command ends the test; say which one (once, from the test's own shell).
_h_err() {
    local rc=$? line=$1 cmd=$2
    [[ "$BASHPID" == "$$" && $- == *e* ]] || return 0  # not in subshells, not under set +e
    printf 'FAIL: %s: line %s: "%s" exited with status %d\n' "$H_TEST_NAME" "$line" "$cmd" "$rc" >&2
    _H_FAILED=1
}

set -E
trap '_h_err "$LINENO" "$BASH_COMMAND"' ERR
trap _h_cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
