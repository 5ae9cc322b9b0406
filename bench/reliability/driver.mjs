// The reliability report's driver (run by bench/reliability.sh): starts bulwark-mock and
// bulwark (with the breaker-transition webhook pointed at a receiver in this process),
// runs fixed-rate load through scripted fault scenarios and prints Markdown on stdout.
// Progress goes to stderr. Everything listens on 127.0.0.1 and is stopped at the end.
//
// Env: BULWARK_BIN, BULWARK_MOCK_BIN (set by the script), RELIABILITY_QUICK=1 (shorter runs).
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import * as h from '../../tests/e2e/harness.mjs';

const QUICK = process.env.RELIABILITY_QUICK === '1';
const scale = (s) => (QUICK ? Math.max(2, Math.round(s / 3)) : s);
const MASTER_KEY = 'reliability-master-key-0123456789abcdef';
const log = (...a) => process.stderr.write(`[reliability] ${a.join(' ')}\n`);

// --- the webhook receiver: every breaker transition, with its arrival time ------------
const events = [];
const receiver = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    try {
      events.push({ ...JSON.parse(body), received_ms: Date.now() });
    } catch { /* not ours */ }
    res.writeHead(204).end();
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));

// --- the gateway's configuration: one model per scenario ------------------------------
const MODELS = `
  outage:
    targets: [{provider: m1, model: outage-model}]
  outage-nobreaker:
    targets: [{provider: m1, model: outage-nb-model}]
  pair:
    targets: [{provider: m1, model: pair-bad-model}, {provider: m2, model: pair-good-model}]
  flap:
    targets: [{provider: m1, model: flap-model}, {provider: m2, model: flap-good-model}]
  slow-solo:
    targets: [{provider: m1, model: slow-model}]
  slow-pair:
    targets:
      - {provider: m1, model: slow-model, timeouts: {first_token: 500ms}}
      - {provider: m2, model: slow-good-model}
  ra:
    targets: [{provider: m1, model: ra-model}]
  ra-long:
    targets: [{provider: m1, model: ra-long-model}]
    fallbacks: [ra-backup]
  ra-backup:
    targets: [{provider: m2, model: ra-backup-model}]
${['down', 'half', 'flap', 'out'].map((p) => `  trio-${p}:
    targets: [{provider: m1, model: trio-${p}-a}, {provider: m2, model: trio-${p}-b}, {provider: m3, model: trio-${p}-c}]
`).join('')}  brown:
    targets: [{provider: m1, model: brown-a}, {provider: m2, model: brown-b}, {provider: m3, model: brown-c}]
    timeouts: {first_token: 10s}
    resilience:
      breaker: {slow_call_duration: 1s, slow_call_rate: 0.5}
  brown-hedged:
    targets: [{provider: m1, model: brownh-a}, {provider: m2, model: brownh-b}, {provider: m3, model: brownh-c}]
    timeouts: {first_token: 10s}
    resilience:
      breaker: {slow_call_duration: 1s, slow_call_rate: 0.5}
      hedge: {delay: 1s, budget_ratio: 0.1, budget_min_per_second: 2}
`;

const mock = await h.startMock();
const cfg = `listen: 127.0.0.1:0
log:
  level: warn
  access: false
governance:
  auth: keyless
admin:
  master_key: ${MASTER_KEY}
events:
  instance: reliability
  webhook: {url: "http://127.0.0.1:${receiver.address().port}/hook", timeout: 1s, retries: 2, backoff: 100ms}
timeouts: {connect: 1s, first_token: 5s, idle: 5s, total: 15s}
providers:
  m1: {kind: openai, base_url: "http://127.0.0.1:${mock.port}/v1", api_key: "\${TEST_PROVIDER_KEY}"}
  m2: {kind: openai, base_url: "http://127.0.0.1:${mock.port}/v1", api_key: "\${TEST_PROVIDER_KEY}"}
  m3: {kind: openai, base_url: "http://127.0.0.1:${mock.port}/v1", api_key: "\${TEST_PROVIDER_KEY}"}
models:${MODELS}`;
const gw = await h.startGateway(h.writeConfig(cfg), { workers: 2 });
const base = `http://127.0.0.1:${gw.port}`;
log(`mock :${mock.port}, bulwark :${gw.port} (2 workers), webhook receiver :${receiver.address().port}`);

