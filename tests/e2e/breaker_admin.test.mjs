// Operator control of circuit breakers (POST /admin/targets/{target}/{action}) and the
// breaker-transition webhook, against bulwark-mock. Each scenario uses its own upstream
// model names, so one scenario's breakers never affect another's.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import OpenAI from 'openai';
import * as h from './harness.mjs';

const MASTER_KEY = 'mk-e2e-breaker-admin-0123456789abcdef';
const TRIPPY = `{window: 4, minimum_calls: 2, failure_rate: 0.5, open_for: 30s, open_jitter: 0, probes: 1, probes_to_close: 1}`;

const MODELS = `
  pair:
    targets:
      - {provider: mock, model: pair-a-model}
      - {provider: mock-b, model: pair-b-model}
    resilience:
      retry: {max_attempts_per_target: 1}
  solo:
    targets: [{provider: mock, model: solo-model}]
  steady:
    targets: [{provider: mock, model: steady-model}]
    resilience:
      breaker: ${TRIPPY}
      retry: {max_attempts_per_target: 1}
  tripper:
    targets: [{provider: mock, model: tripper-model}]
    resilience:
      breaker: ${TRIPPY}
      retry: {max_attempts_per_target: 1}
`;

// A webhook receiver: records every POSTed event.
function startReceiver() {
  const events = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      try {
        events.push({ headers: req.headers, path: req.url, event: JSON.parse(body) });
      } catch {
        events.push({ headers: req.headers, path: req.url, event: null, raw: body });
      }
      res.writeHead(204).end();
      for (const w of waiters.splice(0)) w();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: server.address().port,
        events,
        close: () => new Promise((r) => server.close(r)),
        // Resolves with the first event matching `pred`, or rejects after `ms`.
        waitFor: async (pred, ms = 5000) => {
          const end = Date.now() + ms;
          for (;;) {
            const hit = events.find((e) => e.event && pred(e.event));
            if (hit) return hit;
            if (Date.now() > end) throw new Error(`no matching event; got ${JSON.stringify(events.map((e) => e.event))}`);
            await new Promise((r) => { waiters.push(r); setTimeout(r, 100); });
          }
        },
      });
    });
  });
}

