#!/usr/bin/env bash
# Bulwark benchmark: the one command.
#
#   bench/run.sh [--duration 6s] [--repeat 2] [--workers 2] [--quick] [--no-stream]
#                [--no-formats] [--format-mock-workers 1] [--build-dir DIR | --bulwark PATH --mock PATH]
#
# In one run, with wrk and bench/wrk/chat.lua (a small non-streamed chat request), at
# 1 connection (-t1 -c1) and at 64 (-t2 -c64):
#   a  nginx canned        nginx (1 worker) answering a canned chat completion: the upstream alone
#   b  mock direct         bulwark-mock (1 worker), the default healthy 16-token answer
#   c  nginx proxy -> a    nginx as a plain keep-alive reverse proxy (--workers workers) in front of a
#   d  bulwark -> a        bulwark (--workers workers) in front of a
#   e  nginx proxy -> b    the same nginx proxy in front of the mock
#   f  bulwark -> b        bulwark in front of the mock (governance off: a plain resilient proxy)
#   g  governed -> b       f with governance on: virtual key, team, rate limits, budget, PII policy,
#                          spend ledger and audit trail (compared with f in the same run)
# and across formats (unless --no-formats), against a second bulwark-mock (--format-mock-workers
# workers, 1 by default) that verifies SigV4 on its Bedrock routes:
#   h  nginx proxy -> m    nginx relaying the request already in Anthropic Messages form (the bytes
#                          bulwark sends upstream in i) to the mock's /v1/messages
#   i  bulwark -> m        the OpenAI request through bulwark to an `anthropic` provider (translated
#                          both ways)
#   j  nginx proxy -> m    nginx relaying the Converse request (the bytes bulwark sends in k, SigV4-
#                          signed by bench/wrk/sigv4.mjs) to the mock's /model/bench/converse
#   k  bulwark -> m        the OpenAI request through bulwark to a `bedrock` provider (translated,
#                          signed; the mock verifies every signature)
# then bench/stream.sh (64 concurrent streams of 500 tokens; CPU time per relayed token).
# Each configuration runs --repeat times back to back; the run with the most requests/s is kept.
# Writes bench/results/latest.md and prints it. Everything listens on 127.0.0.1, free ports,
# and everything started is stopped on exit. Defaults take about 5 minutes (3 without the
# cross-format scenarios); --quick (2 s runs, one repeat) is a smoke check of about a minute.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=6
REPEAT=2
WORKERS=2
STREAM=1
FORMATS=1
FMT_MOCK_WORKERS=1
QUICK=0
BUILD_DIR=""
OUT="$BENCH_DIR/results/latest.md"
while (($#)); do
  case "$1" in
    --duration) DURATION="${2%s}"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --quick) QUICK=1; DURATION=2; REPEAT=1; shift ;;
    --no-stream) STREAM=0; shift ;;
    --no-formats) FORMATS=0; shift ;;
    --format-mock-workers) FMT_MOCK_WORKERS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    --bulwark) BULWARK_BIN="$2"; shift 2 ;;
    --mock) BULWARK_MOCK_BIN="$2"; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$DURATION" =~ ^[0-9]+$ ]] || die "--duration takes whole seconds, e.g. 6s"

resolve_binaries "$BUILD_DIR"
export BULWARK_BIN BULWARK_MOCK_BIN
ensure_tools nginx wrk node curl
bench_init_tmp
trap bench_cleanup EXIT
LUA="$BENCH_DIR/wrk/chat.lua"
MACHINE_MD="$(machine_info_md)"

# --- start everything ---------------------------------------------------------------
start_nginx_canned up-nginx;            A_ADDR="$NGX_ADDR"
start_mock up-mock 1;                   B_ADDR="$MOCK_ADDR"; B_PID="$MOCK_PID"
start_nginx_proxy px-nginx "$A_ADDR" "$WORKERS"; C_ADDR="$NGX_ADDR"; C_PID="$NGX_PID"
start_bulwark gw-nginx "$A_ADDR" "$WORKERS";     D_ADDR="$GW_ADDR";  D_PID="$GW_PID"
start_nginx_proxy px-mock "$B_ADDR" "$WORKERS";  E_ADDR="$NGX_ADDR"; E_PID="$NGX_PID"
start_bulwark gw-mock "$B_ADDR" "$WORKERS";      F_ADDR="$GW_ADDR";  F_PID="$GW_PID"
# g: the same as f with governance on: a virtual key (team, rate limits, budget), a policy
# profile with PII detectors, spend ledger and audit trail.
GOV_YAML='governance:
  auth: keys
  default_policy: bench
  policies:
    bench:
      pii: {email: redact, phone: redact, card: block, secret: block}'
