// Retries, failover, per-error-class fallback and circuit breakers against bulwark-mock's
// faults. Every scenario uses its own upstream model names, so the mock's counters and the
// gateway's per-target breakers and budgets of one scenario never affect another.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import * as h from './harness.mjs';

const MASTER_KEY = 'mk-e2e-0123456789abcdef0123456789abcdef';

const MODELS = `
  ra:
    targets: [{provider: mock, model: ra-model}]
  five-hundred:
    targets: [{provider: mock, model: five-hundred-model}]
  stream-retry:
    targets: [{provider: mock, model: stream-retry-model}]
  overloaded:
    targets: [{provider: mock, model: overloaded-model}]
    fallbacks: [overloaded-backup]
  overloaded-backup:
    targets: [{provider: mock-b, model: overloaded-backup-model}]
  throttled:
    targets: [{provider: mock, model: throttled-model}]
    fallbacks: [throttled-backup]
  throttled-backup:
    targets: [{provider: mock-b, model: throttled-backup-model}]
  resets:
    targets: [{provider: mock, model: resets-model}]
    fallbacks: [resets-backup]
  resets-backup:
    targets: [{provider: mock-b, model: resets-backup-model}]
  ctx-small:
    targets: [{provider: mock, model: ctx-small-model, context_window: 100}]
    fallbacks: [ctx-same, ctx-big]
  ctx-same:
    targets: [{provider: mock, model: ctx-same-model, context_window: 100}]
  ctx-big:
    targets: [{provider: mock-b, model: ctx-big-model, context_window: 100000}]
  filtered:
    targets: [{provider: mock, model: filtered-model}]
    fallbacks: [filtered-backup]
  filtered-backup:
    targets: [{provider: mock-b, model: filtered-backup-model}]
  filtered-alt:
    targets: [{provider: mock, model: filtered-alt-model}]
    fallbacks_on_content_filter: [filter-tolerant]
  filter-tolerant:
    targets: [{provider: mock-b, model: filter-tolerant-model}]
  flaky:
    targets: [{provider: mock, model: flaky-model}]
    fallbacks: [flaky-backup]
    resilience:
      breaker: {window: 4, minimum_calls: 2, failure_rate: 0.5, open_for: 1s, open_jitter: 0, probes: 1, probes_to_close: 1}
      retry: {max_attempts_per_target: 1}
  flaky-backup:
    targets: [{provider: mock-b, model: flaky-backup-model}]
  heal-pair:
    targets: [{provider: mock, model: heal-pair-a}, {provider: mock-b, model: heal-pair-b}]
    resilience:
      breaker: {window: 4, minimum_calls: 2, failure_rate: 0.5, open_for: 500ms, open_jitter: 0, probes: 1, probes_to_close: 1}
      retry: {max_attempts_per_target: 1}
  downed:
    targets: [{provider: mock, model: downed-model}]
    resilience:
      breaker: {window: 4, minimum_calls: 2, open_for: 1m}
      retry: {max_attempts_per_target: 1}
`;

