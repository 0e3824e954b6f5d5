#!/usr/bin/env bash
# The deployment files of docs/deploy/ without a cluster: deploy_test.sh PART, one ctest test
# (deploy.PART) each.
#   alerts        promtool check rules and check config; promtool test rules (alerts.test.yaml);
#                 the dashboard's structure and the metric names in rules and dashboard against
#                 drd's source (check_monitoring.py static; the running daemon is
#                 tests/integration/deploy_metrics.sh)
#   manifests     kubernetes/*.yaml parsed and cross-checked, each pod's file system laid out as
#                 the kubelet makes it, its init container run, and its drd.yaml through
#                 `drd run --check` as the pod's uid (check_manifests.py)
#   systemd       systemd-analyze verify of systemd/drd.service (ExecStart pointed at $DRD in a
#                 copy), silent; systemd-analyze security: exposure at most 2.0
#   containerfile the runtime stage of Containerfile installs the package of every library $DRD
#                 needs (readelf NEEDED, dpkg -S), etcd, etcdctl, tzdata and CA roots; it runs as
#                 the uid the Kubernetes manifests use
# $DRD: the drd binary (ctest sets it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/deploy
DEPLOY=$ROOT/docs/deploy
fail() { echo "FAIL: deploy.$PART: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || fail "$1 is missing: bash scripts/deps.sh installs it"; }
PART=${1:?usage: deploy_test.sh alerts|manifests|systemd|containerfile}

case "$PART" in
alerts)
    need promtool
    promtool check rules "$DEPLOY/prometheus/drd-alerts.yaml"
    promtool check config "$DEPLOY/prometheus/prometheus.yml"
    (cd "$HERE" && promtool test rules alerts.test.yaml)
    python3 "$HERE/check_monitoring.py" static "$DEPLOY/prometheus/drd-alerts.yaml" \
        "$DEPLOY/prometheus/drd-dashboard.json"
    ;;
manifests)
    [[ -x "${DRD:-}" ]] || fail "set DRD to the drd binary"
    need setpriv
    python3 "$HERE/check_manifests.py" "$DRD" "$DEPLOY/kubernetes" "$DEPLOY/prometheus/prometheus.yml"
    ;;
systemd)
    [[ -x "${DRD:-}" ]] || fail "set DRD to the drd binary"
    need systemd-analyze
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    sed "s#/usr/local/bin/drd#$DRD#g" "$DEPLOY/systemd/drd.service" >"$tmp/drd.service"
    grep -q "ExecStartPre=$DRD run --config /etc/drd/drd.yaml --check" "$tmp/drd.service" ||
        fail "the unit must check the config before it starts (ExecStartPre ... --check)"
    # verify exits 0 on unknown keys and bad values (it only warns): any output is a failure
    out=$(systemd-analyze verify "$tmp/drd.service" 2>&1) || fail "systemd-analyze verify: $out"
    [[ -z "$out" ]] || fail "systemd-analyze verify: $out"
    out=$(systemd-analyze security --offline=true --threshold=20 "$tmp/drd.service" 2>&1) ||
        fail "systemd-analyze security: exposure above 2.0: $(tail -n 1 <<<"$out")"
    tail -n 1 <<<"$out"
    ;;
containerfile)
    [[ -x "${DRD:-}" ]] || fail "set DRD to the drd binary"
    cf=$DEPLOY/Containerfile
    # the runtime stage: from the last FROM on; its apt-get install list
    runtime=$(awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$cf")
    pkgs=$(printf '%b' "$runtime" | sed -n '/apt-get install/,/&&/p' | tr ' \\' '\n\n' |
        grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm)$' | sort -u)
    [[ -n "$pkgs" ]] || fail "no apt-get install in the runtime stage"
    # and what they pull in (Depends, recursively, as installed here): a sanitizer or debug
    # build links some of those directly (libre2 through libgrpc29)
    closure=$(python3 - $pkgs <<'PY'
import re, subprocess, sys
todo, seen = list(sys.argv[1:]), set()
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    r = subprocess.run(['dpkg-query', '-W', '-f=${Depends},${Pre-Depends}', p], capture_output=True, text=True)
    todo += [re.split(r'[\s:(]', alt.strip())[0] for dep in r.stdout.split(',') for alt in dep.split('|') if alt.strip()]
print('\n'.join(sorted(seen)))
PY
)
    for lib in $(readelf -d "$DRD" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && !p { print $NF; p = 1 }')
        [[ -n "$path" ]] || fail "$lib: not found by ldconfig"
        pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path") || fail "$lib: no package"
        pkg=${pkg%%:*}
        case "$pkg" in
            libc6 | libgcc-s1 | libasan* | libubsan* | libatomic1 | libstdc++*) continue ;;  # base image, sanitizer build
        esac
        grep -qx "$pkg" <<<"$closure" || fail "$DRD needs $lib from $pkg, which the Containerfile does not install"
        echo "$lib: $pkg"
    done
    for pkg in etcd-server etcd-client tzdata ca-certificates; do
        grep -qx "$pkg" <<<"$pkgs" || fail "the runtime stage must install $pkg"
    done
    grep -q '^FROM debian:12' "$cf" || fail "not a Debian 12 base"
    uid=$(sed -n 's/^USER \([0-9]*\):.*/\1/p' "$cf")
    grep -q "runAsUser: $uid\$" "$DEPLOY/kubernetes/site-a.yaml" ||
        fail "the image's USER $uid is not the manifests' runAsUser"
    grep -q 'scripts/deps.sh --build' "$cf" || fail "the build stage must install with scripts/deps.sh --build"
    ;;
*) fail "unknown part '$PART'" ;;
esac
echo "PASS: deploy.$PART"