start_bulwark gw-gov "$B_ADDR" "$WORKERS" "$GOV_YAML"; G_ADDR="$GW_ADDR"; G_PID="$GW_PID"
"$BULWARK_BIN" teams create --config "$BENCH_TMP/gw-gov.yaml" --id bench --name bench --rpm 1000000000 --tpm 1000000000 \
  --budget 1000000 >/dev/null || die "could not create the bench team"
GOV_KEY="$("$BULWARK_BIN" keys create --config "$BENCH_TMP/gw-gov.yaml" --name bench --team bench --rpm 1000000000 \
  --tpm 1000000000 --budget 1000000 2>/dev/null | sed -n 's/.*"secret":"\(bwk_[0-9A-Za-z]*\)".*/\1/p')"
[[ -n "$GOV_KEY" ]] || die "could not create the bench key"
sleep 1.5  # the gateway picks up keys made by other processes within governance.key_refresh
declare -A ADDR=([a]="$A_ADDR" [b]="$B_ADDR" [c]="$C_ADDR" [d]="$D_ADDR" [e]="$E_ADDR" [f]="$F_ADDR" [g]="$G_ADDR")
declare -A PROXY_PID=([c]="$C_PID" [d]="$D_PID" [e]="$E_PID" [f]="$F_PID" [g]="$G_PID")
declare -A HDR=([g]="authorization: Bearer $GOV_KEY")
declare -A NAME=([a]="nginx canned (upstream alone)" [b]="bulwark-mock direct (upstream alone)"
                 [c]="nginx proxy -> nginx canned" [d]="bulwark -> nginx canned"
                 [e]="nginx proxy -> bulwark-mock" [f]="bulwark -> bulwark-mock"
                 [g]="bulwark governed -> bulwark-mock")
# Per scenario, when not the OpenAI request to /v1/chat/completions: the path, the body
# (BENCH_BODY_FILE for chat.lua) and a file of extra header lines.
declare -A URL_PATH=() BODY_FILE=() HDR_FILE=()
SCENARIOS="a b c d e f g"
log "nginx canned $A_ADDR, mock $B_ADDR, nginx proxies $C_ADDR/$E_ADDR, bulwark $D_ADDR/$F_ADDR ($WORKERS workers)"

# Sanity: every path answers the request with a 200 chat completion.
for s in $SCENARIOS; do
  code="$(curl -s -o "$BENCH_TMP/check.$s" -w '%{http_code}' -H 'content-type: application/json' -H "${HDR[$s]:-x-none: 1}" \
          --data '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' "http://${ADDR[$s]}/v1/chat/completions")"
  [[ "$code" == 200 ]] && grep -q '"chat.completion"' "$BENCH_TMP/check.$s" || die "scenario $s answered $code: $(head -c 300 "$BENCH_TMP/check.$s")"
done