// --- load -----------------------------------------------------------------------------
const chat = (body) =>
  fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function one(model) {
  const t0 = performance.now();
  const at = Date.now();
  try {
    const r = await chat({ model, messages: [{ role: 'user', content: 'hello there' }] });
    const text = await r.text();
    return {
      at, ms: performance.now() - t0, status: r.status, ok: r.status === 200 && text.includes('"finish_reason":"stop"'),
      attempts: Number(r.headers.get('x-bulwark-attempts') ?? 0), target: r.headers.get('x-bulwark-target'),
    };
  } catch (e) {
    return { at, ms: performance.now() - t0, status: 0, ok: false, attempts: 0, target: null, error: String(e) };
  }
}

// A streamed request: time to the first content token, and whether the stream ended as
// a complete answer (finish_reason stop, then [DONE]). The prompt is 100 words, so a
// cancelled or failed attempt costs the upstream a realistic number of input tokens.
const PROMPT = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ');
async function oneStream(model) {
  const t0 = performance.now();
  const at = Date.now();
  try {
    const r = await chat({ model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: PROMPT }] });
    let text = '';
    let ttft = NaN;
    const decoder = new TextDecoder();
    for await (const piece of r.body) {
      text += decoder.decode(piece, { stream: true });
      if (Number.isNaN(ttft) && text.includes('"content":"w1')) ttft = performance.now() - t0;
    }
    const usage = /"usage":\{"prompt_tokens":(\d+),"completion_tokens":(\d+)/.exec(text);
    return {
      at, ms: performance.now() - t0, ttft, status: r.status,
      ok: r.status === 200 && text.includes('"finish_reason":"stop"') && text.trimEnd().endsWith('data: [DONE]'),
      attempts: Number(r.headers.get('x-bulwark-attempts') ?? 0), target: r.headers.get('x-bulwark-target'),
      log: r.headers.get('x-bulwark-attempt-log') ?? '',
      prompt: usage ? Number(usage[1]) : 0, completion: usage ? Number(usage[2]) : 0,
    };
  } catch (e) {
    return { at, ms: performance.now() - t0, ttft: NaN, status: 0, ok: false, attempts: 0, target: null, log: '', prompt: 0, completion: 0, error: String(e) };
  }
}

// Open loop at a fixed rate: request i starts at start + i/rps whatever the answers do.
async function load(model, rps, seconds, send = one) {
  const n = Math.round(rps * seconds);
  const start = performance.now();
  const pending = [];
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / rps - performance.now();
    if (wait > 0) await h.sleep(wait);
    pending.push(send(model));
  }
  return Promise.all(pending);
}

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const percent = (a, b) => (b ? `${((100 * a) / b).toFixed(2)}%` : 'n/a');
const records = async (model) => (await h.mockStats(mock.port)).models[model]?.requests ?? [];
const admin = (target, action) =>
  fetch(`${base}/admin/targets/${encodeURIComponent(target)}/${action}`, { method: 'POST', headers: { authorization: `Bearer ${MASTER_KEY}` } });
const transitions = (target) => events.filter((e) => e.type === 'breaker.transition' && e.target === target);
const summary = (rs) => {
  const ok = rs.filter((r) => r.ok);
  return {
    n: rs.length, ok: ok.length, p50: pct(ok.map((r) => r.ms), 50), p99: pct(ok.map((r) => r.ms), 99),
    p99all: pct(rs.map((r) => r.ms), 99), max: Math.max(...rs.map((r) => r.ms)),
  };
};

const out = [];
const verdicts = [];
const md = (s = '') => out.push(s);
const verdict = (what, target, measured, pass) => verdicts.push(`| ${what} | ${target} | ${measured} | ${pass ? 'yes' : '**no**'} |`);

