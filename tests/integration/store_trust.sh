#!/usr/bin/env bash
# Trusting nothing the store says (issue 10), on a file:// store against a real etcd: a store
# writer without the master key plants a plaintext snapshot of a forged database, and every
# reader with the keyring refuses it by name (list, verify, get, restore, drill, restore keys:
# one line, non-zero, nothing written) while restore of latest and drills go on with the real
# backup; --allow-plaintext reads it, loudly. A data object whose encryption header names another
# key than its manifest, outer manifests edited field by field with a correct mac recomputed by a
# key holder (so that only the sealed inner manifest can catch them), garbage and format-99
# manifests next to good ones (listed as damaged, everything else goes on), a planted manifest
# naming a real object's data (deleting it leaves the data), planted newer manifests (prune
# neither counts nor deletes them), a plaintext manifest planted at the ID the next save takes
# (that save fails with exit 10 instead of taking it for its own), and a decompression bomb
# (refused before a byte is written).
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
mkdir -p "$H_TMP/store"
S="$H_TMP/store"
STORE="file://$S"
export DRD_CATALOG_DIR="$H_TMP/catdir"
export ETCDCTL_API=3

run() { h_run_drd 120 --log-level warn "$@" --store "$STORE"; }
expect_ok() { h_assert_eq "$rc" 0 "$1 (stderr: $err)"; }
# expect_fail CODE WHAT TEXT: exit CODE, one error line (warnings aside) containing TEXT
expect_fail() {
    h_assert_eq "$rc" "$1" "$2: exit code (stderr: $err)"
    h_assert_eq "$(printf '%s\n' "$err" | grep -v '^HINT: \| warn \|^drd: warning' | grep -c .)" 1 \
        "$2: one-line error (stderr: $err)"
    h_assert_contains "$err" "$3" "$2: error names the problem"
}
# remac FILE: recompute the outer manifest's mac with the test's keyring (what only a key holder
# can do): HMAC-SHA256(HMAC-SHA256(master, "drd manifest mac v1"), sha256(text before the mac))
remac() {
    python3 - "$1" "$H_TMP/keys" <<'EOF'
import hashlib, hmac, json, re, sys
path, ring = sys.argv[1], sys.argv[2]
keys = dict(re.findall(r'^key (\S+) ([0-9a-f]{64})$', open(ring).read(), re.M))
text = open(path).read()
head = re.sub(r',\n  "mac": "[0-9a-f]{64}"\n}\n$', '', text)
if head.endswith('\n}\n'):
    head = head[:-3]
kid = json.loads(head + '\n}\n')['key_id']
k = hmac.new(bytes.fromhex(keys[kid]), b'drd manifest mac v1', hashlib.sha256).digest()
mac = hmac.new(k, hashlib.sha256(head.encode()).digest(), hashlib.sha256).hexdigest()
open(path, 'w').write(head + ',\n  "mac": "%s"\n}\n' % mac)
EOF
}
# edit_manifest ID JQ: rewrite the outer manifest with jq, keeping the layout drd writes, then
# give it a correct mac
edit_manifest() {
    local f="$S/manifests/$1.json"
    python3 - "$f" "$2" <<'EOF'
import json, subprocess, sys
path, prog = sys.argv[1], sys.argv[2]
text = open(path).read()
doc = json.loads(text)
doc.pop('mac', None)
new = json.loads(subprocess.run(['jq', '-c', prog], input=json.dumps(doc), capture_output=True,
                                text=True, check=True).stdout)
# same field order and layout as drd's writer: one top-level member per line
lines = ['  %s: %s' % (json.dumps(k), json.dumps(v, separators=(', ', ': '))) for k, v in new.items()]
open(path, 'w').write('{\n' + ',\n'.join(lines) + '\n}\n')
EOF
    remac "$f"
}

h_etcd_start primary "$H_TMP/primary"
h_etcd_start live "$H_TMP/live"
h_run_drd 10 key generate --out "$H_TMP/keys" --name k1
expect_ok "key generate"
for i in 1 2 3; do h_etcdctl primary put "/registry/secrets/ns/s$i" "REAL-$i" >/dev/null; done

h_log "the real backup, then a forged plaintext one planted by a store writer"
run snapshot save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys"
expect_ok "real save"
REAL=$out
h_etcdctl primary put /registry/secrets/ns/s1 FORGED >/dev/null
run snapshot save --etcd "$PRIMARY_URL" --no-encryption
expect_ok "plaintext save (the attacker's)"
FORGED=$out
[[ "$FORGED" > "$REAL" ]] || h_fail "the forged snapshot should be the newest"