# --- across formats -------------------------------------------------------------------
AWS_KEY_ID=AKIDBULWARKBENCH
AWS_SECRET=bulwark-bench-secret-access-key
# sign_converse: (re)writes j's header file; a signature is good for the mock's 5-minute skew.
sign_converse() {
  node "$BENCH_DIR/wrk/sigv4.mjs" up /model/bench/converse "${BODY_FILE[j]}" "$AWS_KEY_ID" "$AWS_SECRET" us-east-1 \
    >"$BENCH_TMP/headers.j" || die "could not sign the Converse request"
}
# check_native SCENARIO PATTERN: the native request answers 200 with PATTERN in the body.
check_native() {
  local s="$1" hargs=() line code
  [[ -n "${HDR_FILE[$s]:-}" ]] && while IFS= read -r line; do hargs+=(-H "$line"); done <"${HDR_FILE[$s]}"
  code="$(curl -s -o "$BENCH_TMP/check.$s" -w '%{http_code}' -H 'content-type: application/json' "${hargs[@]}" \
          --data-binary "@${BODY_FILE[$s]}" "http://${ADDR[$s]}${URL_PATH[$s]}")"
  [[ "$code" == 200 ]] && grep -q "$2" "$BENCH_TMP/check.$s" || die "scenario $s answered $code: $(head -c 300 "$BENCH_TMP/check.$s")"
}
# upstream_body FORMAT FILE: the body of the mock's last request in FORMAT (what bulwark sent).
upstream_body() {
  curl -fsS "http://$M_ADDR/_mock/last-request/$1" | node -e \
    'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.parse(s).body))' >"$2" ||
    die "could not read the mock's last $1 request"
}
if ((FORMATS)); then
  # chat.lua's request, byte for byte
  printf '%s' '{"model":"bench","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16,"temperature":0}' \
    >"$BENCH_TMP/chat_body.json"
  start_mock up-fmt "$FMT_MOCK_WORKERS" --aws-access-key-id "$AWS_KEY_ID" --aws-secret-access-key "$AWS_SECRET" \
    --aws-region us-east-1;                M_ADDR="$MOCK_ADDR"
  start_nginx_proxy px-fmt "$M_ADDR" "$WORKERS"; H_ADDR="$NGX_ADDR"; H_PID="$NGX_PID"
  start_bulwark gw-anthropic "$M_ADDR" "$WORKERS" "" "    kind: anthropic
    base_url: http://$M_ADDR
    api_key: bench-provider-key";            I_ADDR="$GW_ADDR"; I_PID="$GW_PID"
  start_bulwark gw-bedrock "$M_ADDR" "$WORKERS" "" "    kind: bedrock
    region: us-east-1
    base_url: http://$M_ADDR
    aws_access_key_id: $AWS_KEY_ID
    aws_secret_access_key: $AWS_SECRET";     K_ADDR="$GW_ADDR"; K_PID="$GW_PID"
  ADDR+=([h]="$H_ADDR" [i]="$I_ADDR" [j]="$H_ADDR" [k]="$K_ADDR")
  PROXY_PID+=([h]="$H_PID" [i]="$I_PID" [j]="$H_PID" [k]="$K_PID")
  NAME+=([h]="nginx proxy -> mock (Anthropic Messages, native request)" [i]="bulwark -> mock (Anthropic Messages, translated)"
         [j]="nginx proxy -> mock (Bedrock Converse, native signed request)" [k]="bulwark -> mock (Bedrock Converse, translated + signed)")
  log "format mock $M_ADDR ($FMT_MOCK_WORKERS workers), nginx proxy $H_ADDR, bulwark -> Anthropic $I_ADDR, -> Bedrock $K_ADDR"
  # The bulwark scenarios first: the mock keeps what bulwark sent, which nginx then relays as is.
  for s in i k; do
    code="$(curl -s -o "$BENCH_TMP/check.$s" -w '%{http_code}' -H 'content-type: application/json' \
            --data-binary "@$BENCH_TMP/chat_body.json" "http://${ADDR[$s]}/v1/chat/completions")"
    [[ "$code" == 200 ]] && grep -q '"chat.completion"' "$BENCH_TMP/check.$s" || die "scenario $s answered $code: $(head -c 300 "$BENCH_TMP/check.$s")"
    [[ "$s" == i ]] && upstream_body anthropic "$BENCH_TMP/body.h"
    [[ "$s" == k ]] && upstream_body bedrock "$BENCH_TMP/body.j"
  done
  URL_PATH+=([h]=/v1/messages [j]=/model/bench/converse)
  BODY_FILE+=([h]="$BENCH_TMP/body.h" [j]="$BENCH_TMP/body.j")
  printf 'anthropic-version: 2023-06-01\n' >"$BENCH_TMP/headers.h"
  HDR_FILE+=([h]="$BENCH_TMP/headers.h" [j]="$BENCH_TMP/headers.j")
  sign_converse
  check_native h '"type":"message"'
  check_native j '"output"'
  SCENARIOS="$SCENARIOS h i j k"
fi

# Idle RSS: after start-up and one request each, before any load.
IDLE_D="$(rss_kb "$D_PID")"; IDLE_F="$(rss_kb "$F_PID")"

