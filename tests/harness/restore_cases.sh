# shellcheck shell=bash
# tests/harness/restore_cases.sh: the end-to-end cases of `drd restore` and `drd drill`, shared by
# tests/integration/restore_file.sh (file://) and restore_s3.sh (Ceph RGW). Source it after
# etcd.sh, with STORE, STORE_FLAGS, store_fetch NAME FILE and store_put NAME FILE defined (as for
# snapshot_cases.sh), then call restore_cases_run.

drd=$(h_drd_path)
export ETCDCTL_API=3

expect_ok() { h_assert_eq "$rc" 0 "$1 (stderr: $err)"; }
expect_fail() {
    h_assert_eq "$rc" "$1" "$2: exit code (stderr: $err)"
    h_assert_contains "$err" "$3" "$2: error names the problem"
}
d() { h_run_drd 300 --log-level warn "$@" --store "$STORE" "${STORE_FLAGS[@]}" --key-file "$H_TMP/keys"; }
ds() { h_run_drd 60 --log-level warn "$@" --store "$STORE" "${STORE_FLAGS[@]}"; }
# kvs NAME [REV]: every key with value, create/mod revision, version and lease, as JSON lines
kvs() {
    h_etcdctl "$1" get "" --prefix ${2:+--rev="$2"} -w json |
        jq -c '.kvs // [] | map({key, value, create_revision, mod_revision, version, lease: (.lease // 0)})'
}
# restore_to NAME ARGS...: drd restore into a fresh member NAME (ports reserved), then start it
restore_to() {
    local name=$1 v
    shift
    v=$(_h_var "$name")
    h_etcd_reserve "$name"
    d restore "$@" --data-dir "$H_TMP/$name" --name "$name" \
        --initial-cluster "$(_h_get "${v}_INITIAL_CLUSTER")" \
        --initial-advertise-peer-urls "$(_h_get "${v}_PEER_URL")"
}

restore_case_setup() {
    h_log "history: snapshot, then puts, deletes and leases over several segments"
    h_etcd_start primary "$H_TMP/primary"
    h_run_drd 10 key generate --out "$H_TMP/keys"
    local i
    for ((i = 0; i < 100; i++)); do
        h_etcdctl primary put "/registry/pods/ns-$((i % 5))/p-$i" "{\"i\":$i}" >/dev/null
    done
    d snapshot save --etcd "$PRIMARY_URL"
    expect_ok "snapshot save"
    SNAP=$out
    SNAP_REV=$(h_etcd_revision primary)
    kvs primary >"$H_TMP/at-snap"
    h_bg follow "$drd" --log-level warn snapshot follow --etcd "$PRIMARY_URL" --store "$STORE" \
        "${STORE_FLAGS[@]}" --key-file "$H_TMP/keys" --segment-period 400ms
    LEASE=$(h_etcdctl primary lease grant 900 | awk '{print $2}')
    for ((i = 0; i < 40; i++)); do
        h_etcdctl primary put "/registry/pods/ns-1/p-$i" "{\"i\":$i,\"v\":2}" >/dev/null
        ((i % 4)) || h_etcdctl primary del "/registry/pods/ns-2/p-$((i + 2))" >/dev/null
        ((i % 10)) || h_etcdctl primary put --lease="$LEASE" "/registry/leases/l-$i" "held" >/dev/null
        ((i % 8)) || sleep 0.5 # spread over several segments
    done
    h_etcdctl primary lease revoke "$LEASE" >/dev/null
    h_etcdctl primary put /registry/after/x y >/dev/null
    FINAL_REV=$(h_etcd_revision primary)
    kvs primary >"$H_TMP/at-final"
    h_stop follow
    h_run_drd 120 --log-level warn snapshot follow --etcd "$PRIMARY_URL" --store "$STORE" "${STORE_FLAGS[@]}" \
        --key-file "$H_TMP/keys" --until-revision "$FINAL_REV"
    expect_ok "follow up to $FINAL_REV"
    ds snapshot list --json
    local segs
    segs=$(jq '[.[] | select(.kind == "incr")] | length' <<<"$out")
    ((segs >= 3)) || h_fail "expected the history in several segments, got $segs: $out"
    # the point in time: strictly inside a segment (not at its edge), after the leased put, and
    # the source's state there read back from etcd's history (nothing is compacted)
    MID_REV=$(jq --argjson s "$SNAP_REV" '[.[] | select(.kind == "incr" and .revision.start > $s + 3
        and .revision.end - .revision.start >= 2)][0].revision.start + 1' <<<"$out")
    [[ "$MID_REV" =~ ^[0-9]+$ ]] || h_fail "no segment of 3+ revisions to restore into: $out"
    kvs primary "$MID_REV" >"$H_TMP/at-mid"
    jq -e 'map(select(.lease != 0)) | length > 0' "$H_TMP/at-mid" >/dev/null ||
        h_fail "no leased key at revision $MID_REV: the lease case would test nothing"
}

