#!/usr/bin/env bash
# One command for the whole test suite: installs packages, builds twice (optimised, and
# with AddressSanitizer + UndefinedBehaviorSanitizer), and runs the unit tests (CTest) and
# the end-to-end tests (node:test, official SDKs as callers) against both builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh"
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)

passed=0
failed=0
run_suite() {  # name, build dir
  local name=$1 dir=$2 log
  log=$(mktemp)
  echo "== unit tests ($name)"
  if ctest --test-dir "$dir" --output-on-failure -j2 2>&1 | tee "$log"; then :; fi
  local line
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -1 || true)
  if [ -z "$line" ]; then failed=$((failed + 1)); else
    local total fail
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    fail=$(sed -E 's/.*tests passed, ([0-9]+) tests failed.*/\1/' <<<"$line")
    passed=$((passed + total - fail)); failed=$((failed + fail))
  fi
  echo "== end-to-end tests ($name)"
  # Gateways' data folders go to a scratch folder removed after the suite, even if a test
  # file's process dies before its own clean-up (CI machines have little disk to spare).
  local scratch
  scratch=$(mktemp -d)
  if (cd tests/e2e && TMPDIR="$scratch" BULWARK_BUILD_DIR="$dir" node --test --test-concurrency=1 --test-reporter=tap) 2>&1 | tee "$log" | grep -E "^(not ok|# (tests|pass|fail))"; then :; fi
  local p f
  p=$(grep -E "^# pass [0-9]+" "$log" | tail -1 | awk '{print $3}')
  f=$(grep -E "^# fail [0-9]+" "$log" | tail -1 | awk '{print $3}')
  if [ -z "$p" ]; then failed=$((failed + 1)); else passed=$((passed + p)); failed=$((failed + f)); fi
  if [ "${f:-1}" != "0" ]; then grep -B2 -A25 "^not ok\|^    not ok" "$log" | head -150 || true; fi
  rm -rf "$log" "$scratch"
}

"$root/scripts/build.sh" build
run_suite optimised "$root/build"

# Sanitizers: halt on the first report so a memory error fails the suite.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$root/scripts/build.sh" build-asan -DCMAKE_BUILD_TYPE=Debug -DBULWARK_SANITIZE=ON -DBULWARK_BENCH=OFF
run_suite "asan+ubsan" "$root/build-asan"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