# --- the matrix ---------------------------------------------------------------------
declare -A RPS P50 P99 ERR CPU_US PEAK OVH
# overhead_stats ADDR -> "SUM_SECONDS COUNT" of bulwark's gateway-overhead histogram
# (total request time minus upstream time, as the gateway measures it itself)
overhead_stats() {
  curl -fsS "http://$1/metrics" 2>/dev/null | awk '
    /^bulwark_gateway_overhead_seconds_sum/ { s += $NF } /^bulwark_gateway_overhead_seconds_count/ { n += $NF }
    END { printf "%.9f %d\n", s, n }'
}
# run_wrk SCENARIO CONNS THREADS -> fills the arrays with the best of REPEAT runs
run_wrk() {
  local s="$1" c="$2" t="$3" key="$1_$2" r line rps best_rps=-1 pid="" before after peak_file fam=()
  [[ -n "${PROXY_PID[$s]:-}" ]] && pid="${PROXY_PID[$s]}" && mapfile -t fam < <(proc_family "$pid")
  for r in $(seq 1 "$REPEAT"); do
    peak_file="$BENCH_TMP/peak.$key.$r"
    echo 0 >"$peak_file"
    if [[ -n "$pid" ]]; then sample_rss_start "$pid" "$peak_file"; before="$(cpu_ticks "${fam[@]}")"; fi
    local ovh_before="" ovh_after=""
    [[ "$s" == d || "$s" == f || "$s" == g ]] && ovh_before="$(overhead_stats "${ADDR[$s]}")"
    line="$(BENCH_BODY_FILE="${BODY_FILE[$s]:-}" wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout 5s --latency "${HARGS[@]}" -s "$LUA" \
            "http://${ADDR[$s]}${URL_PATH[$s]:-/v1/chat/completions}" \
            | tee "$BENCH_TMP/wrk.$key.$r.txt" | grep '^BENCH_RESULT')" || die "wrk failed for $key: $(cat "$BENCH_TMP/wrk.$key.$r.txt")"
    if [[ -n "$pid" ]]; then after="$(cpu_ticks "${fam[@]}")"; sample_rss_stop; fi
    [[ -n "$ovh_before" ]] && ovh_after="$(overhead_stats "${ADDR[$s]}")"
    declare -A kv=()
    for f in $line; do [[ "$f" == *=* ]] && kv[${f%%=*}]="${f#*=}"; done
    local errs=$((kv[err_connect] + kv[err_read] + kv[err_write] + kv[err_status] + kv[err_timeout]))
    log "$(printf '%-40s c=%-3s run %d: %9.0f req/s  p50 %6d us  p99 %6d us  errors %d' "${NAME[$s]}" "$c" "$r" "${kv[rps]}" "${kv[p50_us]}" "${kv[p99_us]}" "$errs")"
    # the better run is the one with more requests/s; peak RSS is the max over all runs
    if awk -v a="${kv[rps]}" -v b="$best_rps" 'BEGIN { exit !(a > b) }'; then
      best_rps="${kv[rps]}"
      RPS[$key]="${kv[rps]}"; P50[$key]="${kv[p50_us]}"; P99[$key]="${kv[p99_us]}"; ERR[$key]="$errs"
      if [[ -n "$ovh_before" ]]; then
        OVH[$key]="$(awk -v b="$ovh_before" -v a="$ovh_after" 'BEGIN { split(b, x, " "); split(a, y, " ");
          n = y[2] - x[2]; if (n > 0) printf "%.0f", (y[1] - x[1]) / n * 1e6; else print "n/a" }')"
      fi
      if [[ -n "$pid" ]]; then CPU_US[$key]="$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="${kv[requests]}" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"; fi
    fi
    if [[ -n "$pid" ]]; then
      peak="$(cat "$peak_file")"
      if ((peak > ${PEAK[$key]:-0})); then PEAK[$key]="$peak"; fi
    fi
  done
}

for s in $SCENARIOS; do
  [[ "$s" == j ]] && sign_converse  # fresh for this scenario's runs
  HARGS=(-H "${HDR[$s]:-x-none: 1}")
  if [[ -n "${HDR_FILE[$s]:-}" ]]; then while IFS= read -r hl; do HARGS+=(-H "$hl"); done <"${HDR_FILE[$s]}"; fi
  # warm up: open connections and upstream pools, touch the allocator
  BENCH_BODY_FILE="${BODY_FILE[$s]:-}" wrk -t2 -c64 -d1s "${HARGS[@]}" -s "$LUA" "http://${ADDR[$s]}${URL_PATH[$s]:-/v1/chat/completions}" >/dev/null 2>&1 || true
  run_wrk "$s" 1 1
  run_wrk "$s" 64 2
done
IDLE_AFTER_D="$(rss_kb "$D_PID")"; IDLE_AFTER_F="$(rss_kb "$F_PID")"

# --- streaming ----------------------------------------------------------------------
STREAM_MD=""
if ((STREAM)); then
  log "streaming benchmark"
  "$BENCH_DIR/stream.sh" --duration "$DURATION" --workers "$WORKERS" --out "$BENCH_TMP/stream.md" >&2
  STREAM_MD="$(cat "$BENCH_TMP/stream.md")"
