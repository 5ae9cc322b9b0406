#!/usr/bin/env bash
# Streaming benchmark: many concurrent SSE streams of 500 tokens each, from bulwark-mock
# (no delays), relayed by bulwark; for reference the same through nginx as a plain reverse
# proxy (proxy_buffering off). Reports streams, tokens/s, and the relay's CPU time per token
# (utime+stime from /proc/PID/stat before and after, divided by the tokens relayed).
#
#   bench/stream.sh [--duration 8] [--concurrency 64] [--tokens 500] [--workers 2]
#                   [--build-dir DIR] [--bulwark PATH] [--mock PATH] [--out FILE] [--quick]
#
# Everything listens on 127.0.0.1 with free ports and is stopped on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=8
CONCURRENCY=64
TOKENS=500
WORKERS=2
OUT=""
BUILD_DIR=""
while (($#)); do
  case "$1" in
    --duration) DURATION="${2%s}"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    --bulwark) BULWARK_BIN="$2"; shift 2 ;;
    --mock) BULWARK_MOCK_BIN="$2"; shift 2 ;;
    --quick) DURATION=2; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

resolve_binaries "$BUILD_DIR"
ensure_tools nginx node curl
bench_init_tmp
trap bench_cleanup EXIT

start_mock stream-mock 1
curl -fsS -X PUT "http://$MOCK_ADDR/_mock/behaviors/long500" -H 'content-type: application/json' \
  -d "{\"tokens\":$TOKENS}" >/dev/null || die "could not configure the mock"
start_bulwark stream-gw "$MOCK_ADDR" "$WORKERS"
start_nginx_proxy stream-nginx "$MOCK_ADDR" "$WORKERS" off
log "stream: mock $MOCK_ADDR, bulwark $GW_ADDR, nginx $NGX_ADDR; $CONCURRENCY streams x $TOKENS tokens for ${DURATION}s each"

CLIENT="$BENCH_DIR/stream/client.mjs"
# run_stream LABEL ADDR MODEL PROXY_PID -> one markdown row
run_stream() {
  local label="$1" addr="$2" model="$3" ppid="$4" fam before after mbefore mafter json peak_file peak
  local url="http://$addr/v1/chat/completions"
  # warm up: connections, pools, allocator
  node "$CLIENT" --url "$url" --model "$model" --concurrency "$CONCURRENCY" --duration 0.5 --expect-tokens "$TOKENS" >/dev/null
  mapfile -t fam < <(proc_family "$ppid")
  peak_file="$BENCH_TMP/$label.rss"
  echo 0 >"$peak_file"
  sample_rss_start "$ppid" "$peak_file"
  before="$(cpu_ticks "${fam[@]}")"
  mbefore="$(cpu_ticks "$MOCK_PID")"
  json="$(node "$CLIENT" --url "$url" --model "$model" --concurrency "$CONCURRENCY" --duration "$DURATION" --expect-tokens "$TOKENS")"
  after="$(cpu_ticks "${fam[@]}")"
  mafter="$(cpu_ticks "$MOCK_PID")"
  sample_rss_stop
  peak="$(cat "$peak_file")"
  log "$label: $json"
  node -e '
    const r = JSON.parse(process.argv[1]);
    const [label, ticks, mticks, hz, peakKb, isGw] = process.argv.slice(2);
    const cpuUs = Number(ticks) / Number(hz) * 1e6, mockUs = Number(mticks) / Number(hz) * 1e6;
    const per = r.tokens ? (cpuUs / r.tokens).toFixed(2) : "n/a";
    const mper = r.tokens ? (mockUs / r.tokens).toFixed(2) : "n/a";
    const fails = r.streams_failed ? ` (${JSON.stringify(r.failures)})` : "";
    const rss = isGw === "1" ? (Number(peakKb) / 1024).toFixed(1) + " MB" : "-";
    console.log(`| ${label} | ${r.streams_ok} | ${r.streams_failed}${fails} | ${r.tokens} | ${r.tokens_per_s} | ${(cpuUs / 1e6).toFixed(2)} s | **${per}** | ${mper} | ${rss} |`);
  ' "$json" "$label" "$((after - before))" "$((mafter - mbefore))" "$CLK_TCK" "$peak" "$([[ $label == bulwark* ]] && echo 1 || echo 0)"
}

{
  echo "### Streaming: $CONCURRENCY concurrent streams of $TOKENS tokens, ${DURATION}s"
  echo
  echo "Upstream: bulwark-mock (1 worker, no delays). Proxies get $WORKERS workers; nginx with \`proxy_buffering off\`."
  echo "CPU is utime+stime of the relay process (nginx: master + workers) over the timed run; resolution 1/$CLK_TCK s."
  echo
  echo "| Relay | Streams OK | Failed | Tokens relayed | Tokens/s | Relay CPU | Relay CPU µs/token | Mock CPU µs/token | Relay peak RSS |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  run_stream "bulwark -> mock" "$GW_ADDR" bench-long "$GW_PID"
  run_stream "nginx proxy -> mock" "$NGX_ADDR" long500 "$NGX_PID"
} >"$BENCH_TMP/stream.md"

if [[ -n "$OUT" ]]; then cp "$BENCH_TMP/stream.md" "$OUT"; else cat "$BENCH_TMP/stream.md"; fi
