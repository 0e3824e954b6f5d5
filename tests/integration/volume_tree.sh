#!/usr/bin/env bash
# drd replicate volume: a tree with every kind of entry (files of many sizes, empty, sparse, modes,
# nanosecond mtimes, nested dirs, relative/absolute/dangling symlinks, hard links, odd names) is
# pushed and compared with the source, and with what `rsync -aH` makes of it; the published copy
# and promote give the same tree. Then: an unchanged push changes nothing; 1% of a large file
# changed sends only about that much; deletes and renames; a metadata-only change never alters a
# published copy; --dry-run changes nothing; --checksum finds a file whose content differs at the
# same size and time; --keep; one sync per volume at a time, no pruning under a promote; status.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"
source "$HARNESS/volume.sh"

v_setup
S=$H_TMP/src
mkdir -p "$S/dir/sub/deeper" "$S/empty-dir" "$S/odd names"
head -c 5000000 /dev/urandom >"$S/dir/random-5m"
seq 1 200000 >"$S/dir/sub/text"
: >"$S/empty"
printf 'x' >"$S/one-byte"
head -c 1000 /dev/urandom >"$S/dir/sub/deeper/small"
truncate -s 300M "$S/sparse"
printf 'middle' | dd of="$S/sparse" bs=1 seek=150000000 conv=notrunc status=none
printf 'end' | dd of="$S/sparse" bs=1 seek=314572797 conv=notrunc status=none
ln -s ../one-byte "$S/dir/rel-link"
ln -s /etc/passwd "$S/abs-link"
ln -s does/not/exist "$S/dangling"
ln "$S/dir/sub/text" "$S/hard-1"
ln "$S/dir/sub/text" "$S/odd names/hard-2"
printf 'spaces' >"$S/odd names/a b  c"
printf 'newline' >"$S/odd names/new
line"
printf 'utf8' >"$S/odd names/ünïcødé-✓"
mkfifo "$S/fifo"
chmod 0600 "$S/dir/random-5m"
chmod 0750 "$S/dir/sub"
chmod 2755 "$S/empty-dir"
chmod 0444 "$S/one-byte"
chmod 4755 "$S/dir/sub/deeper/small"
touch -d '2020-02-29 12:34:56.123456789' "$S/dir/sub/text" "$S/empty-dir"
touch -h -d '2019-01-01 00:00:00.5' "$S/dir/rel-link"
touch -d '2021-06-01 08:00:00.000000001' "$S/dir"