fi

# --- report -------------------------------------------------------------------------
ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v lim="$2" -v dir="$3" 'BEGIN { if (v == "n/a") print "n/a"; else if ((dir == "ge" && v >= lim) || (dir == "le" && v <= lim)) print "PASS"; else print "MISS" }'; }

{
  echo "# Bulwark benchmark results"
  echo
  echo "$MACHINE_MD"
  echo "- Command: \`bench/run.sh $([[ $QUICK == 1 ]] && echo --quick || echo "--duration ${DURATION}s --repeat $REPEAT") --workers $WORKERS\`"
  echo "- wrk: bench/wrk/chat.lua, ${DURATION}s per run, best of $REPEAT back-to-back runs (by requests/s); c1 = \`-t1 -c1\`, c64 = \`-t2 -c64\`"
  echo "- Proxies (nginx and bulwark) get $WORKERS workers each; upstreams (nginx canned, bulwark-mock) 1 worker."
  echo "- Nothing is pinned: the load generator, the proxy and the upstream all share the machine's $(nproc) cores."
  echo
  echo "| Scenario | Conns | Requests/s | p50 (ms) | p99 (ms) | Errors | Proxy CPU µs/req | Proxy peak RSS |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for s in $SCENARIOS; do
    for c in 1 64; do
      k="${s}_$c"
      cpu="${CPU_US[$k]:--}"; peak="-"
      [[ -n "${PEAK[$k]:-}" ]] && peak="$(mb "${PEAK[$k]}") MB"
      printf '| %s) %s | %s | %.0f | %s | %s | %s | %s | %s |\n' "$s" "${NAME[$s]}" "$c" "${RPS[$k]}" "$(ms "${P50[$k]}")" "$(ms "${P99[$k]}")" "${ERR[$k]}" "$cpu" "$peak"
    done
  done
  echo
  echo "Proxy CPU µs/req: utime+stime of the proxy (nginx: master + workers) over the kept run / requests."
  echo
  echo "### Bulwark against nginx, same run"
  echo
  echo "| Upstream | Throughput c64: bulwark / nginx proxy | Added p50 at c1: nginx proxy | Added p50 at c1: bulwark | Added-latency ratio bulwark / nginx |"
  echo "|---|---:|---:|---:|---:|"
  for pair in "a c d nginx canned" "b e f bulwark-mock"; do
    read -r up px gw label <<<"$pair"
    tr="$(ratio "${RPS[${gw}_64]}" "${RPS[${px}_64]}")"
    add_px=$((P50[${px}_1] - P50[${up}_1])); add_gw=$((P50[${gw}_1] - P50[${up}_1]))
    lr="$(ratio "$add_gw" "$add_px")"
    ((add_px <= 0)) && lr="n/a"
    echo "| $label | $tr | $(ms "$add_px") ms | $(ms "$add_gw") ms | $lr |"
    declare "TR_$up=$tr" "LR_$up=$lr"
  done
  echo
  if ((FORMATS)); then
    echo "### Across formats, same run (an OpenAI request translated by bulwark against nginx relaying it in the upstream's format)"
    echo
    echo "| Upstream format | nginx proxy req/s c64 | bulwark req/s c64 | Throughput bulwark / nginx | p50 c1 nginx | p50 c1 bulwark | CPU µs/req c64 nginx / bulwark |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for pair in "h i Anthropic Messages" "j k Bedrock Converse (SigV4)"; do
      read -r px gw label <<<"$pair"
      fr="$(ratio "${RPS[${gw}_64]}" "${RPS[${px}_64]}")"
      printf '| %s | %.0f | %.0f | %s | %s ms | %s ms | %s / %s |\n' "$label" "${RPS[${px}_64]}" "${RPS[${gw}_64]}" "$fr" \
        "$(ms "${P50[${px}_1]}")" "$(ms "${P50[${gw}_1]}")" "${CPU_US[${px}_64]:--}" "${CPU_US[${gw}_64]:--}"
      declare "FR_$px=$fr"
    done
    echo
    echo "The format mock has $FMT_MOCK_WORKERS worker(s) and verifies the SigV4 signature of every Bedrock request in both j and k."
    echo
  fi
  echo "### Governance cost, same run (g against f)"
  echo
  gov_p50=$((P50[g_1] - P50[f_1]))
  gov_ovh="$(awk -v g="${OVH[g_1]:-n/a}" -v f="${OVH[f_1]:-n/a}" 'BEGIN { if (g == "n/a" || f == "n/a") print "n/a"; else printf "%.0f", g - f }')"
  rejected="$(curl -fsS "http://$G_ADDR/metrics" | awk '/^bulwark_ledger_rejected_total/ { print $NF }')"
  recorded="$(curl -fsS "http://$G_ADDR/metrics" | awk '/^bulwark_ledger_recorded_total/ { print $NF }')"
  echo "| Measure | Value |"
  echo "|---|---:|"
  echo "| Added p50 at c1 (wrk, µs resolution) | ${gov_p50} µs |"
  echo "| Added mean gateway overhead at c1 (bulwark's own histogram) | ${gov_ovh} µs |"
  echo "| Throughput c64: governed / plain | $(ratio "${RPS[g_64]}" "${RPS[f_64]}") |"
  echo "| Ledger records accepted / refused during the run | ${recorded} / ${rejected} |"
  echo
  echo "### Targets"
  echo
  echo "| Target | Measured | Result |"
  echo "|---|---:|---|"
  echo "| Throughput at 64 connections >= 0.8x nginx proxy (-> nginx canned) | ${TR_a}x | $(verdict "$TR_a" 0.8 ge) |"
  echo "| Throughput at 64 connections >= 0.8x nginx proxy (-> bulwark-mock) | ${TR_b}x | $(verdict "$TR_b" 0.8 ge) |"
  echo "| Added p50 latency at 1 connection <= 1.25x nginx's (-> nginx canned) | ${LR_a}x | $(verdict "$LR_a" 1.25 le) |"
  echo "| Added p50 latency at 1 connection <= 1.25x nginx's (-> bulwark-mock) | ${LR_b}x | $(verdict "$LR_b" 1.25 le) |"
  peak_d="${PEAK[d_64]:-0}"; peak_f="${PEAK[f_64]:-0}"
  if ((FORMATS)); then
    echo "| Throughput at 64 connections >= 0.8x nginx proxy (OpenAI request -> Anthropic Messages upstream) | ${FR_h}x | $(verdict "$FR_h" 0.8 ge) |"
    echo "| Throughput at 64 connections >= 0.8x nginx proxy (OpenAI request -> Bedrock Converse upstream) | ${FR_j}x | $(verdict "$FR_j" 0.8 ge) |"
  fi
  echo "| Governance adds <= 5 µs per request (c1, bulwark's own overhead histogram; wrk's p50 difference is ${gov_p50} µs) | ${gov_ovh} µs | $(verdict "$gov_ovh" 5 le) |"
  echo "| The ledger keeps up: no record refused at full throughput | ${rejected} refused | $(verdict "$rejected" 0 le) |"
  echo "| Bulwark RSS idle < 30 MB | $(mb "$IDLE_D") / $(mb "$IDLE_F") MB | $(verdict "$(mb "$((IDLE_D > IDLE_F ? IDLE_D : IDLE_F))")" 29.999 le) |"
  echo "| Bulwark RSS at 64 connections < 80 MB | $(mb "$peak_d") / $(mb "$peak_f") MB | $(verdict "$(mb "$((peak_d > peak_f ? peak_d : peak_f))")" 79.999 le) |"
  echo
  echo "Bulwark RSS: idle after start-up (before load) $(mb "$IDLE_D") MB (-> nginx canned) / $(mb "$IDLE_F") MB (-> mock);"
  echo "peak during the c64 runs (sampled every 200 ms) $(mb "$peak_d") / $(mb "$peak_f") MB; idle again after all runs $(mb "$IDLE_AFTER_D") / $(mb "$IDLE_AFTER_F") MB."
  echo
  echo "Bulwark's own view (its \`bulwark_gateway_overhead_seconds\` histogram: request time minus upstream time,"
  echo "mean over the kept run, in µs): -> nginx canned c1 ${OVH[d_1]:-n/a}, c64 ${OVH[d_64]:-n/a}; -> mock c1 ${OVH[f_1]:-n/a}, c64 ${OVH[f_64]:-n/a}."
  echo "At c64 this includes time queued in the gateway's event loops, not only work done."
  echo
  if [[ -n "$STREAM_MD" ]]; then echo "$STREAM_MD"; echo; fi
} >"$BENCH_TMP/latest.md"

mkdir -p "$(dirname "$OUT")"
cp "$BENCH_TMP/latest.md" "$OUT"
cat "$OUT"
log "written to $OUT"
