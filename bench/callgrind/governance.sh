#!/usr/bin/env bash
# Instructions per request of one gateway worker under callgrind (deterministic, unlike
# wall-clock numbers on a shared machine): bench/run.sh's scenarios f (governance off) and
# g (key, team, limits, budget, PII profile, ledger and audit), one worker each, the bench's
# small chat request. Warms up with 100 requests, zeroes the counters, runs N sequential
# keep-alive requests, dumps. Prints Ir per request of each thread of the dump.
# Usage: bench/callgrind/governance.sh BUILD_DIR OUTDIR [N=400]
# Then: callgrind_annotate --inclusive=yes OUTDIR/callgrind.gov.PID.1-NN (the worker is
# the thread with the most instructions; another is the ledger's writer).
set -euo pipefail
BUILD="$1"; OUT="$2"; N="${3:-400}"
mkdir -p "$OUT"; rm -f "$OUT"/callgrind.*
BW="$BUILD/bin/bulwark"; MOCK="$BUILD/mock/bulwark-mock"
"$MOCK" --listen 127.0.0.1:0 --workers 1 > "$OUT/mock.out" 2>&1 &
MP=$!
trap 'kill $MP 2>/dev/null || true' EXIT
until grep -q '^listening on' "$OUT/mock.out"; do sleep 0.05; done
MPORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$OUT/mock.out")
cfg() { # name governance
  rm -rf "$OUT/$1"; mkdir -p "$OUT/$1"
  cat > "$OUT/$1/gw.yaml" <<Y
listen: 127.0.0.1:0
log:
  level: warn
  access: false
$2
timeouts: {connect: 20s, first_token: 60s, idle: 60s, total: 5m}
providers:
  up:
    kind: openai
    base_url: http://127.0.0.1:$MPORT/v1
    api_key: bench-provider-key
models:
  bench:
    targets:
      - provider: up
        model: bench
Y
}
cfg plain 'governance: {enabled: false}'
cfg gov 'governance:
  auth: keys
  default_policy: bench
  policies:
    bench:
      pii: {email: redact, phone: redact, card: block, secret: block}'
"$BW" teams create --config "$OUT/gov/gw.yaml" --id bench --name bench --rpm 1000000000 --tpm 1000000000 --budget 1000000 >/dev/null
KEY="$("$BW" keys create --config "$OUT/gov/gw.yaml" --name bench --team bench --rpm 1000000000 --tpm 1000000000 --budget 1000000 2>/dev/null | sed -n 's/.*"secret":"\(bwk_[0-9A-Za-z]*\)".*/\1/p')"
for which in plain gov; do
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$OUT/callgrind.$which.%p" \
    "$BW" serve --config "$OUT/$which/gw.yaml" --workers 1 > "$OUT/$which/out" 2> "$OUT/$which/err" &
  GP=$!
  until grep -q 'listening' "$OUT/$which/out" 2>/dev/null; do sleep 0.2; done
  PORT=$(grep -o '127.0.0.1:[0-9]*' "$OUT/$which/out" | head -1 | cut -d: -f2)
  k=""; [[ $which == gov ]] && k="$KEY"
  node "$(dirname "${BASH_SOURCE[0]}")/load.mjs" "$PORT" 100 "$k"   # warm up
  callgrind_control -z "$GP" >/dev/null
  node "$(dirname "${BASH_SOURCE[0]}")/load.mjs" "$PORT" "$N" "$k"
  callgrind_control -d "$which" "$GP" >/dev/null
  kill -TERM "$GP"; wait "$GP" || true
done
# Per thread totals of the dump taken after the measured load.
for f in "$OUT"/callgrind.*.1-*; do
  t=$(grep -m1 '^summary:' "$f" | awk '{print $2}')
  echo "$(basename "$f") $t Ir, $((t / N)) per request"
done
