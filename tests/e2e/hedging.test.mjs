// Hedged requests: a second attempt when the first token is late, the first token wins,
// the other attempt is cancelled, and a hedge budget caps the extra traffic. Each scenario
// has its own upstream model names, so the mock's counters and the gateway's per-target
// breakers and budgets never mix between scenarios.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import * as h from './harness.mjs';

// $1,000 per million tokens: a cancelled attempt's prompt costs a visible amount.
const PRICES = `prices_as_of: "2026-11-24"
models:
  "*": {input: "1000", output: "1000"}
`;

// Every hedged model names its hedge target as a fallback model on the other provider:
// the hedge goes to the next allowed target of the request's chain.
const hedged = (name, hedge, extra = '') => `
  ${name}:
    targets: [{provider: mock, model: ${name}-primary}]
    fallbacks: [${name}-second]
    resilience:
      retry: {max_attempts_per_target: 1}
      hedge: ${hedge}
  ${name}-second:
    targets: [{provider: mock-b, model: ${name}-second-model}]
${extra}`;

const MODELS = [
  hedged('h-stream', '{delay: 150ms}'),
  hedged('h-unary', '{delay: 150ms}'),
  hedged('h-quick', '{delay: 300ms}'),
  hedged('h-first-wins', '{delay: 100ms}'),
  hedged('h-broke', '{budget_ratio: 0, budget_min_per_second: 0, delay: 100ms}'),
  hedged('h-fail-first', '{delay: 100ms}'),
  `
  h-both:
    targets: [{provider: mock, model: h-both-primary}]
    fallbacks: [h-both-second, h-both-third]
    resilience:
      retry: {max_attempts_per_target: 1}
      hedge: {delay: 100ms}
  h-both-second:
    targets: [{provider: mock-b, model: h-both-second-model}]
  h-both-third:
    targets: [{provider: mock, model: h-both-third-model}]
`,
].join('');

const answer = (n) => Array.from({ length: n }, (_, i) => `w${i + 1}`).join(' ') + '.';