h_log "first push: the whole tree"
v_serve dst "$H_TMP/dst" --psk-file "$PSK" --keep 2
v_push --source "$S" --name vol --verbose
h_assert_eq "$rc" 0 "first push (stderr: $err)"
h_assert_contains "$err" "skipping" "the fifo is skipped with a warning"
C=$H_TMP/dst/vol/current
v_compare "$S" "$C" --skip fifo
latest=$(readlink "$H_TMP/dst/vol/latest")
[[ "$latest" == copies/* ]] || h_fail "latest -> '$latest'"
v_compare "$S" "$H_TMP/dst/vol/$latest" --skip fifo
h_assert_eq "$(readlink "$C/abs-link")" /etc/passwd "an absolute symlink is kept, not followed"
# the sparse file stays sparse: 300 MiB apparent, a few KiB on disk
blocks=$(stat -c %b "$C/sparse")
((blocks < 1024)) || h_fail "sparse file takes $blocks blocks at the destination"
sent=$(v_field "$out" sent)
((sent < 8000000)) || h_fail "first push sent $sent bytes for ~6.5 MB of data and a sparse file"

h_log "the same tree as rsync -aH makes it"
rsync -aH --exclude fifo "$S/" "$H_TMP/rsync/"
v_compare "$H_TMP/rsync" "$C"

h_log "promote: a real copy, equal to the source; refused into a non-empty dir or without a copy"
h_run_drd 60 replicate volume promote --root "$H_TMP/dst" --name vol --to "$H_TMP/promoted"
h_assert_eq "$rc" 0 "promote (stderr: $err)"
v_compare "$S" "$H_TMP/promoted" --skip fifo
[[ "$(stat -c %i "$H_TMP/promoted/hard-1")" != "$(stat -c %i "$C/hard-1")" ]] ||
    h_fail "promote hard-linked into the copy store"
((blocks < 1024)) && (($(stat -c %b "$H_TMP/promoted/sparse") < 1024)) || h_fail "promoted sparse file not sparse"
h_run_drd 60 replicate volume promote --root "$H_TMP/dst" --name vol --to "$H_TMP/promoted"
h_assert_eq "$rc" 2 "promote into a non-empty dir"
h_assert_eq "$(wc -l <<<"$err")" 1 "one line: $err"
mkdir -p "$H_TMP/dst/never/current"
h_run_drd 60 replicate volume promote --root "$H_TMP/dst" --name never --to "$H_TMP/p2"
h_assert_eq "$rc" 3 "promote without a complete copy: ENOTFOUND ($err)"
h_assert_contains "$err" "no complete copy" "says why"
rm -rf "$H_TMP/dst/never"

h_log "an unchanged tree: nothing changes"
v_push --source "$S" --name vol
h_assert_eq "$rc" 0 "second push (stderr: $err)"
h_assert_contains "$out" " 0 changed, 0 deleted" "nothing changed: $out"

h_log "1% of a large file changed: about that much crosses"
big=$S/dir/big
head -c 20000000 /dev/urandom >"$big"
v_push --source "$S" --name vol
h_assert_eq "$rc" 0 "push of the big file (stderr: $err)"
printf '%0200000d' 0 | tr 0 z | dd of="$big" bs=1 seek=7000000 conv=notrunc status=none
v_push --source "$S" --name vol --verbose
h_assert_eq "$rc" 0 "delta push (stderr: $err)"
h_assert_contains "$out" "send delta of dir/big" "sent as a delta"
lit=$(v_field "$out" literal) matched=$(v_field "$out" matched) sent=$(v_field "$out" sent)
h_log "1% change: literal $lit, matched $matched, sent $sent bytes"
((lit >= 200000 && lit < 200000 + 3 * 4480)) || h_fail "literal $lit for 200000 changed bytes"
((matched + lit == 20000000)) || h_fail "matched $matched + literal $lit != size"
# signature (~4500 blocks of 12 bytes) + the literal bytes (compressible here) + framing
((sent < 200000 + 100000)) || h_fail "sent $sent bytes for a 200 kB change in a 20 MB file"
v_compare "$S" "$C" --skip fifo

h_log "a delta over the copy's bytes: zero blocks written over data are zeros, a shorter file cut"
# the result starts as the destination's bytes; a run's range must not keep them under the
# patch's zero blocks (left as holes), nor past the new end
dd if=/dev/zero of="$big" bs=4096 seek=1000 count=20 conv=notrunc status=none
truncate -s 19990001 "$big"
v_push --source "$S" --name vol --verbose
h_assert_eq "$rc" 0 "delta push of zeros (stderr: $err)"
h_assert_contains "$out" "send delta of dir/big" "zeros sent as a delta"
cmp "$big" "$C/dir/big" || h_fail "dir/big differs after a delta writing zeros over data"

h_log "a metadata-only change makes a new inode: the published copy keeps the old mode"
prev=$(readlink "$H_TMP/dst/vol/latest")
chmod 0640 "$S/dir/sub/text"
v_push --source "$S" --name vol
h_assert_eq "$rc" 0 "chmod push (stderr: $err)"
h_assert_eq "$(stat -c %a "$C/dir/sub/text")" 640 "new mode in current"
h_assert_eq "$(stat -c %a "$H_TMP/dst/vol/$prev/dir/sub/text")" 644 "old copy unchanged"
v_compare "$S" "$C" --skip fifo

h_log "deletes and renames"
rm "$S/dir/random-5m" "$S/hard-1"
mv "$S/dir/sub" "$S/moved-sub"
rm -r "$S/empty-dir"
v_push --source "$S" --name vol
h_assert_eq "$rc" 0 "push after deletes (stderr: $err)"
v_compare "$S" "$C" --skip fifo
deleted=$(sed -n 's/.* \([0-9][0-9]*\) deleted.*/\1/p' <<<"$out")
h_assert_eq "$deleted" 4 "deleted: random-5m, hard-1, dir/sub, empty-dir ($out)"
v_compare "$S" "$H_TMP/dst/vol/$(readlink "$H_TMP/dst/vol/latest")" --skip fifo
h_assert_eq "$(ls "$H_TMP/dst/vol/copies" | wc -l)" 2 "--keep 2 copies"

h_log "--dry-run lists and changes nothing"
echo changed >>"$S/moved-sub/deeper/small"
rm "$S/one-byte"
before=$(readlink "$H_TMP/dst/vol/latest")
v_push --source "$S" --name vol --dry-run
h_assert_eq "$rc" 0 "dry run (stderr: $err)"
h_assert_contains "$out" "would send delta of moved-sub/deeper/small" "lists the change"
h_assert_contains "$out" "would delete one-byte" "lists the delete"
[[ -e "$C/one-byte" ]] || h_fail "dry run deleted a file"
h_assert_eq "$(readlink "$H_TMP/dst/vol/latest")" "$before" "dry run published nothing"
v_push --source "$S" --name vol
v_compare "$S" "$C" --skip fifo

h_log "--checksum: same size and time, other content"
f=$C/moved-sub/text
python3 -c "
import os,sys
p=sys.argv[1]; st=os.stat(p)
os.chmod(p, 0o600)
with open(p,'r+b') as f: f.seek(100); f.write(b'X')
os.chmod(p, st.st_mode & 0o7777)
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))" "$f"
v_push --source "$S" --name vol
h_assert_contains "$out" " 0 changed" "without --checksum the damage is not seen: $out"
v_push --source "$S" --name vol --checksum
h_assert_eq "$rc" 0 "checksum push (stderr: $err)"
h_assert_contains "$out" " 2 changed" "--checksum resends it (and relinks its hard link): $out"
v_compare "$S" "$C" --skip fifo