run snapshot list --key-file "$H_TMP/keys" --json
expect_ok "list"
h_assert_eq "$(jq -r --arg id "$FORGED" '.[] | select(.id == $id) | .status' <<<"$out")" refused "forged listed as refused"
h_assert_eq "$(jq -r --arg id "$REAL" '.[] | select(.id == $id) | .status' <<<"$out")" ok "real listed as ok"
run snapshot verify --all --key-file "$H_TMP/keys"
h_assert_eq "$rc" 11 "verify --all fails on the planted object (stderr: $err)"
h_assert_contains "$err" "FAILED $FORGED" "verify --all names it"
h_assert_contains "$out" "ok $REAL" "verify --all still checks the real one"
run snapshot verify "$FORGED" --key-file "$H_TMP/keys"
expect_fail 10 "verify forged" "$FORGED is not encrypted"
run snapshot get "$FORGED" --key-file "$H_TMP/keys" --out "$H_TMP/forged.db"
expect_fail 10 "get forged" "--allow-plaintext"
[[ ! -e "$H_TMP/forged.db" ]] || h_fail "get of the forged snapshot wrote a file"
h_etcd_reserve r1
run restore --snapshot "$FORGED" --key-file "$H_TMP/keys" --data-dir "$H_TMP/r1" --name r1 \
    --initial-cluster "$R1_INITIAL_CLUSTER" --initial-advertise-peer-urls "$R1_PEER_URL"
expect_fail 10 "restore forged" "$FORGED is not encrypted"
[[ ! -e "$H_TMP/r1" ]] || h_fail "restore of the forged snapshot left a data dir"
run drill --snapshot "$FORGED" --key-file "$H_TMP/keys"
expect_fail 10 "drill forged" "$FORGED"
run restore keys --snapshot "$FORGED" --key-file "$H_TMP/keys" --prefix /registry/secrets/ \
    --target "$LIVE_URL" --overwrite
expect_fail 10 "restore keys forged" "$FORGED"
h_assert_eq "$(h_etcdctl live get /registry/secrets/ --prefix --keys-only | grep -c .)" 0 "restore keys wrote nothing"

h_log "latest, restore keys and drill go on with the real backup"
run restore --snapshot latest --key-file "$H_TMP/keys" --data-dir "$H_TMP/r1" --name r1 \
    --initial-cluster "$R1_INITIAL_CLUSTER" --initial-advertise-peer-urls "$R1_PEER_URL"
expect_ok "restore latest"
h_assert_contains "$err" "$FORGED" "restore latest says which object it passed over"
h_etcd_start_existing r1 "$H_TMP/r1" "$R1_CLIENT_PORT" "$R1_PEER_PORT"
h_assert_eq "$(h_etcdctl r1 get /registry/secrets/ns/s1 --print-value-only)" REAL-1 "the real value restored"
h_stop r1
run restore keys --snapshot latest --key-file "$H_TMP/keys" --prefix /registry/secrets/ --target "$LIVE_URL"
expect_ok "restore keys latest"
h_assert_eq "$(h_etcdctl live get /registry/secrets/ns/s1 --print-value-only)" REAL-1 "restore keys took the real backup"
run drill --key-file "$H_TMP/keys" --json
expect_ok "drill latest"
h_assert_eq "$(jq -r .snapshot <<<"$out")" "$REAL" "drill took the real backup"
h_log "--allow-plaintext reads it, loudly"
run snapshot get "$FORGED" --key-file "$H_TMP/keys" --allow-plaintext --out "$H_TMP/forged.db"
expect_ok "get forged with --allow-plaintext"
h_assert_contains "$err" "planted" "--allow-plaintext warns"
run snapshot get "$FORGED" --allow-plaintext --out "$H_TMP/forged2.db"
expect_fail 2 "--allow-plaintext without a keyring" "--allow-plaintext needs --key-file"
run snapshot verify "$REAL"
expect_fail 10 "encrypted object without a keyring" "--key-file"

