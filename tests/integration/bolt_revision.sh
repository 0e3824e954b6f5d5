#!/usr/bin/env bash
# bolt_revision: the streaming snapshot scanner (snapshot/bolt.c, through $TESTBIN/test_bolt) finds
# the revision of real etcd 3.4 snapshots. For each state built on a real etcd, the scanner, fed
# the snapshot file in random-size pieces, must agree with
#   - `etcdctl snapshot status FILE -w json | jq .revision` on key_revision (the newest entry of
#     bucket "key"), and
#   - the server's revision on revision (quiescent states), or, after a compaction that removed
#     the newest entries and for the snapshot taken under load, the revision of an etcd restored
#     from the very same file (`etcdctl snapshot restore` + start).
# States: empty; a few keys; a delete last; compaction at the current revision after deletes;
# 20k keys with values of 100 KiB-2 MiB and 3 MiB (overflow pages, one leaf above the 8 MiB
# buffer); deletes last on that; compaction; rewrite + compaction + defrag; a snapshot taken while
# a writer hammers the server. On each: the same with min_rev (the bounded-memory mode), free
# pages overwritten with decoys (test_bolt poison), and on small ones truncation, garbage and
# mutations (test_bolt fuzz). Last, a bigger db (BOLT_BIG_MB, default 64) for speed and memory.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

TB=${TESTBIN:-$H_REPO/build/testbin}/test_bolt
[[ -x "$TB" ]] || h_fail "test program not found at '$TB' (build the test_bolt target)"
LOAD=${TESTBIN:-$H_REPO/build/testbin}/../bench/etcd-load
[[ -x "$LOAD" ]] || LOAD=""
BIG_MB=${BOLT_BIG_MB:-64}       # size of the last db, roughly
BIG_VALUE=${BOLT_BIG_VALUE:-900} # value size in it
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

h_tmpdir
MAXREQ=$((10 * 1024 * 1024))
h_etcd_start e "$H_TMP/e" --max-request-bytes "$MAXREQ" --max-txn-ops 10000

# bulk_put PREFIX FROM COUNT SIZE: keys PREFIX<8 digits>, values of SIZE bytes, many per Txn (at
# most 10000, under etcdctl's 2 MiB request limit)
bulk_put() {
    local prefix=$1 from=$2 count=$3 size=$4 val i end per
    val=$(head -c "$size" /dev/zero | tr '\0' x)
    per=$(((2 * 1024 * 1024 - 65536) / (size + 40)))
    ((per > 10000)) && per=10000
    for ((i = from; i < from + count; i += per)); do
        end=$((i + per < from + count ? i + per : from + count))
        { echo; awk -v p="$prefix" -v a="$i" -v b="$end" -v v="$val" \
            'BEGIN { for (j = a; j < b; j++) printf "put %s%08d %s\n", p, j, v }'; echo; echo; } |
            h_etcdctl e txn >/dev/null || h_fail "bulk put $prefix$i"
    done
}

# big_put KEY BYTES: a random value too large for etcdctl's 2 MiB client limit, via the gateway
big_put() {
    local f=$H_TMP/value.json
    { printf '{"key":"%s","value":"' "$(printf %s "$1" | base64 -w0)"
        head -c "$2" /dev/urandom | base64 -w0
        printf '"}'; } >"$f"
    curl -sf --max-time 60 -X POST --data-binary @"$f" "$E_URL/v3/kv/put" >/dev/null ||
        h_fail "put of $2 bytes at $1 refused"
    rm -f "$f"
}

# single_puts PREFIX COUNT: one revision each
single_puts() {
    if [[ -n "$LOAD" ]]; then
        "$LOAD" put --endpoints "$E_URL" --prefix "$1" --count "$2" --value-size 200 \
            --inflight 32 >/dev/null || h_fail "etcd-load put"
    else
        local i cfg=$H_TMP/puts.cfg
        for ((i = 0; i < $2; i++)); do
            ((i == 0)) || echo next
            printf 'url = "%s/v3/kv/put"\ndata = "{\\"key\\":\\"%s\\",\\"value\\":\\"dg==\\"}"\n' \
                "$E_URL" "$(printf '%s%08d' "$1" "$i" | base64 -w0)"
        done >"$cfg"
        curl -sf -K "$cfg" >/dev/null || h_fail "single puts"
    fi
}

json() { jq -r ".$2" <<<"$1"; }

