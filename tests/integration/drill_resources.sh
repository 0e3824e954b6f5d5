#!/usr/bin/env bash
# Keys per Kubernetes resource: a snapshot records them in its (authenticated) manifest, a drill
# counts the restored etcd and reports both side by side, and fails when a count differs from the
# recorded one. Real etcd holding /registry/pods/..., /registry/secrets/..., a group's resource
# (/registry/apiregistration.k8s.io/apiservices/...) and keys that name no resource.
source "${HARNESS:-$(dirname "$0")/../harness}/etcd.sh"

h_tmpdir
export DRD_CATALOG_DIR=$H_TMP/catalog
h_etcd_start primary "$H_TMP/primary"
put() { h_etcdctl primary put "$1" "${2:-v}" >/dev/null; }
for i in $(seq 1 12); do put "/registry/pods/ns$((i % 3))/p$i"; done
# secrets as the API server stores them encrypted: two under an aescbc key, one under a KMS v2 key
put /registry/secrets/ns1/s1 "k8s:enc:aescbc:v1:key1:ciphertext1"
put /registry/secrets/ns1/s2 "k8s:enc:aescbc:v1:key1:ciphertext2"
put /registry/secrets/ns1/s3 "k8s:enc:kms:v2:vault:ciphertext3"
put /registry/apiregistration.k8s.io/apiservices/v1.apps
put /registry/apiregistration.k8s.io/apiservices/v1.batch
put /registry/configmaps/kube-system/c1
put /registry/health            # no resource segment
put /other/key                  # outside /registry/
put /registry/UPPER/x           # not a resource name
h_etcdctl primary del /registry/pods/ns1/p1 >/dev/null # 11 pods at the snapshot
h_drd key generate --out "$H_TMP/keys" >/dev/null
mkdir -p "$H_TMP/store"
STORE=file://$H_TMP/store
K=(--store "$STORE" --key-file "$H_TMP/keys")

h_log "snapshot save records the counts in the manifest"
h_run_drd 60 snapshot save --etcd "$PRIMARY_URL" "${K[@]}"
h_assert_eq "$rc" 0 "snapshot save (stderr: $err)"
ID=$out
h_run_drd 30 snapshot show "${K[@]}" "$ID"
h_assert_eq "$rc" 0 "snapshot show (stderr: $err)"
h_assert_eq "$(jq -c '.key_counts' <<<"$out")" \
    '{"resources":{"apiregistration.k8s.io/apiservices":2,"configmaps":1,"pods":11,"secrets":3},"other":3}' \
    "key_counts in the manifest"
h_assert_eq "$(jq .key_count <<<"$out")" 20 "key_count is their sum"
grep -q '"key_counts": {"resources": {' "$H_TMP/store/manifests/$ID.json" || h_fail "not in the stored manifest"
h_run_drd 60 snapshot verify "${K[@]}" "$ID"
h_assert_eq "$rc" 0 "verify: the sealed manifest holds the same counts (stderr: $err)"

h_log "an edited count in the outer manifest fails its mac"
cp "$H_TMP/store/manifests/$ID.json" "$H_TMP/manifest.saved"
sed -i 's/"pods": 11/"pods": 12/; s/"other": 3/"other": 2/' "$H_TMP/store/manifests/$ID.json"
h_run_drd 60 drill "${K[@]}" --snapshot "$ID"
h_assert_eq "$rc" 10 "drill of an edited manifest: DR_EAUTH (stderr: $err)"
h_assert_contains "$err" "fails authentication" "names the mac"
cp "$H_TMP/manifest.saved" "$H_TMP/store/manifests/$ID.json"

h_log "drill: restored and recorded side by side, checked"
h_run_drd 120 drill "${K[@]}"
h_assert_eq "$rc" 0 "drill (stdout: $out, stderr: $err)"
h_assert_contains "$out" "restored: 11 pods, 3 secrets, 2 apiregistration.k8s.io/apiservices, 1 configmaps, 3 other" "summary line"
grep -Eq '^  pods +11 +11$' <<<"$out" || h_fail "no side-by-side row for pods: $out"
grep -Eq '^  \(other keys\) +3 +3$' <<<"$out" || h_fail "no row for the other keys: $out"
h_assert_contains "$out" $'\nencryption keys: aescbc:key1 (2), kms:vault (1); 20 values read\n' "the encryption keys the restored data needs"
h_run_drd 120 drill "${K[@]}" --json
h_assert_eq "$rc" 0 "drill --json (stderr: $err)"
h_assert_eq "$(jq -r '.checks[] | select(.name == "key_counts") | .ok' <<<"$out")" true "key_counts check"
h_assert_eq "$(jq '.keys.restored.resources.pods' <<<"$out")" 11 "restored pods"
h_assert_eq "$(jq '.keys.snapshot.resources.secrets' <<<"$out")" 3 "recorded secrets"
h_assert_eq "$(jq -c '.encryption_keys' <<<"$out")" '{"values":20,"keys":{"aescbc:key1":2,"kms:vault":1},"other":0}' "encryption keys in the json report"