// --- (a) total outage of the only target ---------------------------------------------
{
  const secs = scale(8), rps = 50;
  log(`(a) total outage, ${rps} req/s for ${secs} s, breaker on, then off`);
  await h.setBehavior(mock.port, 'outage-model', { faults: [{ when: { always: true }, action: { status: 503 } }] });
  const on = await load('outage', rps, secs);
  const onUp = (await records('outage-model')).length;
  await h.setBehavior(mock.port, 'outage-nb-model', { faults: [{ when: { always: true }, action: { status: 503 } }] });
  const dis = await admin('m1/outage-nb-model', 'disable');
  if (dis.status !== 200) throw new Error(`admin disable answered ${dis.status}`);
  const off = await load('outage-nobreaker', rps, secs);
  const offUp = (await records('outage-nb-model')).length;
  md('## (a) Total outage of the only target');
  md();
  md(`One target, every attempt answered 503; ${rps} requests/s for ${secs} s. Default resilience settings`);
  md('(`max_attempts_per_target: 2`, retry budget 10% + 1/s over 10 s, breaker window 20 / minimum 10 /');
  md('50%, open 5 s doubling). The second run disables the breaker through the admin API');
  md('(`POST /admin/targets/m1%2Foutage-nb-model/disable`) so that only the retry budget limits retries.');
  md();
  md('| run | client requests | upstream attempts | attempts per request | answered 503 no_healthy_upstream (skipped, no attempt) |');
  md('|---|---|---|---|---|');
  const skipped = (rs) => rs.filter((r) => r.attempts === 0).length;
  md(`| breaker on | ${on.length} | ${onUp} | ${f3(onUp / on.length)} | ${skipped(on)} |`);
  md(`| breaker disabled (budget only) | ${off.length} | ${offUp} | ${f3(offUp / off.length)} | ${skipped(off)} |`);
  md();
  const opened = transitions('m1/outage-model').find((e) => e.to === 'open');
  if (opened) md(`The breaker opened after ${opened.failures} failed calls (${opened.calls} in the window).`);
  md();
  verdict('upstream attempts per request, total outage (breaker disabled: budget alone)', '<= 1.1', f3(offUp / off.length), offUp / off.length <= 1.1);
  verdict('upstream attempts per request, total outage (breaker on)', '<= 1.1', f3(onUp / on.length), onUp / on.length <= 1.1);
}

// --- (b) one of two targets failing 100% ----------------------------------------------
{
  const secs = scale(10), rps = 50;
  log(`(b) one of two targets down, ${rps} req/s for ${secs} s`);
  await h.setBehavior(mock.port, 'pair-bad-model', { faults: [{ when: { always: true }, action: { status: 500 } }] });
  await h.setBehavior(mock.port, 'pair-good-model', { tokens: 16 });
  const t0 = Date.now();
  const rs = await load('pair', rps, secs);
  const s = summary(rs);
  const bad = await records('pair-bad-model');
  const good = await records('pair-good-model');
  const opened = transitions('m1/pair-bad-model').find((e) => e.to === 'open');
  const openAt = opened ? Date.parse(opened.at) : NaN;
  const failedBefore = opened ? bad.filter((r) => r.at_ms <= openAt).length : NaN;
  md('## (b) One of two targets failing 100%');
  md();
  md(`Two targets of equal weight; the first answers 500 to everything from the start; ${rps} requests/s for ${secs} s.`);
  md();
  md('| client requests | succeeded | success rate | p50 ms | p99 ms | attempts on the failing target | on the healthy one | time to open | failed calls before open |');
  md('|---|---|---|---|---|---|---|---|---|');
  md(`| ${s.n} | ${s.ok} | ${percent(s.ok, s.n)} | ${f1(s.p50)} | ${f1(s.p99)} | ${bad.length} | ${good.length} | ${opened ? `${openAt - t0} ms` : 'did not open'} | ${failedBefore} |`);
  md();
  const tr = transitions('m1/pair-bad-model').map((e) => `${e.from}→${e.to} (${e.reason}, +${Date.parse(e.at) - t0} ms)`);
  md(`Transitions seen by the webhook: ${tr.join(', ') || 'none'}.`);
  md();
  verdict('success rate with one target healthy (one of two down)', '>= 99.9%', percent(s.ok, s.n), s.ok / s.n >= 0.999);
  verdict('breaker opens within 2 s and 10 failed calls at 50 req/s', '<= 2 s, <= 10 calls', opened ? `${openAt - t0} ms, ${failedBefore} calls` : 'no',
    opened && openAt - t0 <= 2000 && failedBefore <= 10);
}

