#!/usr/bin/env bash
# Installs the Debian packages Bulwark builds, tests and benchmarks with. Idempotent.
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config git openssl
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libnghttp2-dev libsimdjson-dev libyaml-cpp-dev libsqlite3-dev libre2-dev
  sqlite3
  libhiredis-dev libpq-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nodejs
)
# nodejs from some repositories already bundles npm; Debian's own splits it out.
command -v npm >/dev/null 2>&1 || packages+=(npm)
if [ "${1:-}" = "--bench" ]; then packages+=(nginx-light wrk nghttp2-client); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
