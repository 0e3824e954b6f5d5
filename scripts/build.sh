#!/usr/bin/env bash
# Build drd: installs missing packages (scripts/deps.sh), configures and compiles.
#
#   scripts/build.sh              -> build/       RelWithDebInfo
#   scripts/build.sh --sanitize   -> build-asan/  Debug, AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/build.sh --release    -> build-rel/   Release (-O3: its warnings differ from -O0's)
#
# The binary ends up at <builddir>/drd/app/drd. Re-running only rebuilds what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

builddir=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
for arg in "$@"; do
    case "$arg" in
        --sanitize) builddir=build-asan; cmake_args=(-DCMAKE_BUILD_TYPE=Debug -DDRD_SANITIZE=ON) ;;
        --release) builddir=build-rel; cmake_args=(-DCMAKE_BUILD_TYPE=Release) ;;
        -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

bash scripts/deps.sh
cmake -S . -B "$builddir" "${cmake_args[@]}"
cmake --build "$builddir" -j"${BUILD_JOBS:-2}"