// --- (c) flapping target --------------------------------------------------------------
{
  const period = 20_000, secs = QUICK ? 12 : 30, rps = 20;
  log(`(c) flapping target (down 10 s / up 10 s), ${rps} req/s for ${secs} s`);
  await h.setBehavior(mock.port, 'flap-good-model', { tokens: 16 });
  const t0 = Date.now();
  await h.setBehavior(mock.port, 'flap-model', { faults: [{ when: { flap_period_ms: period }, action: { status: 503 } }] });
  const rs = await load('flap', rps, secs);
  const s = summary(rs);
  const flap = await records('flap-model');
  const tr = transitions('m1/flap-model');
  md('## (c) Flapping target');
  md();
  md(`Two targets of equal weight; the first is down (503) for 10 s, up for 10 s, and so on, from the start; ${rps} requests/s for ${secs} s.`);
  md();
  md('| client requests | succeeded | success rate | p50 ms | p99 ms | attempts on the flapping target |');
  md('|---|---|---|---|---|---|');
  md(`| ${s.n} | ${s.ok} | ${percent(s.ok, s.n)} | ${f1(s.p50)} | ${f1(s.p99)} | ${flap.length} |`);
  md();
  md('| phase | starts at | breaker opened after | failed calls before it opened | healed target served again after |');
  md('|---|---|---|---|---|');
  const healedAfter = [];
  for (let k = 0; k * (period / 2) < secs * 1000; k++) {
    const start = t0 + (k * period) / 2;
    const end = start + period / 2;
    if (k % 2 === 0) {
      const open = tr.find((e) => e.to === 'open' && Date.parse(e.at) >= start && Date.parse(e.at) < end);
      const openAt = open ? Date.parse(open.at) : NaN;
      const failed = open ? flap.filter((r) => r.at_ms >= start && r.at_ms <= openAt && r.status !== 200).length : NaN;
      md(`| down | ${k * (period / 2000)} s | ${open ? `${openAt - start} ms` : '—'} | ${Number.isFinite(failed) ? failed : '—'} | |`);
    } else {
      const firstOk = flap.find((r) => r.at_ms >= start && r.at_ms < end && r.status === 200);
      const after = firstOk ? firstOk.at_ms - start : NaN;
      if (Number.isFinite(after)) healedAfter.push(after);
      md(`| up | ${k * (period / 2000)} s | | | ${firstOk ? `${after} ms` : 'not within the phase'} |`);
    }
  }
  md();
  md(`Transitions seen by the webhook: ${tr.map((e) => `${e.from}→${e.to} (+${Date.parse(e.at) - t0} ms)`).join(', ') || 'none'}.`);
  md();
  verdict('success rate with one target healthy (other flapping)', '>= 99.9%', percent(s.ok, s.n), s.ok / s.n >= 0.999);
  const worst = healedAfter.length ? Math.max(...healedAfter) : NaN;
  verdict('a healed target serves again within 30 s', '<= 30 s', `${f1(worst / 1000)} s`, worst <= 30_000);
}

// --- (d) slow target ------------------------------------------------------------------
{
  const secs = scale(8), rps = 20;
  log(`(d) slow target (10% of attempts +1500 ms), ${rps} req/s for ${secs} s, alone then with a second target`);
  await h.setBehavior(mock.port, 'slow-model', { faults: [{ when: { fraction: 0.1 }, action: { latency_ms: 1500 } }] });
  await h.setBehavior(mock.port, 'slow-good-model', { tokens: 16 });
  const solo = summary(await load('slow-solo', rps, secs));
  await h.setBehavior(mock.port, 'slow-model', { faults: [{ when: { fraction: 0.1 }, action: { latency_ms: 1500 } }] });
  const pair = summary(await load('slow-pair', rps, secs));
  md('## (d) Slow target (latency spikes)');
  md();
  md(`10% of the target's attempts take 1.5 s more before their headers; ${rps} requests/s for ${secs} s each.`);
  md('Alone, and then with a second, healthy target and a 500 ms first-token timeout on the slow one');
  md('(a spiked attempt times out and fails over; scenario (g) measures hedging).');
  md();
  md('| setup | requests | success rate | p50 ms | p99 ms | max ms |');
  md('|---|---|---|---|---|---|');
  md(`| slow target alone | ${solo.n} | ${percent(solo.ok, solo.n)} | ${f1(solo.p50)} | ${f1(solo.p99)} | ${f0(solo.max)} |`);
  md(`| with a second target, first_token 500 ms | ${pair.n} | ${percent(pair.ok, pair.n)} | ${f1(pair.p50)} | ${f1(pair.p99)} | ${f0(pair.max)} |`);
  md();
}

