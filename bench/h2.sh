#!/usr/bin/env bash
# HTTP/2 beside HTTP/1.1: the gateway in front of bulwark-mock, same run, same request
# (bench/wrk/chat.lua's small non-streamed chat completion), requests/s and latency.
#
#   bench/h2.sh [--duration 6s] [--workers 2] [--out FILE] [--build-dir DIR | --bulwark PATH --mock PATH]
#
#   h1 wrk        wrk -t2 -c64 (HTTP/1.1 keep-alive, 64 connections)
#   h1 h2load     h2load --h1 -c64 (the same load from the HTTP/2 tool, for a like-for-like client)
#   h2c 64x1      h2load -c64 -m1: 64 connections, one stream at a time each (prior knowledge)
#   h2c 8x8       h2load -c8 -m8: 8 connections, 8 concurrent streams each (multiplexed)
#
# wrk reports p50/p99; h2load reports mean and max per request. Needs wrk and h2load
# (Debian: wrk, nghttp2-client; scripts/install-deps.sh --bench installs both). Everything
# listens on 127.0.0.1 and is stopped on exit. Prints a markdown table (and writes --out).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=6
WORKERS=2
BUILD_DIR=""
OUT=""
while (($#)); do
  case "$1" in
    --duration) DURATION="${2%s}"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    --bulwark) BULWARK_BIN="$2"; shift 2 ;;
    --mock) BULWARK_MOCK_BIN="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$DURATION" =~ ^[0-9]+$ ]] || die "--duration takes whole seconds, e.g. 6s"

resolve_binaries "$BUILD_DIR"
ensure_tools wrk h2load
bench_init_tmp
trap bench_cleanup EXIT

start_mock h2-mock 1
start_bulwark h2-gw "$MOCK_ADDR" "$WORKERS"
URL="http://$GW_ADDR/v1/chat/completions"
BODY="$BENCH_TMP/body.json"
# The body chat.lua sends, for h2load.
sed -n "s/^wrk.body = '\(.*\)' ..$/\1/p; s/^ *'\(.*\)'$/\1/p" "$BENCH_DIR/wrk/chat.lua" | tr -d '\n' >"$BODY"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$BODY" 2>/dev/null || die "could not extract the request body from chat.lua"

# warm-up: connections in the gateway's pool to the mock
wrk -t1 -c8 -d1s -s "$BENCH_DIR/wrk/chat.lua" "$URL" >/dev/null

declare -a ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }

log "h1 wrk: -t2 -c64 ${DURATION}s"
out="$(wrk -t2 -c64 -d"${DURATION}s" --latency -s "$BENCH_DIR/wrk/chat.lua" "$URL")"
line="$(grep BENCH_RESULT <<<"$out")"
val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
errs=$(( $(val err_connect) + $(val err_read) + $(val err_write) + $(val err_status) + $(val err_timeout) ))
row "h1 wrk (64 conns)" "$(val rps)" "$(awk -v u="$(val mean_us)" 'BEGIN{printf "%.2f", u/1000}')" \
  "$(awk -v u="$(val p50_us)" 'BEGIN{printf "%.2f", u/1000}') / $(awk -v u="$(val p99_us)" 'BEGIN{printf "%.2f", u/1000}')" \
  "$(awk -v u="$(val max_us)" 'BEGIN{printf "%.2f", u/1000}')" "$errs"

# h2load: "finished in 6.00s, 12345.67 req/s", "requests: ... N succeeded, N failed, N errored",
# "time for request:  min  max  mean  sd  +/- sd" (units us/ms/s).
to_ms() { awk -v t="$1" 'BEGIN { v = t + 0; if (t ~ /us$/) v /= 1000; else if (t ~ /ms$/) v = v; else if (t ~ /s$/) v *= 1000; printf "%.2f", v }'; }
run_h2load() {  # NAME ARGS...
  local name="$1"; shift
  log "$name: h2load $* ${DURATION}s"
  local o
  o="$(h2load -D "$DURATION" --warm-up-time=1 -d "$BODY" -H 'content-type: application/json' "$@" "$URL" 2>&1)" || { echo "$o" >&2; die "h2load failed"; }
  local rps failed tfr
  rps="$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$o")"
  failed="$(sed -n 's/^requests: .* \([0-9]*\) failed, \([0-9]*\) errored.*/\1 \2/p' <<<"$o" | awk '{print $1 + $2}')"
  local non2xx
  non2xx="$(sed -n 's/^status codes: [0-9]* 2xx, \([0-9]*\) 3xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx/\1 \2 \3/p' <<<"$o" | awk '{print $1 + $2 + $3}')"
  tfr="$(grep '^time for request:' <<<"$o")"
  # shellcheck disable=SC2086
  set -- $tfr
  row "$name" "$rps" "$(to_ms "$6")" "-" "$(to_ms "$5")" "$(( ${failed:-0} + ${non2xx:-0} ))"
}
run_h2load "h1 h2load (64 conns)" --h1 -t2 -c64 -m1
run_h2load "h2c 64 conns x 1 stream" -t2 -c64 -m1
run_h2load "h2c 8 conns x 8 streams" -t2 -c8 -m8

{
  echo "## HTTP/2 beside HTTP/1.1 ($(date -u +%Y-%m-%d), gateway --workers $WORKERS, ${DURATION}s each)"
  echo
  echo "| client | requests/s | mean ms | p50 / p99 ms | max ms | errors |"
  echo "|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Gateway in front of bulwark-mock (1 worker), non-streamed 16-token chat completion."
} | tee "${OUT:-/dev/null}"