describe('resilience: retries, failover and circuit breakers', () => {
  let mock, gw, client, base;
  before(async () => {
    mock = await h.startMock();
    const top = `admin:\n  master_key: ${MASTER_KEY}`;
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { top, models: MODELS })));
    base = `http://127.0.0.1:${gw.port}`;
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  const ask = (model, content = 'hello') =>
    client.chat.completions.create({ model, messages: [{ role: 'user', content }] }).withResponse();
  const attemptsOf = async (model) => (await h.mockStats(mock.port)).models[model]?.requests ?? [];

  it('429 with Retry-After 2 s once: retried on the same target after about 2 s, not before', async () => {
    await h.setBehavior(mock.port, 'ra-model', {
      tokens: 5,
      faults: [{ when: { times: 1 }, action: { status: 429, error: 'rate_limit', retry_after_s: 2 } }],
    });
    const { data, response } = await ask('ra');
    assert.equal(data.choices[0].message.content, h.expectedAnswer(5));
    assert.equal(response.headers.get('x-bulwark-attempts'), '2');
    assert.equal(response.headers.get('x-bulwark-target'), 'mock/ra-model');
    const reqs = await attemptsOf('ra-model');
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0].status, 429);
    assert.equal(reqs[1].status, 200);
    const gap = reqs[1].at_ms - reqs[0].at_ms;
    assert.ok(gap >= 1950, `the retry came ${gap} ms after the 429`);
    assert.ok(gap < 5000, `the retry came ${gap} ms after the 429`);
  });

  it('500 once: the same target is retried once and succeeds', async () => {
    await h.setBehavior(mock.port, 'five-hundred-model', { tokens: 3, faults: [{ when: { times: 1 }, action: { status: 500 } }] });
    const { data, response } = await ask('five-hundred');
    assert.equal(data.choices[0].message.content, h.expectedAnswer(3));
    assert.equal(response.headers.get('x-bulwark-attempts'), '2');
    assert.match(response.headers.get('x-bulwark-attempt-log'),
      /^mock\/five-hundred-model;upstream_server_error;\d+ms, mock\/five-hundred-model;ok;\d+ms$/);
    assert.equal((await attemptsOf('five-hundred-model')).length, 2);
  });

  it('a stream that fails before its first token is retried invisibly', async () => {
    await h.setBehavior(mock.port, 'stream-retry-model', {
      tokens: 6,
      faults: [{ when: { times: 1 }, action: { cut_after_tokens: 0 } }],
    });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'stream-retry', messages: [{ role: 'user', content: 'x' }], stream: true })
      .withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, h.expectedAnswer(6));
    assert.equal(response.headers.get('x-bulwark-attempts'), '2');
    assert.match(response.headers.get('x-bulwark-attempt-log'), /^mock\/stream-retry-model;(stream_truncated|connection_reset);\d+ms, mock\/stream-retry-model;ok;/);
  });

  it('503 persistent: fails over to the fallback within the attempt limits, with its model and usage', async () => {
    await h.setBehavior(mock.port, 'overloaded-model', { faults: [{ when: { always: true }, action: { status: 503, error: 'overloaded' } }] });
    await h.setBehavior(mock.port, 'overloaded-backup-model', { tokens: 6 });
    const { data, response } = await ask('overloaded', 'one two three');
    assert.equal(data.choices[0].message.content, h.expectedAnswer(6));
    assert.equal(data.model, 'overloaded-backup-model');
    assert.equal(data.usage.completion_tokens, 6);
    assert.equal(data.usage.prompt_tokens, 3);
    assert.equal(response.headers.get('x-bulwark-model'), 'overloaded-backup');
    assert.equal(response.headers.get('x-bulwark-attempts'), '3');
    assert.equal((await attemptsOf('overloaded-model')).length, 2, 'max_attempts_per_target is 2');
    assert.equal((await attemptsOf('overloaded-backup-model')).length, 1);
  });

  it('persistent 429 without Retry-After: backs off, then fails over; the primary sees a bounded number of attempts', async () => {
    await h.setBehavior(mock.port, 'throttled-model', { faults: [{ when: { always: true }, action: { status: 429, error: 'rate_limit' } }] });
    await h.setBehavior(mock.port, 'throttled-backup-model', { tokens: 2 });
    for (let i = 0; i < 3; i++) {
      const { data, response } = await ask('throttled');
      assert.equal(data.choices[0].message.content, h.expectedAnswer(2));
      assert.equal(response.headers.get('x-bulwark-model'), 'throttled-backup');
    }
    const reqs = await attemptsOf('throttled-model');
    assert.ok(reqs.length >= 3 && reqs.length <= 6, `the primary saw ${reqs.length} attempts for 3 requests`);
    for (const r of reqs) assert.equal(r.status, 429);
    assert.equal((await attemptsOf('throttled-backup-model')).length, 3);
  });

  it('a TCP reset before the headers fails over', async () => {
    await h.setBehavior(mock.port, 'resets-model', { faults: [{ when: { always: true }, action: { reset: true } }] });
    await h.setBehavior(mock.port, 'resets-backup-model', { tokens: 4 });
    const { data, response } = await ask('resets');
    assert.equal(data.choices[0].message.content, h.expectedAnswer(4));
    assert.equal(response.headers.get('x-bulwark-target'), 'mock-b/resets-backup-model');
    assert.match(response.headers.get('x-bulwark-attempt-log'), /^mock\/resets-model;connection_reset;/);
    // Two counted attempts at most, each possibly preceded by a stale pooled connection.
    assert.ok((await attemptsOf('resets-model')).length <= 4);
  });

  it('context length exceeded: no retry, the larger-context model answers and a same-size one is skipped', async () => {
    await h.setBehavior(mock.port, 'ctx-small-model', { context_window: 5 });
    await h.setBehavior(mock.port, 'ctx-same-model', { context_window: 5 });
    await h.setBehavior(mock.port, 'ctx-big-model', { tokens: 3 });
    const { data, response } = await ask('ctx-small', 'a b c d e f g h i j');
    assert.equal(data.choices[0].message.content, h.expectedAnswer(3));
    assert.equal(response.headers.get('x-bulwark-model'), 'ctx-big');
    assert.equal(response.headers.get('x-bulwark-attempts'), '2');
    assert.equal((await attemptsOf('ctx-small-model')).length, 1, 'never retried on the same target');
    assert.equal((await attemptsOf('ctx-same-model')).length, 0, 'a fallback no larger than the failed target is skipped');
  });

  it('content filter: no retry, no failover, and the provider\'s reason reaches the caller', async () => {
    await h.setBehavior(mock.port, 'filtered-model', { faults: [{ when: { always: true }, action: { error: 'content_filter' } }] });
    await assert.rejects(ask('filtered'), (e) =>
      e instanceof OpenAI.BadRequestError && e.code === 'content_filter' && /content management policy/.test(e.message));
    assert.equal((await attemptsOf('filtered-model')).length, 1);
    assert.equal((await attemptsOf('filtered-backup-model')).length, 0);
  });

  it('content filter with fallbacks_on_content_filter: the named model answers', async () => {
    await h.setBehavior(mock.port, 'filtered-alt-model', { faults: [{ when: { always: true }, action: { error: 'content_filter' } }] });
    await h.setBehavior(mock.port, 'filter-tolerant-model', { tokens: 2 });
    const { data, response } = await ask('filtered-alt');
    assert.equal(data.choices[0].message.content, h.expectedAnswer(2));
    assert.equal(response.headers.get('x-bulwark-model'), 'filter-tolerant');
    assert.equal(response.headers.get('x-bulwark-attempts'), '2');
    assert.equal((await attemptsOf('filtered-alt-model')).length, 1);
  });

  it('a primary that is down opens its breaker, is skipped while open, and gets traffic back once healed', async () => {
    await h.setBehavior(mock.port, 'flaky-model', { faults: [{ when: { always: true }, action: { status: 503 } }] });
    await h.setBehavior(mock.port, 'flaky-backup-model', { tokens: 2 });
    // Two failures in a window with minimum_calls 2: the breaker opens.
    for (let i = 0; i < 2; i++) {
      const { response } = await ask('flaky');
      assert.equal(response.headers.get('x-bulwark-model'), 'flaky-backup');
    }
    assert.equal((await attemptsOf('flaky-model')).length, 2);
    // While open: skipped without an attempt (and without counting one).
    for (let i = 0; i < 3; i++) {
      const { response } = await ask('flaky');
      assert.equal(response.headers.get('x-bulwark-model'), 'flaky-backup');
      assert.equal(response.headers.get('x-bulwark-attempts'), '1');
      assert.match(response.headers.get('x-bulwark-attempt-log'), /^mock\/flaky-model;breaker_open;0ms, mock-b\/flaky-backup-model;ok;/);
    }
    assert.equal((await attemptsOf('flaky-model')).length, 2, 'no attempts reach the primary while its breaker is open');
    const opened = gw.logs().split('\n').filter((l) => l.includes('"breaker_transition"') && l.includes('"mock/flaky-model"'));
    assert.ok(opened.some((l) => l.includes('"from":"closed"') && l.includes('"to":"open"') && l.includes('"reason":"failure_rate"')),
      opened.join('\n'));

    // Healed: after the open time a probe goes through and closes the breaker.
    await h.setBehavior(mock.port, 'flaky-model', { tokens: 3 });
    await h.sleep(1200);
    let served = null;
    for (let i = 0; i < 10 && served !== 'flaky'; i++) {
      const { response } = await ask('flaky');
      served = response.headers.get('x-bulwark-model');
      if (served !== 'flaky') await h.sleep(200);
    }
    assert.equal(served, 'flaky', 'traffic returned to the healed primary');
    const { response } = await ask('flaky');
    assert.equal(response.headers.get('x-bulwark-model'), 'flaky');
    const page = await fetch(`${base}/admin/targets`, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
    if (page.status !== 404) {
      assert.equal((await page.json()).data.find((t) => t.target === 'mock/flaky-model').breaker.state, 'closed');
    }
  });

  it('an open target behind a healthy sibling of the same model still gets its half-open probe and heals', async () => {
    // The balancer orders open targets last; their open time running out must still make
    // them eligible again, or the healthy sibling would serve forever.
    await h.setBehavior(mock.port, 'heal-pair-a', { faults: [{ when: { always: true }, action: { status: 503 } }] });
    await h.setBehavior(mock.port, 'heal-pair-b', { tokens: 2 });
    for (let i = 0; i < 12; i++) {
      const { response } = await ask('heal-pair');
      assert.equal(response.headers.get('x-bulwark-target'), 'mock-b/heal-pair-b');
    }
    const failed = (await attemptsOf('heal-pair-a')).length;
    assert.ok(failed >= 2 && failed < 12, `the breaker opened after ${failed} failed calls`);
    await h.setBehavior(mock.port, 'heal-pair-a', { tokens: 2 });
    await h.sleep(700);
    const targets = [];
    for (let i = 0; i < 40; i++) targets.push((await ask('heal-pair')).response.headers.get('x-bulwark-target'));
    assert.ok(targets.filter((t) => t === 'mock/heal-pair-a').length >= 5, `healed target served: ${targets.join(' ')}`);
  });

  it('GET /admin/targets shows an open breaker, only to the master key; the state is a metric', async (t) => {
    const probe = await fetch(`${base}/admin/targets`);
    if (probe.status === 404) {
      t.skip('the /admin/targets route is not dispatched by this server build yet');
      return;
    }
    assert.equal(probe.status, 401);
    assert.equal(typeof (await probe.json()).error.message, 'string');
    await h.setBehavior(mock.port, 'downed-model', { faults: [{ when: { always: true }, action: { status: 503 } }] });
    for (let i = 0; i < 2; i++) await assert.rejects(ask('downed'), (e) => e.status === 503);
    await assert.rejects(ask('downed'), (e) => e.status === 503 && e.code === 'no_healthy_upstream');
    assert.equal((await attemptsOf('downed-model')).length, 2);

    const wrong = await fetch(`${base}/admin/targets`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const admin = await fetch(`${base}/admin/targets`, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
    assert.equal(admin.status, 200);
    const targets = (await admin.json()).data;
    const downed = targets.find((x) => x.target === 'mock/downed-model');
    assert.equal(downed.breaker.state, 'open');
    assert.equal(downed.breaker.consecutive_trips, 1);
    assert.ok(downed.breaker.until_half_open_ms > 1000);
    assert.equal(downed.counters.breaker_rejections, 1);
    assert.equal(typeof downed.retry_budget.allowed, 'number');
    const healthy = targets.find((x) => x.target === 'mock-b/flaky-backup-model');
    assert.equal(healthy.breaker.state, 'closed');
    assert.ok(healthy.latency_ms.count >= 5 && healthy.latency_ms.p50 > 0);

    const text = await h.metrics(gw.port);
    assert.match(text, /bulwark_breaker_state\{target="mock\/downed-model"\} 1/);
    assert.match(text, /bulwark_breaker_transitions_total\{target="mock\/downed-model",to="open"\} 1/);
  });
});