h_log "a plaintext manifest planted at the ID the next save takes fails that save, loudly"
# (before 12bfaaa the save took it for its own earlier copy: "already stored", exit 0, no backup)
rev=$(h_etcd_revision primary)
now=$(date -u +%s)
planted=()
for ((t = now - 1; t <= now + 30; t++)); do # the ID's second is the save's start
    id=$(printf '%019d-%019d-full-%s' "$rev" "$rev" "$(date -u -d "@$t" +%Y%m%dT%H%M%SZ)")
    jq --arg id "$id" --argjson r "$rev" --argjson ms $((t * 1000)) \
        '.id = $id | .revision = {start: $r, end: $r} | .created_ms = $ms' \
        "$S/manifests/$FORGED.json" >"$S/manifests/$id.json"
    planted+=("$S/manifests/$id.json")
done
data_before=$(ls "$S/data")
run snapshot save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys"
expect_fail 10 "save over a planted manifest" "planted"
h_assert_eq "$out" "" "the refused save printed no ID"
h_assert_eq "$(ls "$S/data")" "$data_before" "the refused save left no data object"
rm -f "${planted[@]}"
run snapshot save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys"
expect_ok "the next save, the planted manifests gone"
run snapshot delete "$out" --key-file "$H_TMP/keys"
expect_ok "delete it (the rest of the test counts snapshots)"
rm -f "$S/manifests/$FORGED.json"

h_log "a data object whose header names another key than its manifest"
h_run_drd 10 key rotate --keyring "$H_TMP/keys" --name k2
expect_ok "key rotate"
run snapshot save --etcd "$PRIMARY_URL" --key-file "$H_TMP/keys"
expect_ok "save under k2"
K2=$out
real_data=$(jq -r .data "$S/manifests/$REAL.json")
k2_data=$(jq -r .data "$S/manifests/$K2.json")
cp "$S/$real_data" "$H_TMP/real.data"
cp "$S/$k2_data" "$S/$real_data"
run snapshot verify "$REAL" --key-file "$H_TMP/keys"
expect_fail 11 "header key differs from the manifest" "encrypted under key 'k2' but the manifest says 'k1'"
cp "$H_TMP/real.data" "$S/$real_data"
run snapshot verify "$REAL" --key-file "$H_TMP/keys"
expect_ok "verify restored object"

h_log "outer manifest edited with a correct mac: the sealed inner manifest catches each field"
cp "$S/manifests/$REAL.json" "$H_TMP/real.manifest"
for edit in '.key_count += 1' '.hashkv += 1' '.etcd.compact_revision = 1' '.created_ms += 1' \
    '.compression = "none"' '.etcd.cluster_id = "0000000000000001"' '.etcd.version = "3.5.0"' \
    '.labels = {"a": "b"}' '.events = 0 | .leases = 3' '.key_id = "k2"' \
    '.plain.sha256 = ("0" * 64)' '.plain.bytes += 1'; do
    cp "$H_TMP/real.manifest" "$S/manifests/$REAL.json"
    edit_manifest "$REAL" "$edit"
    rm -rf "$DRD_CATALOG_DIR"
    run snapshot verify "$REAL" --key-file "$H_TMP/keys"
    ((rc != 0)) || h_fail "verify accepted an outer manifest edited with '$edit'"
    printf '%s\n' "$err" | grep -qv ' warn ' || h_fail "no error for '$edit'"
    h_log "  $edit: exit $rc: $(printf '%s\n' "$err" | grep -v ' warn ' | head -1)"
done
cp "$H_TMP/real.manifest" "$S/manifests/$REAL.json"
cp "$H_TMP/real.manifest" "$H_TMP/m.json" && remac "$H_TMP/m.json"
cmp -s "$H_TMP/m.json" "$H_TMP/real.manifest" || h_fail "the test's mac differs from drd's (docs/format.md)"
rm -rf "$DRD_CATALOG_DIR"
run snapshot verify "$REAL" --key-file "$H_TMP/keys"
expect_ok "verify the untouched manifest"

h_log "garbage and format-99 manifests next to good ones"
printf '\x00\x01garbage{' >"$S/manifests/0000000000000000001-0000000000000000001-full-20200101T000000Z.json"
jq '.format = 99' "$S/manifests/$K2.json" >"$S/manifests/9999999999999999990-9999999999999999990-full-20991231T000000Z.json"
printf '{}' >"$S/manifests/not-an-id.json"
run snapshot list --key-file "$H_TMP/keys" --json
expect_ok "list with damaged manifests"
h_assert_eq "$(jq '[.[] | select(.status == "damaged")] | length' <<<"$out")" 3 "three damaged listed"
h_assert_contains "$(jq -r '.[] | select(.status == "damaged") | .problem' <<<"$out")" "format 99" "the reason is shown"
run snapshot verify --all --key-file "$H_TMP/keys"
h_assert_eq "$rc" 11 "verify --all counts the damaged ones (stderr: $err)"
h_assert_contains "$out" "ok $K2" "verify --all still verifies the good ones"
rm -rf "$H_TMP/r2"
h_etcd_reserve r2
run restore --snapshot latest --key-file "$H_TMP/keys" --data-dir "$H_TMP/r2" --name r2 \
    --initial-cluster "$R2_INITIAL_CLUSTER" --initial-advertise-peer-urls "$R2_PEER_URL"