restore_case_latest() {
    h_log "restore the latest snapshot, start etcd on it, compare"
    restore_to r1 --snapshot latest
    expect_ok "restore latest"
    h_etcd_start r1 "$H_TMP/r1"
    h_assert_eq "$(h_etcd_revision r1)" "$SNAP_REV" "revision of the restored snapshot"
    h_assert_eq "$(kvs r1)" "$(cat "$H_TMP/at-snap")" "every key, value and revision as at the snapshot"
    # the restored member takes writes (its database's consistent index fits its new raft log:
    # a wrong one makes etcd skip applying them) and keeps them across a restart
    h_etcdctl r1 put /restored/write ok >/dev/null
    h_assert_eq "$(h_etcd_revision r1)" "$((SNAP_REV + 1))" "revision after a write to the restored member"
    h_stop r1
    h_etcd_start r1 "$H_TMP/r1"
    h_assert_eq "$(h_etcdctl r1 get /restored/write --print-value-only)" "ok" "the write after a restart"
    h_stop r1
    h_log "the same restore through etcdctl's own copy (DRD_RESTORE_VIA=tool) gives the same member"
    DRD_RESTORE_VIA=tool restore_to r1t --snapshot latest
    expect_ok "restore latest via the tool"
    h_etcd_start r1t "$H_TMP/r1t"
    h_assert_eq "$(kvs r1t)" "$(cat "$H_TMP/at-snap")" "every key as at the snapshot (via the tool)"
    h_etcdctl r1t put /restored/write ok >/dev/null
    h_assert_eq "$(h_etcd_revision r1t)" "$((SNAP_REV + 1))" "revision after a write (via the tool)"
    h_stop r1t
}

restore_case_pitr() {
    h_log "point in time: revision $MID_REV, inside a segment"
    restore_to r2 --revision "$MID_REV"
    expect_ok "restore --revision $MID_REV"
    h_etcd_start r2 "$H_TMP/r2"
    h_assert_eq "$(h_etcd_revision r2)" "$MID_REV" "restored revision"
    h_assert_eq "$(kvs r2)" "$(cat "$H_TMP/at-mid")" "every key as the source had it at $MID_REV"
    # the lease present at that point is there, with its keys
    h_assert_contains "$(h_etcdctl r2 lease list)" "$LEASE" "lease restored"
    h_stop r2
    h_log "point in time: the last revision"
    restore_to r3 --revision "$FINAL_REV"
    expect_ok "restore --revision $FINAL_REV"
    h_etcd_start r3 "$H_TMP/r3"
    h_assert_eq "$(kvs r3)" "$(cat "$H_TMP/at-final")" "every key as at the last revision"
    h_stop r3
}

restore_case_refusals() {
    h_log "dry run, non-empty dir, gaps, corruption, bump"
    restore_to r4 --revision "$MID_REV" --dry-run
    expect_ok "dry run"
    h_assert_contains "$err" "would restore" "dry run says what it would do"
    [[ ! -e "$H_TMP/r4" ]] || h_fail "dry run created the data dir"
    mkdir -p "$H_TMP/r5" && touch "$H_TMP/r5/x"
    restore_to r5 --snapshot latest
    expect_fail 2 "non-empty data dir" "not empty"
    [[ -e "$H_TMP/r5/x" && $(ls "$H_TMP/r5" | wc -l) == 1 ]] || h_fail "non-empty dir was touched"
    restore_to r6 --revision $((FINAL_REV + 1000))
    expect_fail 3 "revision past the last segment" "in no segment"
    restore_to r6 --snapshot latest --bump-revision 1000 --mark-compacted
    expect_fail 2 "bump revision" "not supported with etcd"
    # a corrupt segment: refused before the data dir exists
    ds snapshot list --json
    local seg data
    seg=$(jq -r --argjson r "$MID_REV" '[.[] | select(.kind == "incr" and .revision.end >= $r)][0].id' <<<"$out")
    data=$(jq -r --arg id "$seg" '.[] | select(.id == $id) | .data' <<<"$out")
    store_fetch "$data" "$H_TMP/seg.orig"
    cp "$H_TMP/seg.orig" "$H_TMP/seg.bad"
    printf '\x00\x01' | dd of="$H_TMP/seg.bad" bs=1 seek=$(($(stat -c %s "$H_TMP/seg.bad") - 20)) conv=notrunc status=none
    store_put "$data" "$H_TMP/seg.bad"
    restore_to r7 --revision "$MID_REV"
    expect_fail 11 "corrupt segment" "$seg"
    [[ ! -e "$H_TMP/r7" ]] || h_fail "a corrupt segment left a data dir"
    store_put "$data" "$H_TMP/seg.orig"
    # a wrong key: refused
    h_run_drd 10 key generate --out "$H_TMP/other" --name other
    h_run_drd 60 restore --snapshot latest --store "$STORE" "${STORE_FLAGS[@]}" --key-file "$H_TMP/other" \
        --data-dir "$H_TMP/r8" --name r8 --initial-cluster r8=http://127.0.0.1:2380 \
        --initial-advertise-peer-urls http://127.0.0.1:2380
    ((rc == 10 || rc == 11)) || h_fail "restore with a wrong keyring: exit $rc ($err)"
    [[ ! -e "$H_TMP/r8" ]] || h_fail "a wrong key left a data dir"
    # a missing segment: the gap is named
    store_fetch "manifests/$seg.json" "$H_TMP/seg.manifest"
    h_run_drd 60 snapshot delete "$seg" --store "$STORE" "${STORE_FLAGS[@]}"
    expect_ok "delete a segment"
    restore_to r9 --revision "$MID_REV"
    expect_fail 3 "missing segment" "in no segment"
    store_put "manifests/$seg.json" "$H_TMP/seg.manifest"
    store_put "$data" "$H_TMP/seg.orig"
}

