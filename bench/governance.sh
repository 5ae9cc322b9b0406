#!/usr/bin/env bash
# What governance adds to a request's latency, measured A/B in one run.
#
#   bench/governance.sh [--rounds 8] [--duration 3s] [--workers 1] [--build-dir DIR] [--out FILE] [--aa]
#                       [--no-pin] [--no-restart] [--access-log]
#
# Starts bulwark-mock and two gateways in front of it, the same but for governance:
#   f  plain     governance off
#   g  governed  virtual key with a team, rate limits and a budget, the PII policy profile,
#                spend ledger and audit trail (bench/run.sh's scenario g)
# then runs wrk at one connection (bench/wrk/chat.lua) against each in turn, --rounds
# times, swapping the order every round so that drift on a shared machine (other jobs,
# frequency changes) falls on both alike. Each round gives a difference g - f of wrk's p50
# and mean, and of the gateway's own overhead histogram (request time minus upstream
# time); the result is the median of the per-round differences, with its spread.
# Prints a Markdown report and writes it to --out (default bench/results/governance-latest.md).
# With two CPUs or more, the gateways' workers are pinned to CPU 0 and everything else (wrk,
# the mock, the gateways' other threads such as the ledger's writer) to CPU 1, so that both
# gateways see the same placement: on two shared CPUs, which thread the scheduler puts
# beside the worker moves a one-connection p50 by tens of µs (an unpinned A/A run differs by
# up to ±30 µs). --no-pin leaves placement to the scheduler.
# --aa starts g with governance off too (an A/A run): what it reports is the difference
# between two identical gateway processes, i.e. how far this machine lets the A/B be trusted.
# Both gateways are restarted before every round (and warmed up again): a process keeps
# its memory layout, and with it a bias of several µs at p50 that two identical processes
# showed round after round (A/A medians of -9.5 µs with one pair of processes for the whole
# run). New processes each round turn that bias into noise the median can average out.
# --no-restart keeps one pair of processes for the whole run.
# --access-log turns on both gateways' access log and reads each request's own time from it
# (the line's us - upstream_us): a further row, the p50 of the gateway's overhead, which is
# the issue's p50 without wrk's and the kernel's client-side noise. Each line is written
# after the request's clock stops, so it is not in what it measures; it costs both
# gateways the same few µs between requests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=8
ACCESS_LOG=0
DURATION=3
WORKERS=1
BUILD_DIR=""
OUT="$BENCH_DIR/results/governance-latest.md"
AA=0
PIN=1
RESTART=1
while (($#)); do
  case "$1" in
    --aa) AA=1; shift ;;
    --no-pin) PIN=0; shift ;;
    --no-restart) RESTART=0; shift ;;
    --access-log) ACCESS_LOG=1; export BENCH_LOG_LEVEL=info BENCH_ACCESS_LOG=true; shift ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="${2%s}"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a positive whole number"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "--duration takes whole seconds, e.g. 3s"

resolve_binaries "$BUILD_DIR"
ensure_tools wrk curl
bench_init_tmp
trap bench_cleanup EXIT
LUA="$BENCH_DIR/wrk/chat.lua"

start_mock up-mock 1
start_bulwark plain "$MOCK_ADDR" "$WORKERS"; F_ADDR="$GW_ADDR"; F_PID="$GW_PID"
if ((AA)); then
  start_bulwark governed "$MOCK_ADDR" "$WORKERS"
  G_ADDR="$GW_ADDR"; G_PID="$GW_PID"; KEY=unused
else
start_bulwark governed "$MOCK_ADDR" "$WORKERS" 'governance:
  auth: keys
  default_policy: bench
  policies:
    bench:
      pii: {email: redact, phone: redact, card: block, secret: block}'
G_ADDR="$GW_ADDR"; G_PID="$GW_PID"
"$BULWARK_BIN" teams create --config "$BENCH_TMP/governed.yaml" --id bench --name bench --rpm 1000000000 \
  --tpm 1000000000 --budget 1000000 >/dev/null || die "could not create the bench team"
KEY="$("$BULWARK_BIN" keys create --config "$BENCH_TMP/governed.yaml" --name bench --team bench --rpm 1000000000 \
  --tpm 1000000000 --budget 1000000 2>/dev/null | sed -n 's/.*"secret":"\(bwk_[0-9A-Za-z]*\)".*/\1/p')"