snap() {  # NAME: snapshot of server e into $H_TMP/NAME.db
    h_etcdctl e snapshot save "$H_TMP/$1.db" >/dev/null 2>&1 || h_fail "snapshot save $1"
}

status_rev() { ETCDCTL_API=3 etcdctl snapshot status "$1" -w json | jq -r .revision; }

# restore FILE: RESTORED_REV = the revision of an etcd started on a data dir restored from FILE
RESTORES=0
restore() {
    local name=r$((RESTORES += 1)) v
    h_etcd_reserve "$name"
    v=$(_h_var "$name")
    ETCDCTL_API=3 etcdctl snapshot restore "$1" --data-dir "$H_TMP/$name" --name "$name" \
        --initial-cluster "$(_h_get "${v}_INITIAL_CLUSTER")" \
        --initial-advertise-peer-urls "$(_h_get "${v}_PEER_URL")" >/dev/null 2>&1 ||
        h_fail "snapshot restore of $1"
    h_etcd_start "$name" "$H_TMP/$name"
    RESTORED_REV=$(h_etcd_revision "$name")
    h_etcd_stop "$name"
    rm -rf "${H_TMP:?}/$name"
}

# check NAME EXPECTED_REVISION [poison] [fuzz ITERS]: scan NAME.db and compare
check() {
    local name=$1 want=$2 file=$H_TMP/$1.db out st key rev min
    shift 2
    st=$(status_rev "$file")
    out=$("$TB" scan --seed "$RANDOM" --max-chunk 200000 "$file") || h_fail "$name: scan failed"
    key=$(json "$out" key_revision)
    rev=$(json "$out" revision)
    h_log "$name: etcdctl status $st, want revision $want; scan: $out"
    h_assert_eq "$key" "$st" "$name: key_revision vs etcdctl snapshot status"
    h_assert_eq "$rev" "$want" "$name: revision"
    # bounded mode: min_rev = the revision itself, and a lower bound below it
    for min in "$want" $((want > 3 ? want - 2 : 1)); do
        out=$("$TB" scan --min-rev "$min" --seed "$RANDOM" --max-chunk 70000 "$file") ||
            h_fail "$name: scan with min_rev $min failed"
        h_assert_eq "$(json "$out" revision)" "$want" "$name: revision with min_rev $min"
    done
    # min_rev above the snapshot: refused, or still exact when the newest entry was kept
    if out=$("$TB" scan --min-rev $((want + 1000000)) "$file" 2>"$H_TMP/err"); then
        h_assert_eq "$(json "$out" revision)" "$want" "$name: revision with min_rev too high"
    else
        h_assert_contains "$(cat "$H_TMP/err")" "min revision" "$name: min_rev too high"
    fi
    while (($#)); do
        case "$1" in
            poison) "$TB" poison --seed "$RANDOM" "$file" >&2 || h_fail "$name: poisoned free pages" ;;
            fuzz) "$TB" fuzz --seed "$RANDOM" --iters "$2" "$file" >&2 || h_fail "$name: fuzz"; shift ;;
        esac
        shift
    done
}

# shapes etcd does not make, built by the test program
"$TB" synth >&2 || h_fail "synthetic database"

# ---- small states
snap empty
check empty 1 fuzz 1000
for k in /a /b /c; do h_etcdctl e put "$k" "value of $k" >/dev/null; done
snap few
check few "$(h_etcd_revision e)" fuzz 1000
h_etcdctl e del /c >/dev/null
snap dellast
check dellast "$(h_etcd_revision e)"
h_etcdctl e put /d 1 >/dev/null
h_etcdctl e del /d >/dev/null
rev=$(h_etcd_revision e)
h_etcdctl e compact "$rev" --physical >/dev/null
snap compacted
h_assert_eq "$((rev > $(status_rev "$H_TMP/compacted.db")))" 1 "compaction removed the newest entries"
restore "$H_TMP/compacted.db"
h_assert_eq "$RESTORED_REV" "$rev" "compacted: restored etcd's revision"
check compacted "$rev" poison fuzz 1000

# ---- a tree: 20k keys, single puts, large values (buffered overflow), 3 MiB ones (> 8 MiB leaf)
bulk_put /k/ 0 20000 100
single_puts /s/ 500
for i in 1 2 3 4 5 6; do big_put "/big/$i" $((100 * 1024 + RANDOM * 60)); done
for i in 1 2 3 4; do big_put "/huge/$i" $((3 * 1024 * 1024)); done
snap tree
check tree "$(h_etcd_revision e)" poison
out=$("$TB" scan "$H_TMP/tree.db")
(($(json "$out" buffered_extents) > 0)) || h_fail "tree: no page with overflow was buffered"
h_assert_eq "$(json "$out" key_leaf_oversized)" 1 "tree: newest entry read from a leaf above 8 MiB"