// --- (e) 429 with Retry-After ---------------------------------------------------------
{
  const n = QUICK ? 2 : 4;
  log(`(e) 429 with Retry-After: ${n} requests with retry-after 1 s, then ${n} with retry-after 60 s`);
  const gaps = [];
  const waits = [];
  for (let i = 0; i < n; i++) {
    await h.setBehavior(mock.port, 'ra-model', { faults: [{ when: { times: 1 }, action: { status: 429, retry_after_s: 1 } }] });
    const r = await one('ra');
    const recs = await records('ra-model');
    const last2 = recs.slice(-2);
    if (r.ok && last2.length === 2) gaps.push(last2[1].at_ms - last2[0].at_ms);
    waits.push(r.ms);
  }
  const longs = [];
  for (let i = 0; i < n; i++) {
    await h.setBehavior(mock.port, 'ra-long-model', { faults: [{ when: { always: true }, action: { status: 429, retry_after_s: 60 } }] });
    const r = await one('ra-long');
    longs.push({ ms: r.ms, ok: r.ok, target: r.target, attempts: r.attempts });
  }
  md('## (e) 429 with Retry-After');
  md();
  md(`${n} sequential requests whose first attempt gets 429 with \`retry-after: 1\`; then ${n} to a target that always`);
  md('answers 429 with `retry-after: 60` (above `max_retry_after: 30s`), which has a fallback model.');
  md();
  md('| case | requests | outcome | retry gap after the 429 (min / max) | client latency (min / max) |');
  md('|---|---|---|---|---|');
  md(`| retry-after 1 s | ${n} | ${gaps.length} answered after one retry | ${f0(Math.min(...gaps))} / ${f0(Math.max(...gaps))} ms | ${f0(Math.min(...waits))} / ${f0(Math.max(...waits))} ms |`);
  md(`| retry-after 60 s | ${n} | ${longs.filter((l) => l.ok && l.target === 'm2/ra-backup-model').length} answered by the fallback at once | — | ${f0(Math.min(...longs.map((l) => l.ms)))} / ${f0(Math.max(...longs.map((l) => l.ms)))} ms |`);
  md();
  verdict('Retry-After 1 s honoured (no retry before it)', '>= 1000 ms', `${f0(Math.min(...gaps))} ms`, gaps.length === n && Math.min(...gaps) >= 1000);
  verdict('Retry-After over max_retry_after: fail over at once', '< 1 s', `${f0(Math.max(...longs.map((l) => l.ms)))} ms`,
    longs.every((l) => l.ok) && Math.max(...longs.map((l) => l.ms)) < 1000);
}