[[ -n "$KEY" ]] || die "could not create the bench key"
sleep 1.5  # the gateway picks up keys made by other processes within governance.key_refresh
fi

((PIN)) && { (($(nproc) >= 2)) && command -v taskset >/dev/null || PIN=0; }
# pin_gateway PID: its workers on CPU 0, its other threads on CPU 1
pin_gateway() {
  local t
  for t in /proc/"$1"/task/*; do
    case "$(cat "$t/comm")" in
      bw-worker-*) taskset -p -c 0 "${t##*/}" >/dev/null ;;
      *) taskset -p -c 1 "${t##*/}" >/dev/null ;;
    esac
  done
}
WRK=(wrk)
if ((PIN)); then
  taskset -a -p -c 1 "$MOCK_PID" >/dev/null
  pin_gateway "$F_PID"
  pin_gateway "$G_PID"
  WRK=(taskset -c 1 wrk)
fi

# restart_gateway NAME PID -> a new process on the same config (and, for g, the same
# database, so the key stays valid); sets GW_PID and GW_ADDR, pinned like the first.
restart_gateway() {
  local name="$1" pid="$2" out="$BENCH_TMP/$1.out"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  "$BULWARK_BIN" serve --config "$BENCH_TMP/$name.yaml" --workers "$WORKERS" >"$out" 2>>"$BENCH_TMP/$name.err" &
  GW_PID=$!
  BENCH_PIDS+=("$GW_PID")
  GW_ADDR="$(wait_listening "$out" "$GW_PID")"
  if ((PIN)); then
    # the worker threads are named as they start: wait for them before pinning
    for _ in $(seq 1 100); do grep -qs '^bw-worker' /proc/"$GW_PID"/task/*/comm && break; sleep 0.02; done
    pin_gateway "$GW_PID"
  fi
}

# overhead_stats ADDR -> "SUM_SECONDS COUNT" of the gateway's overhead histogram
overhead_stats() {
  curl -fsS "http://$1/metrics" | awk '
    /^bulwark_gateway_overhead_seconds_sum/ { s += $NF } /^bulwark_gateway_overhead_seconds_count/ { n += $NF }
    END { printf "%.9f %d\n", s, n }'
}
# thread_cpu PID -> "WORKERS_NS LEDGER_NS WORKERS_SYS_TICKS": CPU time on the workers and on
# the ledger's writer, from /proc's schedstat (nanoseconds, unlike the 10 ms ticks of stat),
# and the workers' time in the kernel (stat's stime, in ticks: the split needs no finer grain)
thread_cpu() {
  local w=0 l=0 k=0 t comm ns st
  for t in /proc/"$1"/task/*; do
    comm="$(cat "$t/comm" 2>/dev/null)" || continue
    ns="$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null)" || continue
    case "$comm" in
      bw-worker-*) w=$((w + ns)); st="$(sed 's/.*) //' "$t/stat" | cut -d' ' -f13)"; k=$((k + st)) ;;
      bw-ledger) l=$((l + ns)) ;;
    esac
  done
  echo "$w $l $k"
}
# log_size NAME -> bytes in the gateway's stderr so far
log_size() { stat -c %s "$BENCH_TMP/$1.err" 2>/dev/null || echo 0; }
# overhead_p50 NAME FROM -> the median of the gateway's own time (us - upstream_us) over the
# access-log lines from byte FROM on, -1 without them. The fields are whole µs: the median
# is interpolated within its 1 µs class (the grouped median), so that differences of a
# fraction of a µs between two gateways still show.
overhead_p50() {
  tail -c +"$(($2 + 1))" "$BENCH_TMP/$1.err" | awk '
    /"event":"request"/ && /"status":200,/ && /"upstream_us":/ {
      us = $0; sub(/.*"us":/, "", us); sub(/[,}].*/, "", us)
      up = $0; sub(/.*"upstream_us":/, "", up); sub(/[,}].*/, "", up)
      c[us - up]++; n++ }
    END {
      if (n == 0) { print -1; exit }
      m = 0; for (v in c) if (m == 0 || v + 0 < lo) { lo = v + 0; m = 1 }
      below = 0
      for (v = lo; ; v++) if (below + c[v] >= n / 2) break; else below += c[v]
      printf "%.2f\n", v - 0.5 + (n / 2 - below) / c[v] }'
}
# measure NAME ADDR PID [HEADER] -> "p50_us mean_us overhead_mean_us requests worker_ns_per_req ledger_ns_per_req
#   worker_sys_ns_per_req overhead_p50_us" (the last -1 without --access-log)
measure() {
  local name="$1" addr="$2" pid="$3" hdr=() before after line cpu0 cpu1 from
  [[ -n "${4:-}" ]] && hdr=(-H "$4")
  from="$(log_size "$name")"
  cpu0="$(thread_cpu "$pid")"
  before="$(overhead_stats "$addr")"
  line="$("${WRK[@]}" -t1 -c1 -d"${DURATION}s" --timeout 5s --latency "${hdr[@]}" -s "$LUA" "http://$addr/v1/chat/completions" |
          grep '^BENCH_RESULT')" || die "wrk failed against $addr"
  after="$(overhead_stats "$addr")"
  cpu1="$(thread_cpu "$pid")"
  local p50_inproc=-1
  [[ -n "${BENCH_ACCESS_LOG:-}" ]] && p50_inproc="$(overhead_p50 "$name" "$from")"
  declare -A kv=()
  for f in $line; do [[ "$f" == *=* ]] && kv[${f%%=*}]="${f#*=}"; done
  local errs=$((kv[err_connect] + kv[err_read] + kv[err_write] + kv[err_status] + kv[err_timeout]))
  ((errs == 0)) || die "wrk saw $errs errors against $addr"
  awk -v b="$before" -v a="$after" -v p="${kv[p50_us]}" -v m="${kv[mean_us]}" -v r="${kv[requests]}" \
      -v c0="$cpu0" -v c1="$cpu1" -v tck="$(getconf CLK_TCK)" -v q="$p50_inproc" 'BEGIN {
    split(b, x, " "); split(a, y, " "); n = y[2] - x[2]; split(c0, u, " "); split(c1, v, " ")
    printf "%d %.1f %.1f %d %.0f %.0f %.0f %s\n", p, m, (n > 0 ? (y[1] - x[1]) / n * 1e6 : -1), r,
           (v[1] - u[1]) / r, (v[2] - u[2]) / r, (v[3] - u[3]) * 1e9 / tck / r, q }'
}

