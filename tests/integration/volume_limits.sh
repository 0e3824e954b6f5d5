#!/usr/bin/env bash
# drd replicate volume within its bounds: --bwlimit holds the rate within 10%; a sparse 20 GiB
# file syncs and stays sparse at the destination (first whole, then again after a change: a
# sparse file goes as its data extents), with both sides at most 64 MB of resident memory (peak,
# VmHWM from /proc) throughout; a large file that is not sparse goes by delta within the bound.
# The push shows its progress as log lines when stderr is no terminal; --no-progress shows none.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/volume.sh"

v_setup
v_serve dst "$H_TMP/dst" --psk-file "$PSK"

h_log "--bwlimit 4MiB: 24 MB of incompressible data takes 6 s, within 10%"
mkdir -p "$H_TMP/bw"
head -c 24000000 /dev/urandom >"$H_TMP/bw/f"
v_push --source "$H_TMP/bw" --name bw --bwlimit 4MiB
h_assert_eq "$rc" 0 "push (stderr: $err)"
sent=$(v_field "$out" sent) ms=$(sed -n 's/.* in \([0-9]*\) ms$/\1/p' <<<"$out")
rate=$((sent * 1000 / ms)) limit=$((4 * 1024 * 1024))
h_log "bwlimit: $sent bytes in $ms ms = $rate B/s for a limit of $limit B/s"
((rate <= limit * 11 / 10 && rate >= limit * 9 / 10)) || h_fail "rate $rate B/s not within 10% of $limit"

h_log "the 6 s push, stderr to a file: progress as log lines (every 5 s), like snapshot save's"
lines=$(grep -E 'info +volume push: syncing volume: [0-9.]+ [KM]iB, [0-9.]+ [KM]iB/s$' <<<"$err" || true)
[[ -n "$lines" ]] || h_fail "no progress line in: $err"
h_log "progress: $(head -n 1 <<<"$lines")"
if grep -q $'\r' <<<"$err"; then h_fail "a terminal line went into a file"; fi

h_log "--no-progress: none"
h_run_drd 600 --no-progress replicate volume push --to "$V_ADDR" --psk-file "$PSK" \
    --source "$H_TMP/bw" --name bw-quiet --bwlimit 4MiB
h_assert_eq "$rc" 0 "push --no-progress (stderr: $err)"
((took >= 5)) || h_fail "the --no-progress push took ${took}s: too short to show a progress line"
if grep -q "syncing volume" <<<"$err"; then h_fail "progress despite --no-progress: $err"; fi

# peak RSS of a running process, sampled until it exits; max into the named variable
watch_rss() { # PID OUTFILE
    local peak=0 v
    while [[ -r /proc/$1/status ]]; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null) || break
        [[ -n "$v" ]] && ((v > peak)) && peak=$v
        echo "$peak" >"$2"
        sleep 0.05
    done
}

h_log "a sparse 20 GiB file"
S=$H_TMP/sparse-src
mkdir -p "$S"
truncate -s 20G "$S/disk.img"
for off in 0 1073741824 10737418240 21474836000; do
    head -c 1000000 /dev/urandom | dd of="$S/disk.img" bs=1M seek=$((off / 1048576)) conv=notrunc status=none
done
truncate -s 20G "$S/disk.img"
sparse_push() { # LABEL
    h_bg "push-$1" h_drd replicate volume push --to "$V_ADDR" --psk-file "$PSK" --source "$S" --name sparse
    local pid
    pid=$(_h_get "$(_h_var "push-$1")_PID")
    watch_rss "$pid" "$H_TMP/rss-push-$1" &
    local watcher=$! st=0
    h_wait_exit "push-$1" 900 || st=$?
    ((st == 0)) || h_fail "sparse push $1: exit $st: $(cat "$(_h_get "$(_h_var "push-$1")_LOG")")"
    wait "$watcher"
    push_rss=$(cat "$H_TMP/rss-push-$1")
    srv_rss=$(v_rss_peak "$DST_PID")
    h_log "$1: $(cat "$(_h_get "$(_h_var "push-$1")_LOG")")"
    h_log "$1: peak RSS push $push_rss KiB, server $srv_rss KiB"
    ((push_rss > 0 && push_rss <= 65536)) || h_fail "push peak RSS $push_rss KiB > 64 MiB"
    ((srv_rss > 0 && srv_rss <= 65536)) || h_fail "server peak RSS $srv_rss KiB > 64 MiB"
}
sparse_push whole
D=$H_TMP/dst/sparse/current/disk.img
h_assert_eq "$(stat -c %s "$D")" 21474836480 "apparent size"
used=$(($(stat -c %b "$D") * 512))
((used < 64000000)) || h_fail "the destination copy uses $used bytes on disk: not sparse"
python3 "$V_TREE" sparse-cmp "$S/disk.img" "$D" || h_fail "content differs"

h_log "change 1 MB in the middle: only the data extents cross again, not 20 GiB"
head -c 1000000 /dev/urandom | dd of="$S/disk.img" bs=1M seek=5000 conv=notrunc status=none
sparse_push delta
sent=$(v_field "$(cat "$PUSH_DELTA_LOG")" sent)
((sent < 8000000)) || h_fail "the changed sparse file sent $sent bytes for 5 MB of data"
used=$(($(stat -c %b "$D") * 512))
((used < 64000000)) || h_fail "after the delta the copy uses $used bytes on disk: not sparse"
python3 "$V_TREE" sparse-cmp "$S/disk.img" "$D" || h_fail "content differs after the change"

h_log "a 1 GiB file that is not sparse: by delta, within the memory bound"
rm "$S/disk.img"
head -c 64000000 /dev/urandom >"$S/chunk"
for i in $(seq 1 16); do cat "$S/chunk"; done >"$S/big.img"
rm "$S/chunk"
sparse_push big-whole
head -c 1000000 /dev/urandom | dd of="$S/big.img" bs=1M seek=500 conv=notrunc status=none
sparse_push big-delta
lit=$(v_field "$(cat "$PUSH_BIG_DELTA_LOG")" literal)
((lit < 3000000)) || h_fail "literal $lit bytes for a 1 MB change"
cmp "$S/big.img" "$H_TMP/dst/sparse/current/big.img" || h_fail "content differs after the delta"
h_pass
