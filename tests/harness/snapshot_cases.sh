# shellcheck shell=bash
# tests/harness/snapshot_cases.sh: the end-to-end cases of `drd snapshot` shared by the file://
# and the s3:// integration tests (tests/integration/snapshot_file.sh, snapshot_s3.sh). Source it
# after etcd.sh, define the store access below, then call snap_cases_run.
#
# The caller sets:
#   STORE          the store URL (its own prefix/dir: tests may run in parallel)
#   STORE_FLAGS    array of extra flags (--s3-endpoint ... --s3-insecure-http)
#   store_fetch NAME FILE   copies the raw stored object NAME to FILE (a real peer: cp or curl)
#   store_put NAME FILE     replaces the raw stored object NAME with FILE
#   store_ls PREFIX         prints stored object names under PREFIX, one per line
#   store_pending           prints unfinished uploads / temp files (empty when none)

drd=$(h_drd_path)

snap() { h_run_drd 120 --log-level error snapshot "$@" --store "$STORE" "${STORE_FLAGS[@]}"; }
expect_ok() { h_assert_eq "$rc" 0 "$1 (stderr: $err)"; }
# expect_fail CODE WHAT TEXT: exit CODE with one line on stderr (and maybe a HINT: line)
# containing TEXT
expect_fail() {
    h_assert_eq "$rc" "$1" "$2: exit code (stderr: $err)"
    h_assert_eq "$(printf '%s\n' "$err" | grep -v '^HINT: ' | grep -c .)" 1 "$2: one-line error (stderr: $err)"
    h_assert_contains "$err" "$3" "$2: error names the problem"
}

# put_marked N: N puts of keys /registry/snap/k-I carrying a known marker in the value
put_marked() {
    local n=$1 i
    for ((i = 0; i < n; i += 100)); do
        jq -nr --arg url "$PRIMARY_URL" --argjson s "$i" --argjson n "$n" '
            [range($s; [$s + 100, $n] | min) as $k
             | {requestPut: {key: ("/registry/snap/k-\($k)" | @base64),
                             value: ("PLAINTEXT-MARKER-\($k)-" + ("x" * 300) | @base64)}}]
            | "url = \($url)/v3/kv/txn\ndata = \({success: .} | tojson)\nnext"'
    done | sed '$d' >"$H_TMP/put.curl" # no "next" after the last one
    curl -sS --max-time 60 -K "$H_TMP/put.curl" >"$H_TMP/put.out" || h_fail "loading keys"
    h_assert_eq "$(jq -s 'map(select(.succeeded == true)) | length' "$H_TMP/put.out")" $(((n + 99) / 100)) \
        "transactions loading keys ($(tail -c 300 "$H_TMP/put.out"))"
}

# big_load MB: about MB megabytes of incompressible values (snapshots that take a while);
# values of 30000 random bytes (a curl config line must stay below ~100 KB)
big_load() {
    local i
    for ((i = 0; i < $1 * 35; i++)); do
        printf 'url = %s/v3/kv/put\ndata = {"key":"%s","value":"%s"}\nnext\n' "$PRIMARY_URL" \
            "$(printf '/big/%06d' "$i" | base64 -w0)" "$(head -c 30000 /dev/urandom | base64 -w0)"
    done | sed '$d' >"$H_TMP/big.curl"
    curl -sS --max-time 300 -K "$H_TMP/big.curl" >/dev/null || h_fail "loading big values"
}

manifest_field() { jq -r "$2" <<<"$1"; }

snap_case_keys() {
    h_log "keyring"
    h_run_drd 10 key generate --out "$H_TMP/keys" --name k1
    expect_ok "key generate"
    h_assert_eq "$(stat -c %a "$H_TMP/keys")" 600 "keyring mode"
    h_run_drd 10 key generate --out "$H_TMP/keys"
    ((rc != 0)) || h_fail "key generate overwrote an existing keyring"
    cp "$H_TMP/keys" "$H_TMP/keys.open" && chmod 644 "$H_TMP/keys.open"
    snap save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys.open"
    expect_fail 10 "keyring readable by others" "chmod 600"
    snap save --etcd "$PRIMARY_URL"
    expect_fail 2 "save without a key" "--key-file"
    snap save --etcd "$PRIMARY_URL" --key-file "$H_TMP/nope"
    expect_fail 3 "missing key file" "nope"
}