describe('breaker admin actions and the transition webhook', () => {
  let mock, gw, client, base, hook, configFile;
  const topFor = (hookPort) => `admin:
  master_key: ${MASTER_KEY}
events:
  instance: e2e-gateway
  webhook:
    url: http://127.0.0.1:${hookPort}/hooks/bulwark
    timeout: 1s
    retries: 1
    backoff: 100ms
    headers: {X-Hook-Token: hook-secret-value}`;
  before(async () => {
    hook = await startReceiver();
    mock = await h.startMock();
    configFile = h.writeConfig(h.gatewayConfig(mock.port, { top: topFor(hook.port), models: MODELS }));
    gw = await h.startGateway(configFile);
    base = `http://127.0.0.1:${gw.port}`;
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
    await hook?.close();
  });

  const ask = (model) => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }).withResponse();
  const attemptsOf = async (model) => (await h.mockStats(mock.port)).models[model]?.requests ?? [];
  const act = (target, action, key = MASTER_KEY) =>
    fetch(`${base}/admin/targets/${encodeURIComponent(target)}/${action}`, {
      method: 'POST',
      headers: key ? { authorization: `Bearer ${key}` } : {},
    });
  const stateOf = async (target) => {
    const r = await fetch(`${base}/admin/targets`, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
    return (await r.json()).data.find((t) => t.target === target).breaker.state;
  };

  it('needs the master key; unknown actions are 400 and unknown targets 404', async () => {
    assert.equal((await act('mock/solo-model', 'force-open', null)).status, 401);
    const wrong = await act('mock/solo-model', 'force-open', 'not-the-key');
    assert.equal(wrong.status, 401);
    assert.equal(typeof (await wrong.json()).error.message, 'string');
    assert.equal(await stateOf('mock/solo-model'), 'closed');

    const bad = await act('mock/solo-model', 'explode');
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, 'unknown_action');
    const missing = await act('mock/no-such-model', 'reset');
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, 'target_not_found');
    // GET on an action path is not a route.
    assert.equal((await fetch(`${base}/admin/targets/mock%2Fsolo-model/reset`)).status, 404);
    const logs = gw.logs();
    assert.ok(!logs.includes(MASTER_KEY), 'the master key never reaches the logs');
    assert.ok(!logs.includes('not-the-key'), 'a presented key never reaches the logs');
  });

  it('force-open: traffic moves to the other target; a lone target answers 503 no_healthy_upstream; reset closes', async () => {
    await h.setBehavior(mock.port, 'pair-a-model', { tokens: 2 });
    await h.setBehavior(mock.port, 'pair-b-model', { tokens: 3 });
    const r = await act('mock/pair-a-model', 'force-open');
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(body.target, 'mock/pair-a-model');
    assert.equal(body.previous_state, 'closed');
    assert.equal(body.breaker.state, 'forced_open');
    assert.ok(r.headers.get('x-bulwark-request-id'));
    for (let i = 0; i < 6; i++) {
      const { data, response } = await ask('pair');
      assert.equal(response.headers.get('x-bulwark-target'), 'mock-b/pair-b-model');
      assert.equal(data.choices[0].message.content, h.expectedAnswer(3));
    }
    assert.equal((await attemptsOf('pair-a-model')).length, 0, 'a forced-open target gets no attempts');

    // The unencoded form of the id works as well.
    const solo = await fetch(`${base}/admin/targets/mock/solo-model/force-open`, {
      method: 'POST', headers: { authorization: `Bearer ${MASTER_KEY}` },
    });
    assert.equal(solo.status, 200);
    await assert.rejects(ask('solo'), (e) => e.status === 503 && e.code === 'no_healthy_upstream');
    assert.equal((await attemptsOf('solo-model')).length, 0);

    const reset = await act('mock/solo-model', 'reset');
    assert.equal(reset.status, 200);
    assert.equal((await reset.json()).breaker.state, 'closed');
    const { data } = await ask('solo');
    assert.equal(data.choices[0].message.content, h.expectedAnswer(16));
    assert.equal((await act('mock/pair-a-model', 'reset')).status, 200);
    assert.equal(await stateOf('mock/pair-a-model'), 'closed');

    const lines = gw.logs().split('\n').filter((l) => l.includes('"admin_breaker_action"'));
    assert.ok(lines.some((l) => l.includes('"target":"mock/pair-a-model"') && l.includes('"action":"force_open"') &&
      /"request_id":"[^"]+"/.test(l)), lines.join('\n'));
  });

  it('disable: failures do not trip the breaker; reset: closed again, and failures trip it', async () => {
    await h.setBehavior(mock.port, 'steady-model', { faults: [{ when: { always: true }, action: { status: 503 } }] });
    const d = await act('mock/steady-model', 'disable');
    assert.equal(d.status, 200);
    assert.equal((await d.json()).breaker.state, 'disabled');
    for (let i = 0; i < 6; i++) await assert.rejects(ask('steady'), (e) => e.status === 503 && e.code !== 'no_healthy_upstream');
    assert.equal((await attemptsOf('steady-model')).length, 6, 'every request reached the failing target');
    assert.equal(await stateOf('mock/steady-model'), 'disabled');

    const r = await act('mock/steady-model', 'reset');
    assert.equal((await r.json()).previous_state, 'disabled');
    assert.equal(await stateOf('mock/steady-model'), 'closed');
    for (let i = 0; i < 2; i++) await assert.rejects(ask('steady'), (e) => e.status === 503);
    assert.equal(await stateOf('mock/steady-model'), 'open');
    await assert.rejects(ask('steady'), (e) => e.code === 'no_healthy_upstream');
  });

  it('the webhook receives each breaker transition, and operator actions too', async () => {
    await h.setBehavior(mock.port, 'tripper-model', { faults: [{ when: { always: true }, action: { status: 500 } }] });
    for (let i = 0; i < 2; i++) await assert.rejects(ask('tripper'), (e) => e.status >= 500);
    const opened = await hook.waitFor((e) => e.target === 'mock/tripper-model' && e.to === 'open');
    const ev = opened.event;
    assert.equal(ev.type, 'breaker.transition');
    assert.equal(ev.from, 'closed');
    assert.equal(ev.reason, 'failure_rate');
    assert.equal(ev.instance, 'e2e-gateway');
    assert.equal(typeof ev.host, 'string');
    assert.match(ev.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(ev.at) - Date.now()) < 60_000);
    assert.equal(ev.calls, 2);
    assert.equal(ev.failures, 2);
    assert.equal(ev.consecutive_trips, 1);
    assert.ok(ev.open_ms > 0);
    assert.match(ev.id, /^evt_/);
    assert.equal(opened.path, '/hooks/bulwark');
    assert.equal(opened.headers['content-type'], 'application/json');
    assert.equal(opened.headers['x-bulwark-event'], 'breaker.transition');
    assert.equal(opened.headers['x-bulwark-event-id'], ev.id);
    assert.equal(opened.headers['x-hook-token'], 'hook-secret-value');

    // An operator's reset is a transition like any other.
    assert.equal((await act('mock/tripper-model', 'reset')).status, 200);
    const reset = await hook.waitFor((e) => e.target === 'mock/tripper-model' && e.reason === 'reset');
    assert.equal(reset.event.from, 'open');
    assert.equal(reset.event.to, 'closed');

    // Earlier scenarios' transitions arrived too, in order per target.
    const pairA = hook.events.filter((e) => e.event?.target === 'mock/pair-a-model').map((e) => `${e.event.from}->${e.event.to}`);
    assert.deepEqual(pairA, ['closed->forced_open', 'forced_open->closed']);

    const text = await h.metrics(gw.port);
    assert.ok(h.counter(text, 'bulwark_events_sent_total') >= 6, text);
    assert.equal(h.counter(text, 'bulwark_events_dropped_total'), 0);
    assert.equal(h.counter(text, 'bulwark_events_failed_total'), 0);
    assert.ok(!gw.logs().includes('hook-secret-value'), 'webhook header values never reach the logs');
  });

  it('a SIGHUP reload moves the webhook to a new URL', async () => {
    const second = await startReceiver();
    try {
      writeFileSync(configFile, h.gatewayConfig(mock.port, { top: topFor(second.port), models: MODELS }));
      const reloadsBefore = gw.logs().split('"config_reloaded"').length;
      gw.child.kill('SIGHUP');
      for (let i = 0; i < 50 && gw.logs().split('"config_reloaded"').length === reloadsBefore; i++) await h.sleep(100);
      assert.ok(gw.logs().split('"config_reloaded"').length > reloadsBefore, 'the reload was applied');
      const firstCount = hook.events.length;
      assert.equal((await act('mock/solo-model', 'disable')).status, 200);
      const ev = await second.waitFor((e) => e.target === 'mock/solo-model' && e.to === 'disabled');
      assert.equal(ev.event.reason, 'disabled');
      await h.sleep(200);
      assert.equal(hook.events.length, firstCount, 'the old receiver gets nothing after the reload');
      assert.equal((await act('mock/solo-model', 'reset')).status, 200);
      await second.waitFor((e) => e.target === 'mock/solo-model' && e.reason === 'reset');
    } finally {
      await second.close();
    }
  });
});