describe('hedged requests', () => {
  let mock, gw, client, config;
  before(async () => {
    mock = await h.startMock();
    config = h.writeConfig(
      h.gatewayConfig(mock.port, { models: MODELS, governance: 'governance:\n  auth: keyless\n  prices: prices.yaml\n' }));
    writeFileSync(path.join(path.dirname(config), 'prices.yaml'), PRICES);
    gw = await h.startGateway(config);
    client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  const attemptsOf = async (model) => (await h.mockStats(mock.port)).models[model]?.requests ?? [];
  const metric = async (name, target) => {
    const line = (await h.metrics(gw.port)).split('\n').find((l) => l.startsWith(`${name}{target="${target}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  // The model's row of the spend report, read by the CLI from the database beside the
  // running gateway, once both the request's line and its overhead line have landed (they
  // may be in different commits).
  async function ledgerRow(model) {
    let row;
    const landed = (r) => r?.overhead_attempts > 0 && r?.requests > 0;
    for (let i = 0; i < 50 && !landed(row); i++) {
      const out = spawnSync(h.bulwarkBin, ['spend', '--config', config, '--by', 'model', '--format', 'json'],
        { encoding: 'utf8', env: { ...process.env, TEST_PROVIDER_KEY: h.PROVIDER_KEY } });
      assert.equal(out.status, 0, out.stderr);
      row = JSON.parse(out.stdout).data.find((d) => d.group === model);
      if (!landed(row)) await h.sleep(100);
    }
    return row;
  }

  it('a stream whose first token is late is hedged; the second target answers and the first is cancelled', async () => {
    await h.setBehavior(mock.port, 'h-stream-primary', { tokens: 8, first_token_ms: 3000 });
    await h.setBehavior(mock.port, 'h-stream-second-model', { tokens: 8 });
    const t0 = Date.now();
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'h-stream', messages: [{ role: 'user', content: 'hello there' }], stream: true })
      .withResponse();
    let text = '';
    let finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    const took = Date.now() - t0;
    assert.equal(text, answer(8));  // one answer, nothing of the cancelled attempt mixed in
    assert.equal(finish, 'stop');
    assert.ok(took < 2000, `answered after ${took} ms, not after the slow first token`);
    assert.equal(response.headers.get('x-bulwark-target'), 'mock-b/h-stream-second-model');
    assert.equal(response.headers.get('x-bulwark-model'), 'h-stream-second');
    assert.match(response.headers.get('x-bulwark-attempt-log'), /mock\/h-stream-primary;hedge_cancelled;\d+ms/);
    assert.equal(response.headers.get('x-bulwark-attempts'), '2');
    assert.equal((await attemptsOf('h-stream-primary')).length, 1);
    assert.equal((await attemptsOf('h-stream-second-model')).length, 1);
    assert.equal(await metric('bulwark_hedges_total', 'mock/h-stream-primary'), 1);
    assert.equal(await metric('bulwark_hedge_wins_total', 'mock/h-stream-primary'), 1);
    // The cancelled attempt's prompt, estimated, is overhead on its target.
    const cancelled = await metric('bulwark_hedge_cancelled_cost_usd_total', 'mock/h-stream-primary');
    assert.ok(cancelled > 0);
    // ... and in the gateway's overhead by reason (this gateway cancelled nothing else).
    const scraped = await h.metrics(gw.port);
    assert.equal(h.counter(scraped, 'bulwark_overhead_attempts_total', { reason: 'hedge_cancelled' }), 1);
    assert.equal(h.counter(scraped, 'bulwark_overhead_cost_usd_total', { reason: 'hedge_cancelled' }).toFixed(9), cancelled.toFixed(9));
    // ... and in the ledger as overhead, apart from the caller's cost.
    const row = await ledgerRow('h-stream');
    assert.equal(row.overhead_attempts, 1);
    assert.equal(row.overhead_usd, cancelled.toFixed(9));
    assert.equal(row.requests, 1);
    assert.ok(Number(row.cost_usd) > 0);
  });

  it('a plain request whose answer is late is hedged the same way', async () => {
    await h.setBehavior(mock.port, 'h-unary-primary', { tokens: 5, latency_ms: 3000 });
    await h.setBehavior(mock.port, 'h-unary-second-model', { tokens: 5 });
    const t0 = Date.now();
    const { data, response } = await client.chat.completions
      .create({ model: 'h-unary', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(data.choices[0].message.content, answer(5));
    assert.equal(data.usage.completion_tokens, 5);  // the answer's own usage
    assert.equal(response.headers.get('x-bulwark-target'), 'mock-b/h-unary-second-model');
    assert.match(response.headers.get('x-bulwark-attempt-log'), /mock\/h-unary-primary;hedge_cancelled/);
    assert.equal(await metric('bulwark_hedge_wins_total', 'mock/h-unary-primary'), 1);
    // The loser's request went out: its estimated prompt is the gateway's overhead, in the
    // ledger beside the caller's own cost.
    const cancelled = await metric('bulwark_hedge_cancelled_cost_usd_total', 'mock/h-unary-primary');
    assert.ok(cancelled > 0);
    const row = await ledgerRow('h-unary');
    assert.equal(row.overhead_attempts, 1);
    assert.equal(row.overhead_usd, cancelled.toFixed(9));
    assert.equal(row.requests, 1);
    assert.ok(Number(row.cost_usd) > 0);
  });

  it('no hedge when the first token comes before the delay', async () => {
    await h.setBehavior(mock.port, 'h-quick-primary', { tokens: 4 });
    for (let i = 0; i < 3; i++) {
      const { response } = await client.chat.completions
        .create({ model: 'h-quick', messages: [{ role: 'user', content: 'hi' }], stream: true })
        .withResponse();
      assert.equal(response.headers.get('x-bulwark-attempts'), '1');
    }
    assert.equal((await attemptsOf('h-quick-second-model')).length, 0);
    assert.equal(await metric('bulwark_hedges_total', 'mock/h-quick-primary'), 0);
  });

  it('when the first attempt still wins the race, the hedge is the one cancelled', async () => {
    await h.setBehavior(mock.port, 'h-first-wins-primary', { tokens: 6, first_token_ms: 400 });
    await h.setBehavior(mock.port, 'h-first-wins-second-model', { tokens: 6, first_token_ms: 3000 });
    const t0 = Date.now();
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'h-first-wins', messages: [{ role: 'user', content: 'hi' }], stream: true })
      .withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(text, answer(6));
    assert.equal(response.headers.get('x-bulwark-target'), 'mock/h-first-wins-primary');
    assert.match(response.headers.get('x-bulwark-attempt-log'), /mock-b\/h-first-wins-second-model;hedge_cancelled/);
    assert.equal((await attemptsOf('h-first-wins-second-model')).length, 1);  // it was started
    assert.equal(await metric('bulwark_hedges_total', 'mock/h-first-wins-primary'), 1);
    assert.equal(await metric('bulwark_hedge_wins_total', 'mock/h-first-wins-primary'), 0);
  });

  it('an exhausted hedge budget refuses the hedge: the slow answer is awaited', async () => {
    await h.setBehavior(mock.port, 'h-broke-primary', { tokens: 3, first_token_ms: 600 });
    const t0 = Date.now();
    const { response } = await client.chat.completions
      .create({ model: 'h-broke', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.ok(Date.now() - t0 >= 550);
    assert.equal(response.headers.get('x-bulwark-target'), 'mock/h-broke-primary');
    assert.equal((await attemptsOf('h-broke-second-model')).length, 0);
    assert.equal(await metric('bulwark_hedges_refused_total', 'mock/h-broke-primary'), 1);
    assert.equal(await metric('bulwark_hedges_total', 'mock/h-broke-primary'), 0);
  });

  it('the first attempt failing while the hedge runs: the hedge answers, not tried twice', async () => {
    await h.setBehavior(mock.port, 'h-fail-first-primary', {
      tokens: 3, faults: [{ when: { always: true }, action: { status: 503, latency_ms: 300 } }],
    });
    await h.setBehavior(mock.port, 'h-fail-first-second-model', { tokens: 3, first_token_ms: 600 });
    const { data, response } = await client.chat.completions
      .create({ model: 'h-fail-first', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(data.choices[0].message.content, answer(3));
    assert.equal(response.headers.get('x-bulwark-target'), 'mock-b/h-fail-first-second-model');
    assert.match(response.headers.get('x-bulwark-attempt-log'), /^mock\/h-fail-first-primary;\w+;\d+ms, mock-b\/h-fail-first-second-model;ok/);
    assert.equal((await attemptsOf('h-fail-first-primary')).length, 1);
    assert.equal((await attemptsOf('h-fail-first-second-model')).length, 1);
  });

  it('both racing attempts failing: failover goes on after them, each tried once', async () => {
    const fail = (ms) => ({ tokens: 3, faults: [{ when: { always: true }, action: { status: 503, latency_ms: ms } }] });
    await h.setBehavior(mock.port, 'h-both-primary', fail(300));
    await h.setBehavior(mock.port, 'h-both-second-model', fail(400));
    await h.setBehavior(mock.port, 'h-both-third-model', { tokens: 4 });
    const { data, response } = await client.chat.completions
      .create({ model: 'h-both', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(data.choices[0].message.content, answer(4));
    assert.equal(response.headers.get('x-bulwark-target'), 'mock/h-both-third-model');
    assert.equal(response.headers.get('x-bulwark-attempts'), '3');
    assert.equal((await attemptsOf('h-both-primary')).length, 1);
    assert.equal((await attemptsOf('h-both-second-model')).length, 1);
    assert.equal((await attemptsOf('h-both-third-model')).length, 1);
  });
});