snap_case_roundtrip() {
    h_log "save, list, show, get"
    put_marked 1000
    big_load 1 # incompressible: the stored object spans several encryption chunks
    snap save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys" --label env=test
    expect_ok "snapshot save"
    ID1=$out
    [[ "$ID1" =~ ^[0-9]{19}-[0-9]{19}-full-[0-9]{8}T[0-9]{6}Z$ ]] || h_fail "save printed '$ID1', not an ID"
    # a peer's snapshot at the same moment (nothing written in between)
    ETCDCTL_API=3 etcdctl --endpoints "$PRIMARY_URL" snapshot save "$H_TMP/peer.db" >/dev/null 2>&1 ||
        h_fail "etcdctl snapshot save"
    snap list --json
    expect_ok "snapshot list"
    h_assert_eq "$(jq -r '.[] | select(.kind == "full") | .id' <<<"$out")" "$ID1" "listed snapshot"
    snap show "$ID1"
    expect_ok "snapshot show"
    local m=$out
    h_assert_eq "$(manifest_field "$m" .labels.env)" test "label"
    h_assert_eq "$(manifest_field "$m" .encryption)" aes-256-gcm "encryption"
    h_assert_eq "$(manifest_field "$m" .key_id)" k1 "key id"
    h_assert_eq "$(manifest_field "$m" .revision.end)" "$(h_etcd_revision primary)" "manifest revision"
    h_assert_eq "$(manifest_field "$m" .key_count)" "$(h_etcd_count primary)" "manifest key count"
    snap get "$ID1" --out "$H_TMP/got.db" --key-file "$H_TMP/keys"
    expect_ok "snapshot get"
    h_assert_eq "$(stat -c %a "$H_TMP/got.db")" 600 "snapshot file mode"
    local ours peer
    ours=$(ETCDCTL_API=3 etcdctl snapshot status "$H_TMP/got.db" -w json) || h_fail "etcdctl snapshot status refused drd's file"
    peer=$(ETCDCTL_API=3 etcdctl snapshot status "$H_TMP/peer.db" -w json)
    h_assert_eq "$(jq -c '{hash, revision, totalKey}' <<<"$ours")" "$(jq -c '{hash, revision, totalKey}' <<<"$peer")" \
        "etcdctl snapshot status of drd's file vs etcdctl's own snapshot"
    h_assert_eq "$(jq -r .revision <<<"$ours")" "$(manifest_field "$m" .revision.end)" "revision in the file"
    snap get latest --out "$H_TMP/latest.db" --key-file "$H_TMP/keys"
    expect_ok "snapshot get latest"
    cmp -s "$H_TMP/got.db" "$H_TMP/latest.db" || h_fail "get latest differs from get ID"
    # nothing readable at rest
    DATA1=$(manifest_field "$m" .data)
    store_fetch "$DATA1" "$H_TMP/raw"
    [[ -s "$H_TMP/raw" ]] || h_fail "no stored data object $DATA1"
    if grep -aq "PLAINTEXT-MARKER" "$H_TMP/raw"; then h_fail "the stored object contains plaintext"; fi
    # the store holds only what we expect
    store_ls "" >"$H_TMP/ls"
    grep -q "^manifests/$ID1.json$" "$H_TMP/ls" || h_fail "no manifest object: $(cat "$H_TMP/ls")"
}