h_log "locks: one sync of a volume at a time; a promote keeps its copy from being pruned"
flock -x "$H_TMP/dst/vol" sleep 4 &
locker=$!
sleep 0.5
v_push --source "$S" --name vol
h_assert_eq "$rc" 18 "a sync while another holds the volume: EBUSY ($err)"
h_assert_contains "$err" "another drd" "says why"
wait "$locker"
flock -s "$H_TMP/dst/vol/copies" sleep 4 &
locker=$!
sleep 0.5
before=$(ls "$H_TMP/dst/vol/copies" | wc -l)
echo more >>"$S/moved-sub/deeper/small"
v_push --source "$S" --name vol
h_assert_eq "$rc" 0 "push during a promote (stderr: $err)"
h_assert_eq "$(ls "$H_TMP/dst/vol/copies" | wc -l)" "$((before + 1))" "nothing pruned while a promote reads"
wait "$locker"
v_push --source "$S" --name vol
h_assert_eq "$(ls "$H_TMP/dst/vol/copies" | wc -l)" 2 "pruned by the next sync"

h_log "status"
h_run_drd 30 replicate volume status --root "$H_TMP/dst" --json
h_assert_eq "$rc" 0 "status (stderr: $err)"
h_assert_eq "$(jq -r '.[0].name' <<<"$out")" vol "name"
h_assert_eq "$(jq -r '.[0].in_sync' <<<"$out")" true "in sync"
h_assert_eq "$(jq -r '.[0].latest' <<<"$out")" "$(basename "$(readlink "$H_TMP/dst/vol/latest")")" "latest"
(($(jq -r '.[0].syncs_total' <<<"$out") >= 9)) || h_fail "syncs_total: $out"
h_run_drd 30 replicate volume status --root "$H_TMP/dst" --name vol
h_assert_contains "$out" "vol: in sync" "human status: $out"
h_run_drd 30 replicate volume status --root "$H_TMP/dst" --name nope
h_assert_eq "$rc" 3 "unknown name: $err"
h_pass