// --- (f) three targets, streamed: one down, one failing 50%, one flapping, total outage --
{
  const secs = scale(10), rps = 50, flapSecs = QUICK ? 12 : 30;
  const targets = (p) => ['a', 'b', 'c'].map((x) => `trio-${p}-${x}`);
  const healthy = (p) => Promise.all(targets(p).map((m) => h.setBehavior(mock.port, m, { tokens: 60 })));
  const upstream = async (p) => (await Promise.all(targets(p).map((m) => records(m)))).reduce((n, rs) => n + rs.length, 0);
  const ttftOf = (rs) => rs.filter((r) => r.ok).map((r) => r.ttft);
  const row = (what, rs, up) => {
    const s = summary(rs);
    return `| ${what} | ${s.n} | ${s.ok} | ${percent(s.ok, s.n)} | ${f3(up / s.n)} | ${f1(pct(ttftOf(rs), 50))} | ${f1(pct(ttftOf(rs), 99))} | ${f1(s.p99)} |`;
  };
  md('## (f) Three targets, streamed');
  md();
  md('One model with three targets of equal weight (default resilience settings), streamed requests');
  md('(100-word prompt, 60-token answers, `include_usage`), open loop. A request succeeds when its stream');
  md('ends with `finish_reason: stop` and `[DONE]`; time to first token (TTFT) is measured by the client.');
  md();
  md('| fault | client requests | succeeded | success rate | upstream attempts per request | TTFT p50 ms | TTFT p99 ms | total p99 ms |');
  md('|---|---|---|---|---|---|---|---|');

  log(`(f1) three targets, one down, ${rps} req/s for ${secs} s (streamed)`);
  await healthy('down');
  await h.setBehavior(mock.port, 'trio-down-a', { tokens: 60, faults: [{ when: { always: true }, action: { status: 503 } }] });
  const down = await load('trio-down', rps, secs, oneStream);
  md(row('one target down (503)', down, await upstream('down')));

  log(`(f2) three targets, one failing 50%, ${rps} req/s for ${secs} s (streamed)`);
  await healthy('half');
  await h.setBehavior(mock.port, 'trio-half-a', { tokens: 60, faults: [{ when: { fraction: 0.5 }, action: { status: 500 } }] });
  const half = await load('trio-half', rps, secs, oneStream);
  md(row('one target failing 50% (500)', half, await upstream('half')));

  log(`(f3) three targets, one flapping (down 10 s / up 10 s), 20 req/s for ${flapSecs} s (streamed)`);
  await healthy('flap');
  const tf = Date.now();
  await h.setBehavior(mock.port, 'trio-flap-a', { tokens: 60, faults: [{ when: { flap_period_ms: 20_000 }, action: { status: 503 } }] });
  const flap = await load('trio-flap', 20, flapSecs, oneStream);
  const healedAt = (await records('trio-flap-a')).find((r) => r.at_ms >= tf + 10_000 && r.status === 200);
  md(row('one target flapping (503 for 10 s, then 10 s up)', flap, await upstream('flap')));

  log(`(f4) three targets, total outage, ${rps} req/s for ${secs} s (streamed)`);
  await Promise.all(targets('out').map((m) => h.setBehavior(mock.port, m, { faults: [{ when: { always: true }, action: { status: 503 } }] })));
  const out3 = await load('trio-out', rps, secs, oneStream);
  const outUp = await upstream('out');
  md(row('total outage (all three 503)', out3, outUp));
  md();
  md(`Flapping target: first healthy answer ${healedAt ? `${healedAt.at_ms - tf - 10_000} ms` : 'never'} after its first up phase began.`);
  md('In the total outage each early request fails over across the three targets until their breakers');
  md('open; after that the breakers answer for them (no attempt) and only half-open probes reach the');
  md('upstream. (With every breaker disabled by an operator, failover would make up to three attempts');
  md('per request: the retry budget caps retries on one target, not moving on to the next.)');
  md();
  for (const [what, rs] of [['one of three down', down], ['one of three failing 50%', half], ['one of three flapping', flap]]) {
    const s = summary(rs);
    verdict(`success rate, three targets, ${what} (streamed)`, '>= 99.9%', percent(s.ok, s.n), s.ok / s.n >= 0.999);
  }
  verdict('upstream attempts per request, total outage of three targets (streamed)', '<= 1.1', f3(outUp / out3.length), outUp / out3.length <= 1.1);
  verdict('a healed target serves again within 30 s (three targets)', '<= 30 s',
    healedAt ? `${f1((healedAt.at_ms - tf - 10_000) / 1000)} s` : 'never', Boolean(healedAt) && healedAt.at_ms - tf - 10_000 <= 30_000);
}