snap_case_tamper() {
    h_log "tampering"
    local size
    cp "$H_TMP/raw" "$H_TMP/orig"
    size=$(stat -c %s "$H_TMP/orig")
    ((size > 3 * 65552)) || h_fail "object too small ($size) for the chunk cases"
    snap verify "$ID1" --key-file "$H_TMP/keys"
    expect_ok "verify good object"
    # one flipped byte in the middle
    cp "$H_TMP/orig" "$H_TMP/bad"
    printf '\x5a' | dd of="$H_TMP/bad" bs=1 seek=$((size / 2)) conv=notrunc status=none
    cmp -s "$H_TMP/bad" "$H_TMP/orig" && { printf '\xa5' | dd of="$H_TMP/bad" bs=1 seek=$((size / 2)) conv=notrunc status=none; }
    store_put "$DATA1" "$H_TMP/bad"
    snap verify "$ID1" --key-file "$H_TMP/keys"
    expect_fail 11 "verify flipped byte" "$ID1"
    rm -f "$H_TMP/out.db"
    snap get "$ID1" --out "$H_TMP/out.db" --key-file "$H_TMP/keys"
    ((rc != 0)) || h_fail "get accepted a flipped byte"
    [[ ! -e "$H_TMP/out.db" ]] || h_fail "get left a file behind after a failed check"
    # truncated
    head -c $((size - 1000)) "$H_TMP/orig" >"$H_TMP/bad"
    store_put "$DATA1" "$H_TMP/bad"
    snap verify "$ID1" --key-file "$H_TMP/keys"
    expect_fail 11 "verify truncated" "$ID1"
    # cut right after the second whole chunk (header + 2 chunks: a clean chunk boundary), and two
    # whole chunks swapped (docs/format.md: header = 74 + key name length, chunks of 64 KiB + tag)
    python3 - "$H_TMP/orig" "$H_TMP/cut" "$H_TMP/bad" <<'EOF2' || h_fail "cannot build the chunk cases"
import sys
data = open(sys.argv[1], 'rb').read()
h = 74 + data[13]
C = 65536 + 16
open(sys.argv[2], 'wb').write(data[:h + 2 * C])
out = data[:h] + data[h + C:h + 2 * C] + data[h:h + C] + data[h + 2 * C:]
open(sys.argv[3], 'wb').write(out)
EOF2
    store_put "$DATA1" "$H_TMP/cut"
    snap verify "$ID1" --key-file "$H_TMP/keys"
    expect_fail 11 "verify truncated at a chunk boundary" "$ID1"
    store_put "$DATA1" "$H_TMP/bad"
    snap verify "$ID1" --key-file "$H_TMP/keys"
    expect_fail 11 "verify swapped chunks" "$ID1"
    store_put "$DATA1" "$H_TMP/orig"
    # wrong keys: same name, other key material; and a ring without the key
    h_run_drd 10 key generate --out "$H_TMP/keys.same" --name k1
    snap verify "$ID1" --key-file "$H_TMP/keys.same"
    expect_fail 10 "verify with a wrong key of the same name" "fails authentication under key 'k1'"
    h_run_drd 10 key generate --out "$H_TMP/keys.other" --name other
    snap verify "$ID1" --key-file "$H_TMP/keys.other"
    expect_fail 10 "verify with a keyring lacking the key" "k1"
    snap verify "$ID1" --key-file "$H_TMP/keys"
    expect_ok "verify restored object"
    # an edited manifest is caught by its mac (the key counts edited to match, so that it passes
    # the range checks)
    store_fetch "manifests/$ID1.json" "$H_TMP/man"
    jq '.key_count = 1 | .key_counts = {"resources": {}, "other": 1}' "$H_TMP/man" >"$H_TMP/man.bad"
    store_put "manifests/$ID1.json" "$H_TMP/man.bad"
    rm -f "$H_TMP/catalog.db"*
    snap verify "$ID1" --key-file "$H_TMP/keys"
    expect_fail 10 "verify edited manifest" "fails authentication"
    store_put "manifests/$ID1.json" "$H_TMP/man"
    rm -f "$H_TMP/catalog.db"*
}

snap_case_rotate() {
    h_log "key rotation"
    h_run_drd 10 key rotate --keyring "$H_TMP/keys" --name k2
    expect_ok "key rotate"
    cp "$H_TMP/keys" "$H_TMP/keys.k2"
    snap save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys"
    expect_ok "save after rotation"
    ID2=$out
    snap show "$ID2"
    h_assert_eq "$(manifest_field "$out" .key_id)" k2 "new snapshot uses the new key"
    snap verify --all --key-file "$H_TMP/keys"
    expect_ok "old and new snapshots readable after rotation"
}

snap_case_crash() {
    h_log "kill -9 during save"
    big_load 20 # 40 MB with the concurrent case's
    local i
    for i in 1 2 3; do
        h_bg saver "$drd" --log-level error snapshot save --etcd "$PRIMARY_URL" --store "$STORE" \
            "${STORE_FLAGS[@]}" --key-file "$H_TMP/keys" --compression none
        sleep "0.$((2 + i))"
        h_kill9 saver
    done
    snap list --json
    expect_ok "list after kills"
    snap verify --all --key-file "$H_TMP/keys"
    expect_ok "everything listed after kill -9 verifies"
    # the next run cleans up what the killed ones left
    snap save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys"
    expect_ok "save after kills"
    [[ -z "$(store_pending)" ]] || h_fail "unfinished uploads remain after the next save: $(store_pending)"
    snap list --json
    local referenced stored
    referenced=$(jq -r '.[].data' <<<"$out" | sort)
    stored=$(store_ls data/ | sort)
    h_assert_eq "$stored" "$referenced" "data objects are exactly those the manifests name"
}

