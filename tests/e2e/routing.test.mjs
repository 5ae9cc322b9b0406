// Smart routing end to end: a routed model (`auto`) sends easy and hard prompts to
// different tiers, the objective header moves the decision, a tool-bearing request
// follows its rule, an unhealthy tier yields, and load balancers spread as designed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import OpenAI from 'openai';
import * as h from './harness.mjs';

const MASTER = 'e2e-master-key-0123456789-abcdefghijklmnop';
const EASY = 'hi there, how are you?';
const HARD =
  'A company has revenue R(t) = 120 e^{0.05t} and costs C(t) = 80 + 3t^2 (in millions). ' +
  'Find the time t at which profit is maximised, prove it is a maximum with the second derivative, ' +
  'then compute the present value of profit over [0, 10] with continuous discounting at 4%, ' +
  'and explain how the answer changes if the growth rate is uncertain and normally distributed.';

const models = (threshold) => `  cheap:
    targets: [{provider: mock, model: cheap-model}]
  strong:
    targets: [{provider: mock-b, model: strong-model}]
  auto:
    router:
      tiers: [cheap, strong]
      rules:
        - name: has-tools
          when: {tools: true}
          tier: strong
      complexity:
        thresholds: [${threshold}]
      objectives:
        cost: {shift: 0.99}
        quality: {shift: -0.99}
        speed: {tier: cheap}
  weighted:
    load_balancing: weighted
    targets:
      - {provider: mock, model: w-heavy, weight: 3}
      - {provider: mock-b, model: w-light, weight: 1}
  least-busy:
    load_balancing: least_in_flight
    targets:
      - {provider: mock, model: lb-slow}
      - {provider: mock-b, model: lb-fast}
`;

function scores(config) {
  const input = [EASY, HARD].map((prompt, id) => JSON.stringify({ id, prompt })).join('\n') + '\n';
  const r = spawnSync(h.bulwarkBin, ['route', 'score', '--config', config, '--model', 'auto'], {
    input,
    encoding: 'utf8',
    env: { ...process.env, TEST_PROVIDER_KEY: h.PROVIDER_KEY },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l).score);
}

describe('routed models and load balancing', () => {
  let mock, gw, client, easyScore, hardScore;
  before(async () => {
    mock = await h.startMock();
    // Score both prompts offline with the shipped scorer, then put the threshold between
    // them: the test checks the routing, not the scorer's opinion of two prompts.
    [easyScore, hardScore] = scores(h.writeConfig(h.gatewayConfig(mock.port, { models: models(0.5) })));
    assert.ok(hardScore > easyScore, `the scorer ranks the hard prompt higher (${hardScore} > ${easyScore})`);
    const threshold = ((easyScore + hardScore) / 2).toFixed(6);
    const top = `admin:\n  master_key: ${MASTER}\n`;
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { models: models(threshold), top })));
    client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  const ask = (content, options = {}) =>
    client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content }], ...options.body }, { headers: options.headers }).withResponse();

  it('sends an easy prompt to the cheap tier and a hard one to the strong tier, and says why', async () => {
    const easy = await ask(EASY);
    assert.equal(easy.response.headers.get('x-bulwark-target'), 'mock/cheap-model');
    assert.match(easy.response.headers.get('x-bulwark-route'), /^tier=cheap; score=[\d.]+; threshold=[\d.]+; objective=balanced/);
    const hard = await ask(HARD);
    assert.equal(hard.response.headers.get('x-bulwark-target'), 'mock-b/strong-model');
    assert.match(hard.response.headers.get('x-bulwark-route'), /^tier=strong; score=/);
    assert.equal(hard.data.choices[0].message.content, h.expectedAnswer(16));
  });

  it('lets the objective header move the decision', async () => {
    const cheap = await ask(HARD, { headers: { 'x-bulwark-objective': 'cost' } });
    assert.equal(cheap.response.headers.get('x-bulwark-target'), 'mock/cheap-model');
    assert.match(cheap.response.headers.get('x-bulwark-route'), /objective=cost/);
    const strong = await ask(EASY, { headers: { 'x-bulwark-objective': 'quality' } });
    assert.equal(strong.response.headers.get('x-bulwark-target'), 'mock-b/strong-model');
    const fast = await ask(HARD, { headers: { 'x-bulwark-objective': 'speed' } });
    assert.equal(fast.response.headers.get('x-bulwark-target'), 'mock/cheap-model');
    await assert.rejects(ask(EASY, { headers: { 'x-bulwark-objective': 'cheapest' } }), (e) => e.status === 400);
  });

  it('follows a rule before the score', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
    const r = await ask(EASY, { body: { tools } });
    assert.equal(r.response.headers.get('x-bulwark-target'), 'mock-b/strong-model');
    assert.equal(r.response.headers.get('x-bulwark-route'), 'tier=strong; rule=has-tools');
  });

  it('yields from a tier whose targets are all unhealthy', async () => {
    const act = (action) =>
      fetch(`http://127.0.0.1:${gw.port}/admin/targets/${encodeURIComponent('mock-b/strong-model')}/${action}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${MASTER}` },
      });
    assert.equal((await act('force-open')).status, 200);
    try {
      const r = await ask(HARD);
      assert.equal(r.response.headers.get('x-bulwark-target'), 'mock/cheap-model');
      assert.match(r.response.headers.get('x-bulwark-route'), /^tier=cheap; .*yielded_from=strong/);
    } finally {
      assert.equal((await act('reset')).status, 200);
    }
  });

  it('counts decisions per tier in the metrics', async () => {
    const text = await h.metrics(gw.port);
    assert.ok(h.counter(text, 'bulwark_route_decisions_total', { model: 'auto', tier: 'cheap' }) >= 3);
    assert.ok(h.counter(text, 'bulwark_route_decisions_total', { model: 'auto', tier: 'strong', source: 'rule' }) >= 1);
  });

  it('spreads a weighted model 3:1', async () => {
    const counts = { 'mock/w-heavy': 0, 'mock-b/w-light': 0 };
    const n = 400;
    for (let batch = 0; batch < n / 20; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () =>
          client.chat.completions.create({ model: 'weighted', messages: [{ role: 'user', content: 'x' }] }).withResponse(),
        ),
      );
      for (const a of answers) counts[a.response.headers.get('x-bulwark-target')]++;
    }
    const share = counts['mock/w-heavy'] / n;
    assert.ok(share > 0.67 && share < 0.83, `heavy share ${share} (expected 0.75)`);
  });

  it('sends most concurrent requests to the less busy target', async () => {
    await h.setBehavior(mock.port, 'lb-slow', { tokens: 4, latency_ms: 300 });
    await h.setBehavior(mock.port, 'lb-fast', { tokens: 4, latency_ms: 5 });
    const counts = { 'mock/lb-slow': 0, 'mock-b/lb-fast': 0 };
    // 8 callers, each sending its next request as soon as the last is answered: the slow
    // target keeps requests in flight, so new ones go to the fast target.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 10; i++) {
          const a = await client.chat.completions
            .create({ model: 'least-busy', messages: [{ role: 'user', content: 'x' }] })
            .withResponse();
          counts[a.response.headers.get('x-bulwark-target')]++;
        }
      }),
    );
    assert.ok(counts['mock-b/lb-fast'] > counts['mock/lb-slow'] * 2, JSON.stringify(counts));
    assert.ok(counts['mock/lb-slow'] > 0, 'the slow target still gets some: it is never idle-starved');
  });
});