# warm-up: connections, caches, the ledger's first batches
warm_up() {
  local DURATION=1
  measure plain "$F_ADDR" "$F_PID" >/dev/null
  measure governed "$G_ADDR" "$G_PID" "authorization: Bearer $KEY" >/dev/null
}
warm_up

ROWS=()
for r in $(seq 1 "$ROUNDS"); do
  if ((RESTART && r > 1)); then
    restart_gateway plain "$F_PID"; F_ADDR="$GW_ADDR"; F_PID="$GW_PID"
    restart_gateway governed "$G_PID"; G_ADDR="$GW_ADDR"; G_PID="$GW_PID"
    warm_up
  fi
  if ((r % 2)); then
    f="$(measure plain "$F_ADDR" "$F_PID")"; g="$(measure governed "$G_ADDR" "$G_PID" "authorization: Bearer $KEY")"
  else
    g="$(measure governed "$G_ADDR" "$G_PID" "authorization: Bearer $KEY")"; f="$(measure plain "$F_ADDR" "$F_PID")"
  fi
  ROWS+=("$f $g")
  log "round $r: plain p50 $(cut -d' ' -f1 <<<"$f") us, governed p50 $(cut -d' ' -f1 <<<"$g") us"
done

# median of column expressions over the rows: stats EXPR -> "median min max"
stats() {
  printf '%s\n' "${ROWS[@]}" | awk "{ print $1 }" | sort -g | awk '
    { v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                         printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}
# columns: 1 f.p50 2 f.mean 3 f.overhead 4 f.requests 5 f.worker_ns 6 f.ledger_ns 7 f.worker_sys_ns 8 f.overhead_p50
#          9 g.p50 10 g.mean 11 g.overhead 12 g.requests 13 g.worker_ns 14 g.ledger_ns 15 g.worker_sys_ns 16 g.overhead_p50
read -r p50_m p50_lo p50_hi < <(stats '$9 - $1')
read -r mean_m mean_lo mean_hi < <(stats '$10 - $2')
read -r ovh_m ovh_lo ovh_hi < <(stats '$11 - $3')
read -r wrk_m wrk_lo wrk_hi < <(stats '($13 - $5) / 1000')
read -r sys_m sys_lo sys_hi < <(stats '($15 - $7) / 1000')
read -r led_m led_lo led_hi < <(stats '$14 / 1000')
read -r inp_m inp_lo inp_hi < <(stats '$16 - $8')
read -r fp50 _ _ < <(stats '$1')
read -r gp50 _ _ < <(stats '$9')
read -r fw _ _ < <(stats '$5 / 1000')
read -r gw _ _ < <(stats '$13 / 1000')
read -r fi _ _ < <(stats '$8')
read -r gi _ _ < <(stats '$16')
verdict() { awk -v v="$1" 'BEGIN { print (v <= 5 ? "PASS" : "MISS") }'; }

mkdir -p "$(dirname "$OUT")"
{
  if ((AA)); then
    echo "## Governance A/A check: g is a second plain gateway ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  else
    echo "## Governance A/B ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  fi
  echo
  echo "bench/governance.sh --rounds $ROUNDS --duration ${DURATION}s --workers $WORKERS: wrk -t1 -c1 against bulwark with"
  echo "governance off (f) and on (g: key, team, limits, budget, PII profile, ledger, audit) in front of one"
  echo "bulwark-mock, alternating, the order swapped every round$( ((RESTART)) && echo ", both gateways restarted before each round")$( ((PIN)) && echo "; workers pinned to CPU 0, wrk, mock and other threads to CPU 1"). Machine: $(nproc) CPUs"
  echo "($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), load average at the end $(cut -d' ' -f1-3 /proc/loadavg);"
  echo "gateway $("$BULWARK_BIN" --version 2>/dev/null)."
  echo
  echo "| round | f p50 µs | g p50 µs | f mean µs | g mean µs | f overhead µs | g overhead µs | f worker CPU µs/req | g worker CPU µs/req | g ledger writer CPU µs/req | f overhead p50 µs | g overhead p50 µs |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  i=0
  for row in "${ROWS[@]}"; do
    i=$((i + 1))
    read -r a b c _ d _ _ fi2 e f2 g2 _ h k _ gi2 <<<"$row"
    ((ACCESS_LOG)) || { fi2=-; gi2=-; }
    echo "| $i | $a | $e | $b | $f2 | $c | $g2 | $(awk -v x="$d" 'BEGIN { printf "%.2f", x / 1000 }') | $(awk -v x="$h" 'BEGIN { printf "%.2f", x / 1000 }') | $(awk -v x="$k" 'BEGIN { printf "%.2f", x / 1000 }') | $fi2 | $gi2 |"
  done
  echo
  echo "| governance adds (median of the rounds' g - f, [min, max]) | µs |"
  echo "|---|---:|"
  echo "| wrk p50 | **$p50_m** [$p50_lo, $p50_hi] |"
  echo "| wrk mean | $mean_m [$mean_lo, $mean_hi] |"
  echo "| gateway overhead histogram mean | $ovh_m [$ovh_lo, $ovh_hi] |"
  ((ACCESS_LOG)) && echo "| gateway overhead p50, per request from the access log | **$inp_m** [$inp_lo, $inp_hi] |"
  echo "| CPU of the worker threads per request | $wrk_m [$wrk_lo, $wrk_hi] |"
  echo "| of which in the kernel (stat's stime, 10 ms ticks) | $sys_m [$sys_lo, $sys_hi] |"
  echo "| CPU of the ledger's writer thread per request (off the request's path) | $led_m [$led_lo, $led_hi] |"
  echo
  echo "Median p50: plain $fp50 µs, governed $gp50 µs. Worker CPU per request: plain $fw µs, governed $gw µs."
  ((ACCESS_LOG)) && echo "Median overhead p50 (access log): plain $fi µs, governed $gi µs."
  if ((AA)); then
    echo "A/A: both gateways are plain; the differences above are what two identical processes show here."
  else
    echo "Target: governance adds <= 5 µs at p50: $(verdict "$p50_m") by wrk's p50$( ((ACCESS_LOG)) && echo ", $(verdict "$inp_m") by the gateway's own p50")."
  fi
} | tee "$OUT"