snap_case_concurrent() {
    h_log "a second save while one runs"
    # the first save is paused (SIGSTOP) as soon as it holds the lock; meanwhile a second save on
    # this host (same catalog: the local flock) and one as from another host (its own catalog:
    # only the lock object in the store) must both be refused with exit 18. Then the first goes on
    # and succeeds.
    big_load 20 # the crash case adds as much again
    h_bg s1 "$drd" --log-level error snapshot save --etcd "$PRIMARY_URL" --store "$STORE" \
        "${STORE_FLAGS[@]}" --key-file "$H_TMP/keys" --compression none
    holds_lock() { [[ -n "$(store_ls locks/save-)" ]]; }
    h_wait_until 30 "the first save takes the lock" holds_lock
    kill -STOP "$S1_PID"
    h_on_exit 'kill -CONT "$S1_PID" 2>/dev/null || true'
    h_running s1 || h_fail "the first save ended before it could be paused ($(cat "$H_TMP/s1.log"))"
    snap save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys"
    expect_fail 18 "a second save on this host" "another drd save"
    h_run_drd 60 --log-level error snapshot save --etcd "$PRIMARY_URL" --store "$STORE" \
        "${STORE_FLAGS[@]}" --catalog "$H_TMP/catalog-other-host.db" --key-file "$H_TMP/keys"
    expect_fail 18 "a second save as from another host" "another drd save"
    kill -CONT "$S1_PID"
    local r1=0
    h_wait_exit s1 120 || r1=$?
    h_assert_eq "$r1" 0 "the first save's exit status ($(cat "$H_TMP/s1.log"))"
    [[ -z "$(store_ls locks/save-)" ]] || h_fail "the lock object remains after the save: $(store_ls locks/)"
    snap verify --all --key-file "$H_TMP/keys"
    expect_ok "verify after concurrent saves"
}

snap_case_follow() {
    h_log "segments across kill -9"
    local base i ops=0 first
    snap save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys"
    expect_ok "base snapshot"
    base=$(h_etcd_revision primary)
    h_bg follow "$drd" --log-level info snapshot follow --etcd "$PRIMARY_URL" --store "$STORE" \
        "${STORE_FLAGS[@]}" --key-file "$H_TMP/keys" --segment-period 300ms
    for ((i = 0; i < 60; i++)); do
        h_etcdctl primary put "/seg/a-$i" "v$i" >/dev/null
        ops=$((ops + 1))
        if ((i % 3 == 0)); then h_etcdctl primary del "/seg/a-$i" >/dev/null; ops=$((ops + 1)); fi
        if ((i == 30)); then h_kill9 follow; fi
    done
    # a lease with a key, and a multi-key revision
    local lease
    lease=$(h_etcdctl primary lease grant 600 | awk '{print $2}')
    h_etcdctl primary put --lease="$lease" /seg/leased x >/dev/null
    h_etcdctl primary txn <<<$'\nput /seg/t1 1\nput /seg/t2 2\n\n' >/dev/null
    ops=$((ops + 2))
    local final
    final=$(h_etcd_revision primary)
    h_run_drd 120 --log-level error snapshot follow --etcd "$PRIMARY_URL" --store "$STORE" \
        "${STORE_FLAGS[@]}" --key-file "$H_TMP/keys" --segment-period 300ms --until-revision "$final"
    expect_ok "follow resumes after kill -9 and reaches revision $final"
    snap list --json
    expect_ok "list segments"
    jq -c '[.[] | select(.kind == "incr" and .revision.start > '"$base"') | [.revision.start, .revision.end]]' <<<"$out" >"$H_TMP/segs"
    first=$(jq '.[0][0]' "$H_TMP/segs")
    h_assert_eq "$first" $((base + 1)) "first segment starts right after the base snapshot"
    h_assert_eq "$(jq '.[-1][1]' "$H_TMP/segs")" "$final" "last segment ends at the last revision"
    h_assert_eq "$(jq '[range(1; length) as $i | select(.[$i][0] != .[$i - 1][1] + 1)] | length' "$H_TMP/segs")" 0 \
        "segments contiguous, no gap or overlap: $(cat "$H_TMP/segs")"
    h_assert_eq "$(jq '[.[] | select(.kind == "incr" and .revision.start > '"$base"') | .events] | add' <<<"$out")" \
        $((ops + 1)) "every put and delete is in a segment once"
    snap verify --all --key-file "$H_TMP/keys"
    expect_ok "verify all with segments"
    h_log "follow after the history it needs was compacted"
    for ((i = 0; i < 5; i++)); do h_etcdctl primary put "/seg/c-$i" x >/dev/null; done
    local crev
    crev=$(h_etcd_revision primary)
    h_etcdctl primary compact "$crev" >/dev/null
    h_etcdctl primary put /seg/after-compaction y >/dev/null
    final=$(h_etcd_revision primary)
    h_run_drd 120 --log-level error snapshot follow --etcd "$PRIMARY_URL" --store "$STORE" \
        "${STORE_FLAGS[@]}" --key-file "$H_TMP/keys" --segment-period 300ms --until-revision "$final"
    expect_ok "follow after compaction"
    snap list --json
    h_assert_eq "$(jq --argjson c "$crev" '[.[] | select(.kind == "full" and .revision.end >= $c and .labels.by == "follow")] | length' <<<"$out")" 1 \
        "a new base snapshot after the compaction"
    h_assert_eq "$(jq '[.[] | .revision.end] | max' <<<"$out")" "$final" \
        "the store reaches the last revision after the compaction"
    snap verify --all --key-file "$H_TMP/keys"
    expect_ok "verify all after compaction"
}

