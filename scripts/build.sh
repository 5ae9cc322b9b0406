#!/usr/bin/env bash
# Configures and builds into build/ (or $1). Extra arguments go to CMake, e.g.
#   scripts/build.sh build-asan -DBULWARK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
shift || true
case "$dir" in /*) ;; *) dir="$root/$dir" ;; esac
cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
