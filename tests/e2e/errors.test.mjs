// Bad input and upstream failures: always an OpenAI-shaped error with the right status.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import OpenAI from 'openai';
import * as h from './harness.mjs';

describe('errors in the caller\'s API format', () => {
  let mock, gw, client, base;
  before(async () => {
    mock = await h.startMock();
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { top: 'limits:\n  max_body_bytes: 64KiB\n  max_header_bytes: 8KiB\n  read_timeout: 1s\n  keepalive_idle_timeout: 1500ms' })));
    base = `http://127.0.0.1:${gw.port}`;
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  async function post(body, headers = {}) {
    const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    return { status: r.status, body: await r.json(), headers: r.headers };
  }
  function assertShape(body) {
    assert.equal(typeof body.error.message, 'string');
    assert.equal(typeof body.error.type, 'string');
    assert.ok('param' in body.error && 'code' in body.error);
  }

  it('404 model_not_found for an unknown model', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' && e.message.includes('no-such-model'),
    );
  });

  it('400 for malformed JSON, a missing model and missing messages', async () => {
    for (const [body, param] of [
      ['{"model": "gpt-4o-mini", "messages": [', null],
      ['[1,2,3]', null],
      ['{"messages":[{"role":"user","content":"x"}]}', 'model'],
      ['{"model":"gpt-4o-mini"}', 'messages'],
      ['{"model":"gpt-4o-mini","messages":[]}', 'messages'],
      ['{"model":42,"messages":[{"role":"user","content":"x"}]}', 'model'],
      ['{"model":"gpt-4o-mini","stream":"yes","messages":[{"role":"user","content":"x"}]}', 'stream'],
    ]) {
      const r = await post(body);
      assert.equal(r.status, 400, body);
      assertShape(r.body);
      assert.equal(r.body.error.param, param, body);
      assert.match(r.headers.get('x-bulwark-request-id'), /^[0-9a-f]{32}$/);
    }
  });

  it('413 for a body over the limit, 431 for headers over the limit', async () => {
    const big = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(70_000) }] });
    const r = await post(big);
    assert.equal(r.status, 413);
    assertShape(r.body);
    const h2 = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'x-big': 'y'.repeat(9000) }, body: '{}' });
    assert.equal(h2.status, 431);
    assertShape(await h2.json());
  });

  // Sends raw bytes and returns everything the gateway answers before it closes.
  function rawExchange(bytes) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(gw.port, '127.0.0.1', () => sock.write(bytes));
      let data = '';
      sock.on('data', (d) => (data += d));
      sock.on('end', () => resolve(data));
      sock.on('error', reject);
      sock.setTimeout(10_000, () => reject(new Error('the gateway never closed the connection')));
    });
  }

  it('408 for a request that stops arriving, in headers or in the body', async () => {
    const headers = await rawExchange('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty');
    assert.match(headers, /^HTTP\/1\.1 408 /);
    assert.equal(JSON.parse(headers.slice(headers.indexOf('\r\n\r\n') + 4)).error.code, 'request_timeout');
    const body = await rawExchange('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model":');
    assert.match(body, /^HTTP\/1\.1 408 /);
  });

  it('closes an idle keep-alive connection quietly', async () => {
    assert.equal(await rawExchange(''), '');
  });

  it('404 for unknown routes and 405 for the wrong method, in the same shape', async () => {
    const r = await fetch(`${base}/v1/nothing-here`);
    assert.equal(r.status, 404);
    assertShape(await r.json());
    const m = await fetch(`${base}/v1/chat/completions`);
    assert.equal(m.status, 405);
    assertShape(await m.json());
  });

  it('fails over to the fallback model when the primary answers 503', async () => {
    await h.setBehavior(mock.port, 'primary-model', { faults: [{ when: { always: true }, action: { status: 503, error: 'overloaded' } }] });
    await h.setBehavior(mock.port, 'backup-model', { tokens: 7 });
    const { data, response } = await client.chat.completions
      .create({ model: 'primary', messages: [{ role: 'user', content: 'hello' }] })
      .withResponse();
    assert.equal(data.choices[0].message.content, h.expectedAnswer(7));
    assert.equal(data.usage.completion_tokens, 7, 'the usage is the answer that was served');
    assert.equal(response.headers.get('x-bulwark-model'), 'backup');
    assert.equal(response.headers.get('x-bulwark-target'), 'mock-b/backup-model');
    // The primary is retried once (max_attempts_per_target: 2) before the failover.
    assert.equal(response.headers.get('x-bulwark-attempts'), '3');
    assert.match(response.headers.get('x-bulwark-attempt-log'),
      /^mock\/primary-model;upstream_overloaded;\d+ms, mock\/primary-model;upstream_overloaded;\d+ms, mock-b\/backup-model;ok;\d+ms$/);
  });

  it('fails over before the first token of a stream without the caller noticing', async () => {
    await h.setBehavior(mock.port, 'primary-model', { tokens: 30, faults: [{ when: { always: true }, action: { reset: true } }] });
    await h.setBehavior(mock.port, 'backup-model', { tokens: 9 });
    const stream = await client.chat.completions.create({ model: 'primary', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, h.expectedAnswer(9));
  });

  it('a failing upstream with no fallback gives the mapped status, never a hang', async () => {
    const cases = [
      [{ status: 503, error: 'overloaded' }, 503, OpenAI.InternalServerError],
      [{ status: 500, error: 'server_error' }, 502, OpenAI.InternalServerError],
      [{ status: 429, error: 'rate_limit', retry_after_s: 3 }, 429, OpenAI.RateLimitError],
      [{ reset: true }, 502, OpenAI.InternalServerError],
    ];
    for (const [action, status, type] of cases) {
      await h.setBehavior(mock.port, 'lonely-model', { faults: [{ when: { always: true }, action }] });
      await assert.rejects(
        client.chat.completions.create({ model: 'lonely', messages: [{ role: 'user', content: 'x' }] }),
        (e) => e instanceof type && e.status === status && e.message.includes('lonely-model'),
        JSON.stringify(action),
      );
    }
  });

  it('passes the caller\'s own mistake through with the provider\'s explanation and no failover', async () => {
    await h.setBehavior(mock.port, 'primary-model', { faults: [{ when: { always: true }, action: { status: 400, error: 'context_length' } }] });
    await h.resetMock(mock.port);
    await assert.rejects(
      client.chat.completions.create({ model: 'primary', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded',
    );
    const stats = await h.mockStats(mock.port);
    assert.equal(stats.models['backup-model'], undefined, 'the fallback was not tried');
  });

  it('times out an upstream that never answers and fails over', async () => {
    await h.setBehavior(mock.port, 'primary-model', { faults: [{ when: { always: true }, action: { hang: true } }] });
    await h.setBehavior(mock.port, 'backup-model', { tokens: 4 });
    const { data, response } = await client.chat.completions
      .create({ model: 'primary', messages: [{ role: 'user', content: 'x' }] })
      .withResponse();
    assert.equal(data.choices[0].message.content, h.expectedAnswer(4));
    assert.match(response.headers.get('x-bulwark-attempt-log'), /primary-model;first_token_timeout;/);
  });
});