snap_case_prune() {
    h_log "prune and catalog rebuild"
    snap list --json
    local fulls
    fulls=$(jq '[.[] | select(.kind == "full")] | length' <<<"$out")
    ((fulls >= 3)) || h_fail "need 3 full snapshots for the prune case, have $fulls"
    snap prune
    expect_fail 2 "prune without policy" "--keep"
    snap prune --keep-last 2 --dry-run
    expect_fail 10 "prune without the keyring" "--key-file"
    snap prune --keep-last 2 --dry-run --key-file "$H_TMP/keys"
    expect_ok "prune dry run"
    h_assert_eq "$(grep -c '^delete [0-9]*-[0-9]*-full-' <<<"$out")" $((fulls - 2)) "dry run lists the old fulls: $out"
    snap list --json
    h_assert_eq "$(jq '[.[] | select(.kind == "full")] | length' <<<"$out")" "$fulls" "dry run deleted nothing"
    snap prune --keep-last 2 --key-file "$H_TMP/keys"
    expect_ok "prune"
    snap list --json
    h_assert_eq "$(jq '[.[] | select(.kind == "full")] | length' <<<"$out")" 2 "two fulls kept"
    local oldest
    oldest=$(jq '[.[] | select(.kind == "full") | .revision.end] | min' <<<"$out")
    h_assert_eq "$(jq "[.[] | select(.kind == \"incr\" and .revision.end <= $oldest)] | length" <<<"$out")" 0 \
        "no segment before the oldest kept full"
    local listed=$out
    rm -f "$H_TMP/catalog.db"*
    h_run_drd 60 catalog rebuild --store "$STORE" "${STORE_FLAGS[@]}"
    expect_ok "catalog rebuild"
    snap list --json
    h_assert_eq "$(jq -c 'map(.id)' <<<"$out")" "$(jq -c 'map(.id)' <<<"$listed")" "rebuilt catalog lists the same"
    h_assert_eq "$(stat -c %a "$H_TMP/catalog.db")" 600 "catalog mode"
}

snap_case_badinput() {
    h_log "bad input"
    h_run_drd 10 snapshot list --store "ftp://x/y"
    expect_fail 2 "unknown scheme" "ftp"
    h_run_drd 10 snapshot list --store "file:///nonexistent/drd-store"
    expect_fail 3 "missing directory" "/nonexistent/drd-store"
    snap show "not-an-id"
    expect_fail 2 "bad id" "not-an-id"
    snap show "0000000000000000001-0000000000000000001-full-20260101T000000Z"
    expect_fail 3 "unknown id" "0000000000000000001"
    snap save --etcd "http://127.0.0.1:1" --key-file "$H_TMP/keys"
    expect_fail 4 "unreachable etcd" "127.0.0.1:1"
    snap save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys" --compression lz4
    expect_fail 2 "bad compression" "lz4"
}

snap_cases_run() {
    export DRD_CATALOG_DIR="$H_TMP/catdir"
    STORE_FLAGS+=(--catalog "$H_TMP/catalog.db")
    h_etcd_start primary "$H_TMP/primary"
    snap_case_keys
    snap_case_roundtrip
    snap_case_tamper
    snap_case_rotate
    snap_case_concurrent
    snap_case_follow
    snap_case_crash
    snap_case_prune
    snap_case_badinput
}