h_log "a drill through segments reports the restored counts and the snapshot's"
rev0=$(h_etcd_revision primary)
h_bg follow h_drd snapshot follow --etcd "$PRIMARY_URL" "${K[@]}" --segment-period 1s
for i in 13 14 15; do put "/registry/pods/ns0/p$i"; done
h_etcdctl primary del /registry/secrets/ns1/s1 >/dev/null
rev=$(h_etcd_revision primary)
((rev == rev0 + 4)) || h_fail "unexpected revisions $rev0 -> $rev"
segs_reach() { h_drd snapshot list "${K[@]}" --json 2>/dev/null | jq -e --argjson r "$1" '[.[] | select(.kind == "incr" and .revision.end >= $r)] | length > 0' >/dev/null; }
h_wait_until 60 "segments up to revision $rev" segs_reach "$rev"
h_stop follow
h_run_drd 120 drill "${K[@]}" --revision "$rev" --json
h_assert_eq "$rc" 0 "drill at revision $rev (stderr: $err)"
h_assert_eq "$(jq '.keys.revision' <<<"$out")" "$rev" "counted at the point"
h_assert_eq "$(jq '[.keys.restored.resources.pods, .keys.restored.resources.secrets]' -c <<<"$out")" "[14,2]" "restored at the point"
h_assert_eq "$(jq '[.keys.snapshot.resources.pods, .keys.snapshot.resources.secrets]' -c <<<"$out")" "[11,3]" "the snapshot's"
h_assert_eq "$(jq '[.checks[] | select(.name == "key_counts")] | length' <<<"$out")" 0 "no count check past the snapshot"
h_assert_eq "$(jq -c '.encryption_keys.keys' <<<"$out")" '{"aescbc:key1":1,"kms:vault":1}' "encryption keys counted at the point (s1 deleted)"

h_log "a recorded count the data does not match fails the drill"
# an unencrypted object made consistently wrong: outer and sealed manifest both claim 12 pods and
# 2 other keys (as a writer with a bug would), everything else intact
P=$H_TMP/plain
mkdir -p "$P"
h_run_drd 60 snapshot save --etcd "$PRIMARY_URL" --store "file://$P" --no-encryption --compression none
h_assert_eq "$rc" 0 "plaintext save (stderr: $err)"
PID_=$out
python3 - "$P" "$PID_" <<'PY' || h_fail "cannot rewrite the object"
import hashlib, io, json, sys, tarfile
store, oid = sys.argv[1], sys.argv[2]
mpath = f"{store}/manifests/{oid}.json"
outer = open(mpath).read()
data = json.loads(outer)["data"]
def edit(t):
    n = json.loads(t)["key_counts"]["resources"]["pods"]
    return t.replace(f'"pods": {n}', f'"pods": {n + 1}').replace('"other": 3', '"other": 2')
src = tarfile.open(f"{store}/{data}")
buf = io.BytesIO()
dst = tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT)
for m in src.getmembers():
    body = src.extractfile(m).read()
    if m.name == "manifest.json":
        body = edit(body.decode()).encode()
        m.size = len(body)
    dst.addfile(m, io.BytesIO(body))
dst.close()
obj = buf.getvalue()
open(f"{store}/{data}", "wb").write(obj)
st = json.loads(outer)["stored"]
old = f'"stored": {{"bytes": {st["bytes"]}, "sha256": "{st["sha256"]}"}}'
new = f'"stored": {{"bytes": {len(obj)}, "sha256": "{hashlib.sha256(obj).hexdigest()}"}}'
assert old in outer
text = edit(outer).replace(old, new)
open(mpath, "w").write(text)
PY
h_run_drd 120 drill --store "file://$P" --snapshot "$PID_" --json
h_assert_eq "$rc" 11 "drill: DR_ECHECKSUM (stderr: $err)"
h_assert_eq "$(jq -r '.checks[] | select(.name == "key_counts") | .detail' <<<"$out")" \
    "pods: restored 14, snapshot 15" "names the resource"
h_assert_contains "$err" "key_counts check failed" "the failure"
h_pass