# deletes last, then compaction at the current revision (the tombstones and what they deleted go)
h_etcdctl e del --prefix /huge/ >/dev/null
h_etcdctl e del --prefix /k/0001999 >/dev/null
snap treedel
check treedel "$(h_etcd_revision e)" poison
rev=$(h_etcd_revision e)
h_etcdctl e compact "$rev" --physical >/dev/null
snap treecompact
(($(status_rev "$H_TMP/treecompact.db") < rev)) || h_fail "treecompact: newest entries still there"
restore "$H_TMP/treecompact.db"
h_assert_eq "$RESTORED_REV" "$rev" "treecompact: restored etcd's revision"
check treecompact "$rev" poison

# many puts over the same keys, compaction, defrag
bulk_put /k/ 0 20000 150
single_puts /s/ 500
rev=$(h_etcd_revision e)
h_etcdctl e compact "$rev" --physical >/dev/null
h_etcdctl e defrag >/dev/null
single_puts /t/ 50
snap defrag
check defrag "$(h_etcd_revision e)" poison

# a smaller tree with branch pages, for the mutation fuzz
bulk_put /f/ 0 6000 60
h_etcdctl e del --prefix /f/00005 >/dev/null
snap fuzzme
check fuzzme "$(h_etcd_revision e)" fuzz 300

# ---- the snapshot taken while a writer hammers the server
BIG_N=$((BIG_MB * 1024 * 1024 / 2 / (BIG_VALUE + 120)))
bulk_put /bg/ 0 "$BIG_N" "$BIG_VALUE"
if [[ -n "$LOAD" ]]; then
    h_bg writer "$LOAD" put --endpoints "$E_URL" --prefix /w/ --count 100000000 --value-size 300 \
        --inflight 64
else
    # shellcheck disable=SC2016 # expanded by the inner shell
    h_bg writer bash -c 'while :; do ETCDCTL_API=3 etcdctl --endpoints "$1" put /w/$RANDOM x >/dev/null; done' \
        _ "$E_URL"
fi
r0=$(h_etcd_revision e)
rev_above() { h_running writer && (($(h_etcd_revision e) > $1)); }
h_wait_until 20 "writer is writing" rev_above $((r0 + 200))
before=$(h_etcd_revision e)
snap busy
after=$(h_etcd_revision e)
h_stop writer
st=$(status_rev "$H_TMP/busy.db")
out=$("$TB" scan --min-rev "$before" --seed "$RANDOM" "$H_TMP/busy.db") || h_fail "busy: scan failed"
rev=$(json "$out" revision)
h_log "busy: revisions $before..$after around the snapshot; etcdctl status $st; scan: $out"
((rev >= before && rev <= after)) || h_fail "busy: revision $rev outside $before..$after"
((after > before)) || h_fail "busy: the writer did not write during the snapshot"
restore "$H_TMP/busy.db"
h_assert_eq "$RESTORED_REV" "$rev" "busy: restored etcd's revision"
check busy "$rev" poison

# ---- speed and memory on the biggest db: the snapshot streamed in etcd's 32 KiB messages
bulk_put /bg/ "$BIG_N" "$BIG_N" "$BIG_VALUE"
single_puts /z/ 2000
snap big
rev=$(h_etcd_revision e)
check big "$rev"
for min in 0 "$rev"; do
    out=$("$TB" scan --min-rev "$min" --chunk 32768 "$H_TMP/big.db") || h_fail "big: scan failed"
    h_log "big db, min_rev $min: $(json "$out" db_size) bytes, $(json "$out" mb_per_s) MB/s," \
        "peak scanner memory $(json "$out" peak_mem) bytes ($(json "$out" leaf_records) leaf" \
        "records, $(json "$out" branch_pages) branch pages), max RSS $(json "$out" max_rss_kb) KiB"
    h_assert_eq "$(json "$out" revision)" "$rev" "big: revision with min_rev $min"
done
# bounded: with min_rev, the scanner keeps the window (<= 8 MiB + pages) and small summaries
(($(json "$out" peak_mem) < 12 * 1024 * 1024)) || h_fail "big: scanner memory not bounded"

h_pass
