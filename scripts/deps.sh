#!/usr/bin/env bash
# Install the Debian 12 packages drd needs to build, test and run its demo.
#
#   scripts/deps.sh           everything: build, tests, fuzzing, the demo
#   scripts/deps.sh --build   only what building drd needs (docs/deploy/Containerfile)
#
# Idempotent: asks dpkg which packages are missing and runs apt-get (update once, then install)
# only when something is. Safe to run on every build. Needs root (or sudo) only when installing.
# To add a dependency, add it to BUILD or PACKAGES below; nothing else lists packages to build
# or test with (the Containerfile's runtime stage lists the libraries the binary loads, and
# tests/deploy checks that list against the binary).
set -euo pipefail

BUILD=(
    # toolchain
    build-essential cmake pkg-config
    # etcd client: gRPC core + protobuf-c, protos from golang-etcd-server-dev
    libgrpc-dev libprotobuf-c-dev protobuf-c-compiler golang-etcd-server-dev
    # libraries
    libcmocka-dev libyaml-dev libssl-dev openssl libsqlite3-dev libcurl4-openssl-dev
    libxml2-dev libarchive-dev libzstd-dev librsync-dev libjansson-dev libmicrohttpd-dev
)
PACKAGES=(
    "${BUILD[@]}"
    # fuzzing (scripts/fuzz, the fuzz leg of scripts/test): clang with libFuzzer and sanitizers
    clang libclang-rt-14-dev
    # real etcd servers for tests and the demo
    etcd-server etcd-client
    # real S3 for tests: a single-node Ceph cluster with radosgw on loopback
    ceph-mon ceph-osd radosgw ceph-common
    # used by scripts/ and tests/harness: curl, jq, ps, ss
    curl jq procps iproute2
    # promtool and a Prometheus server: the alerting rules and dashboard tests (tests/deploy,
    # tests/integration/deploy_metrics.sh); systemd-analyze: the unit's test
    prometheus systemd
    # volume replication tests and bench/volume-vs-rsync: drd is compared with rsync
    rsync
    # the independent oracle of the cron schedule test (tests/unit/policies/cron_oracle.py)
    python3-croniter
)
case "${1:-}" in
    "") ;;
    --build) PACKAGES=("${BUILD[@]}") ;;
    *) echo "deps.sh: unknown argument '$1' (--build or nothing)" >&2; exit 2 ;;
esac

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

echo "deps: installing ${missing[*]}" >&2
sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
