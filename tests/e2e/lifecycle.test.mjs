// The process: check-config, health endpoints, SIGHUP reload, graceful shutdown.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import OpenAI from 'openai';
import * as h from './harness.mjs';

describe('check-config', () => {
  it('prints every error with its line and column', () => {
    const file = h.writeConfig(`listen: 127.0.0.1:8080
providers:
  p:
    kind: openai
    base_url: not a url
    api_key: \${SURELY_UNSET_VARIABLE_XYZ}
    colour: blue
models:
  m:
    targets:
      - provider: nope
        model: x
    fallbacks: [ghost]
`);
    const r = spawnSync(h.bulwarkBin, ['check-config', file], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    const err = r.stderr;
    assert.match(err, new RegExp(`${file}:5:\\d+: base_url is not an absolute URL`));
    assert.match(err, new RegExp(`${file}:6:\\d+: .*SURELY_UNSET_VARIABLE_XYZ is not set`));
    assert.match(err, new RegExp(`${file}:7:\\d+: unknown key 'colour'`));
    assert.match(err, new RegExp(`${file}:11:\\d+: .*no provider named 'nope'`));
    assert.match(err, new RegExp(`${file}:13:\\d+: fallback 'ghost' is not a model`));
    assert.match(err, /5 error\(s\)/);
  });

  it('accepts the shipped demo configuration', () => {
    const r = spawnSync(h.bulwarkBin, ['check-config', new URL('../../examples/demo.yaml', import.meta.url).pathname], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /OK/);
  });

  it('reports YAML syntax errors with their position', () => {
    const file = h.writeConfig('models:\n  m: [unclosed\n');
    const r = spawnSync(h.bulwarkBin, ['check-config', file], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${file}:\\d+:\\d+: `));
  });
});

describe('a running gateway', () => {
  let mock, gw, file, base, client;
  before(async () => {
    mock = await h.startMock();
    file = h.writeConfig(h.gatewayConfig(mock.port));
    gw = await h.startGateway(file);
    base = `http://127.0.0.1:${gw.port}`;
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  it('answers health and readiness probes, each response with a request id', async () => {
    for (const p of ['/healthz', '/readyz', '/v1/models', '/metrics']) {
      const r = await fetch(`${base}${p}`);
      assert.equal(r.status, 200, p);
      assert.match(r.headers.get('x-bulwark-request-id') ?? '', /^[0-9a-f]{32}$/, p);
    }
  });

  it('reloads a valid configuration on SIGHUP and keeps the old one when the new is invalid', async () => {
    writeFileSync(file, h.gatewayConfig(mock.port, { models: '  added-later:\n    targets:\n      - provider: mock\n        model: mock-fast\n' }));
    gw.child.kill('SIGHUP');
    let ids = [];
    for (let i = 0; i < 50 && !ids.includes('added-later'); i++) {
      await h.sleep(50);
      ids = (await (await fetch(`${base}/v1/models`)).json()).data.map((m) => m.id);
    }
    assert.ok(ids.includes('added-later'));
    const answer = await client.chat.completions.create({ model: 'added-later', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(answer.choices[0].finish_reason, 'stop');

    writeFileSync(file, 'models: {broken');
    gw.child.kill('SIGHUP');
    for (let i = 0; i < 50 && !gw.logs().includes('config_reload_rejected'); i++) await h.sleep(50);
    assert.ok(gw.logs().includes('config_reload_rejected'));
    ids = (await (await fetch(`${base}/v1/models`)).json()).data.map((m) => m.id);
    assert.ok(ids.includes('added-later'), 'the previous configuration still serves');
  });

  it('drains on SIGTERM: an in-flight stream finishes, then the process exits 0', async () => {
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 30, token_delay_ms: 40 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true });
    let text = '';
    let signalled = false;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (!signalled) {
        signalled = true;
        gw.child.kill('SIGTERM');
        await h.sleep(100);
        const ready = await fetch(`${base}/readyz`).then((r) => r.status).catch(() => 'refused');
        assert.notEqual(ready, 200, 'not ready while draining');
      }
    }
    assert.equal(text, h.expectedAnswer(30));
    const { code } = await gw.exited;
    assert.equal(code, 0);
  });
});