restore_case_keys() {
    h_log "restore keys of one prefix into a live etcd"
    local pfx=/registry/pods/ns-2/
    want() { jq -c --arg p "$pfx" 'map(select(.key | @base64d | startswith($p)) | {key, value})' "$H_TMP/at-mid"; }
    have() { h_etcdctl live get "$pfx" --prefix -w json | jq -c '.kvs // [] | map({key, value})'; }
    h_etcd_start live "$H_TMP/live"
    h_etcdctl live put /other/keep me >/dev/null
    d restore keys --revision "$MID_REV" --prefix "$pfx" --target "$LIVE_URL"
    expect_ok "restore keys"
    h_assert_eq "$(have)" "$(want)" "keys under $pfx as at revision $MID_REV"
    h_assert_eq "$(h_etcdctl live get /other/keep --print-value-only)" me "keys outside the prefix untouched"
    local k
    k=$(jq -r '.[0].key | @base64d' <<<"$(want)")
    h_etcdctl live put "$k" changed >/dev/null
    h_etcdctl live put "${pfx}extra" x >/dev/null
    d restore keys --revision "$MID_REV" --prefix "$pfx" --target "$LIVE_URL" --overwrite --dry-run
    expect_ok "restore keys dry run"
    h_assert_contains "$out" "would change $k" "dry run names the change"
    h_assert_contains "$out" "would delete ${pfx}extra" "dry run names the delete"
    h_assert_eq "$(h_etcdctl live get "$k" --print-value-only)" changed "dry run wrote nothing"
    d restore keys --revision "$MID_REV" --prefix "$pfx" --target "$LIVE_URL"
    expect_ok "restore keys without --overwrite"
    h_assert_eq "$(h_etcdctl live get "$k" --print-value-only)" changed "without --overwrite a changed key is kept"
    d restore keys --revision "$MID_REV" --prefix "$pfx" --target "$LIVE_URL" --overwrite
    expect_ok "restore keys --overwrite"
    h_assert_eq "$(have)" "$(want)" "keys under $pfx restored exactly with --overwrite"
    h_stop live
}

restore_case_drill() {
    h_log "drills"
    d drill --json
    expect_ok "drill on the latest snapshot"
    h_assert_eq "$(jq -r .ok <<<"$out")" true "drill report ok"
    jq -e '.rto_ms > 0 and (.checks | map(.name) | index("hashkv") != null)' <<<"$out" >/dev/null ||
        h_fail "drill report lacks RTO or HashKV: $out"
    d drill --revision "$MID_REV" --json
    expect_ok "drill at a revision"
    h_assert_eq "$(jq -r .revision <<<"$out")" "$MID_REV" "drill revision"
    # tamper with the snapshot: the drill fails with the reason and is recorded
    local data
    ds snapshot show "$SNAP"
    data=$(jq -r .data <<<"$out")
    store_fetch "$data" "$H_TMP/full.orig"
    cp "$H_TMP/full.orig" "$H_TMP/full.bad"
    printf '\x42' | dd of="$H_TMP/full.bad" bs=1 seek=200 conv=notrunc status=none
    store_put "$data" "$H_TMP/full.bad"
    d drill --snapshot "$SNAP"
    expect_fail 11 "drill on a tampered snapshot" "$SNAP"
    store_put "$data" "$H_TMP/full.orig"
    h_run_drd 30 drill list --store "$STORE" "${STORE_FLAGS[@]}" --json
    expect_ok "drill list"
    h_assert_eq "$(jq -c 'map(.ok)' <<<"$out")" '[false,true,true]' "drill history, newest first"
}

restore_cases_run() {
    export DRD_CATALOG_DIR="$H_TMP/catdir"
    restore_case_setup
    restore_case_latest
    restore_case_pitr
    restore_case_refusals
    restore_case_keys
    restore_case_drill
}