// --- (g) brownout: one of three targets +5 s to the first token, without and with hedging --
{
  const secs = QUICK ? 10 : 30, rps = 20;
  const run = async (model, prefix) => {
    for (const x of ['b', 'c']) await h.setBehavior(mock.port, `${prefix}-${x}`, { tokens: 60 });
    await h.setBehavior(mock.port, `${prefix}-a`, { tokens: 60, first_token_ms: 5000 });
    const rs = await load(model, rps, secs, oneStream);
    let up = 0;
    for (const x of ['a', 'b', 'c']) up += (await records(`${prefix}-${x}`)).length;
    const ok = rs.filter((r) => r.ok);
    // Tokens the upstreams processed for attempts that did not serve the answer: each
    // cancelled or timed-out attempt had read the prompt and sent no token (the loser of a
    // race has by definition not sent its first token), so it costs its prompt's tokens.
    const served = ok.reduce((n, r) => n + r.prompt + r.completion, 0);
    const promptTokens = ok.length ? ok[0].prompt : 0;
    const wasted = (up - ok.length) * promptTokens;
    return { rs, ok, up, served, wasted, hedged: rs.filter((r) => r.log.includes('hedge_cancelled')).length };
  };
  log(`(g) brownout, ${rps} req/s for ${secs} s, without hedging`);
  const plain = await run('brown', 'brown');
  log(`(g) brownout, ${rps} req/s for ${secs} s, with hedging`);
  const hedged = await run('brown-hedged', 'brownh');
  md('## (g) Brownout: one of three targets +5 s to the first token');
  md();
  md(`Three targets; the first answers, but only after 5 s to its first token; ${rps} streamed`);
  md(`requests/s for ${secs} s. The first-token budget is 1 s: the time a request may wait for its`);
  md('first token before another target is asked (`hedge: {delay: 1s, budget_ratio: 0.1,');
  md('budget_min_per_second: 2}`). The first-token timeout is 10 s, so timeouts do not rescue the');
  md('slow target\'s requests; its breaker counts calls over 1 s as slow (`slow_call_duration: 1s,');
  md('slow_call_rate: 0.5`), and a hedged attempt cancelled after 1 s counts as one. Both runs');
  md('have the same breaker settings; only the second hedges.');
  md();
  md('| run | requests | success rate | TTFT p50 ms | TTFT p99 ms | TTFT max ms | upstream attempts per request | requests hedged | extra upstream tokens |');
  md('|---|---|---|---|---|---|---|---|---|');
  for (const [what, x] of [['without hedging', plain], ['with hedging', hedged]]) {
    const t = x.ok.map((r) => r.ttft);
    md(`| ${what} | ${x.rs.length} | ${percent(x.ok.length, x.rs.length)} | ${f1(pct(t, 50))} | ${f1(pct(t, 99))} | ${f0(Math.max(...t))} | ${f3(x.up / x.rs.length)} | ${x.hedged} | ${percent(x.wasted, x.served)} |`);
  }
  md();
  md('Extra upstream tokens: the prompt tokens of every upstream attempt that did not serve the answer');
  md('(cancelled hedges and timed-out attempts), over all tokens of the answers served.');
  md();
  const t = hedged.ok.map((r) => r.ttft);
  verdict('brownout with hedging: p99 TTFT <= first-token budget (1 s) + 1 s', '<= 2000 ms', `${f0(pct(t, 99))} ms`, pct(t, 99) <= 2000);
  verdict('brownout with hedging: extra upstream tokens', '<= 7%', percent(hedged.wasted, hedged.served), hedged.wasted <= 0.07 * hedged.served);
}

// --- metrics and the webhook ---------------------------------------------------------
const metrics = await h.metrics(gw.port);
const c = (name) => h.counter(metrics, name);
md('## Events and metrics');
md();
md(`The webhook receiver got ${events.length} breaker-transition events; the gateway counted`);
md(`sent ${c('bulwark_events_sent_total')}, failed ${c('bulwark_events_failed_total')}, dropped ${c('bulwark_events_dropped_total')}`);
md(`(\`bulwark_events_*\`). Retries on the same target: ${c('bulwark_retries_total')}; failovers: ${c('bulwark_fallbacks_total')};`);
md(`attempts skipped by an open breaker: ${c('bulwark_breaker_rejections_total')}.`);
md();

await h.stopProcess(gw);
await h.stopProcess(mock);
receiver.close();

process.stdout.write(['## Summary against the targets of issue 3', '',
  '| what | target | measured | met |', '|---|---|---|---|', ...verdicts, '', ...out].join('\n') + '\n');