expect_ok "restore latest beside damaged manifests"
run drill --key-file "$H_TMP/keys"
expect_ok "drill beside damaged manifests"

h_log "a planted manifest naming a real object's data: deleting it leaves the data"
PLANT=0000000000000000002-0000000000000000002-full-20200101T000000Z
jq --arg id "$PLANT" '.id = $id | .revision = {start: 2, end: 2} | .created_ms = 1577836800000 | del(.mac)' \
    "$S/manifests/$K2.json" >"$S/manifests/$PLANT.json"
run snapshot delete "$PLANT" --key-file "$H_TMP/keys"
expect_ok "delete the planted manifest"
[[ -e "$S/$k2_data" ]] || h_fail "deleting a planted manifest deleted a real object's data"
[[ ! -e "$S/manifests/$PLANT.json" ]] || h_fail "the planted manifest is still there"
run snapshot verify "$K2" --key-file "$H_TMP/keys"
expect_ok "the real object still verifies"

h_log "planted newer manifests neither push real snapshots out nor get pruned"
for r in 900001 900002 900003; do
    id=$(printf '%019d-%019d-full-20991231T000000Z' $r $r)
    jq --arg id "$id" --argjson r $r '.id = $id | .revision = {start: $r, end: $r} | .created_ms = 4102358400000' \
        "$H_TMP/real.manifest" | sed '/"mac"/d' >"$S/manifests/$id.json"
done
run snapshot prune --keep-last 1 --key-file "$H_TMP/keys"
expect_ok "prune with planted manifests"
[[ -e "$S/manifests/$K2.json" ]] || h_fail "prune deleted the newest real snapshot"
[[ ! -e "$S/manifests/$REAL.json" ]] || h_fail "prune kept the older real snapshot (keep-last 1)"
h_assert_eq "$(ls "$S/manifests" | grep -c '^0000000000000900')" 3 "planted ones left alone"
h_assert_contains "$err" "0000000000000900003" "prune names what it passed over"

h_log "a decompression bomb stops at the manifest's size, before a byte is written"
mkdir -p "$H_TMP/bomb" "$H_TMP/bstore/manifests" "$H_TMP/bstore/data"
truncate -s 1G "$H_TMP/bomb/etcd.db" # sparse here; 1 GiB of zeros in the tar, ~32 KiB zstd
(cd "$H_TMP/bomb" && tar --format=posix -cf - etcd.db) | zstd -q -3 >"$H_TMP/bomb.zst"
rm -f "$H_TMP/bomb/etcd.db"
bdata=data/save-1577836800000-0123456789ab.drd
cp "$H_TMP/bomb.zst" "$H_TMP/bstore/$bdata"
BID=0000000000000000005-0000000000000000005-full-20200101T000000Z
jq -n --arg id "$BID" --arg d "$bdata" --argjson sb "$(stat -c %s "$H_TMP/bomb.zst")" \
    --arg ss "$(sha256sum "$H_TMP/bomb.zst" | cut -d' ' -f1)" '{format: 2, id: $id, kind: "full",
    revision: {start: 5, end: 5}, created_ms: 1577836800000, data: $d,
    etcd: {cluster_id: "1", member_id: "1", version: "3.4.23", endpoint: "x", compact_revision: 0},
    plain: {bytes: 1048576, sha256: ("0" * 64)}, stored: {bytes: $sb, sha256: $ss},
    compression: "zstd", encryption: "none", key_id: "", key_count: 0, events: 0, leases: 0}' \
    >"$H_TMP/bstore/manifests/$BID.json"
h_run_drd 60 --log-level warn snapshot get "$BID" --store "file://$H_TMP/bstore" --out "$H_TMP/bomb.out"
expect_fail 11 "decompression bomb" "manifest says 1048576"
((took < 20)) || h_fail "the bomb took ${took}s to refuse"
[[ ! -e "$H_TMP/bomb.out" ]] || h_fail "the bomb left a file"
h_pass
