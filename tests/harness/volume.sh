# shellcheck shell=bash
# tests/harness/volume.sh: helpers for the volume replication tests (drd replicate volume). Source
# it after etcd.sh (it uses h_bg, h_free_port, h_fail...).
#
#   v_setup                     $H_TMP, a PSK ($PSK) made by drd key generate --psk
#   v_serve NAME ROOT [flags]   drd replicate volume serve in the background as process NAME on a
#                               free port (-> $V_ADDR, also NAME_ADDR), waits until it accepts
#   v_push ARGS...              drd replicate volume push --to $V_ADDR --psk-file $PSK ARGS...
#                               under a 600 s timeout; sets rc, out, err (h_run_drd)
#   v_compare A B [--skip N]    fails the test when the trees differ (tests/harness/voltree.py)
#   v_field TEXT NAME           the number after "NAME " in a push summary line
#   v_rss_peak PID              VmHWM of a running process in KiB
set -euo pipefail

V_TREE="$(dirname "${BASH_SOURCE[0]}")/voltree.py"

v_setup() {
    [[ -n "${H_TMP:-}" ]] || h_tmpdir
    PSK=$H_TMP/psk
    h_drd key generate --psk --out "$PSK" >/dev/null
}

v_serve() {
    local name=$1 root=$2
    shift 2
    h_free_port V_PORT
    V_ADDR=127.0.0.1:$V_PORT
    _h_set "$(_h_var "$name")_ADDR" "$V_ADDR"
    mkdir -p "$root"
    h_bg "$name" h_drd replicate volume serve --listen "$V_ADDR" --root "$root" "$@"
    h_wait_until 20 "volume server $name listening" _v_listening "$V_PORT" "$name"
}

_v_listening() {
    h_running "$2" || h_fail "volume server $2 exited: $(tail -n 3 "$(_h_get "$(_h_var "$2")_LOG")")"
    [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
}

v_push() {
    h_run_drd 600 replicate volume push --to "$V_ADDR" --psk-file "$PSK" "$@"
}

v_compare() {
    local diff
    diff=$(python3 "$V_TREE" compare "$@") || h_fail "trees differ: $1 vs $2:
$(head -n 20 <<<"$diff")"
}

v_field() {
    sed -n "s/.*[ (]$2 \([0-9][0-9]*\).*/\1/p" <<<"$1" | head -n 1
}

v_rss_peak() {
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status"
}
