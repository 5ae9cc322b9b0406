// Streams that break after the first token continue on a prefill target; slow first
// tokens get SSE keep-alives; callers may shorten the time limits per request.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import * as h from './harness.mjs';

const MODELS = `  continued:
    targets: [{provider: mock, model: breaks-midway}]
    fallbacks: [finisher]
  finisher:
    targets: [{provider: mock-b, model: finisher-model, prefill: true}]
  not-continued:
    targets: [{provider: mock, model: breaks-too}]
    fallbacks: [plain-backup]
  plain-backup:
    targets: [{provider: mock-b, model: plain-backup-model}]
  slow-start:
    targets: [{provider: mock, model: slow-first-token}]
  slow-then-fail:
    targets: [{provider: mock, model: slow-then-500}]
`;

// Raw SSE over fetch, to see the comments an SDK hides.
async function rawStream(port, model, headers = {}) {
  const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'count' }] }),
  });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

function contentOf(sse) {
  let text = '';
  for (const line of sse.split('\n')) {
    if (!line.startsWith('data: {')) continue;
    const chunk = JSON.parse(line.slice(6));
    text += chunk.choices?.[0]?.delta?.content ?? '';
  }
  return text;
}

describe('stream failover, keep-alives and per-request timeouts', () => {
  let mock, gw, client;
  before(async () => {
    mock = await h.startMock();
    const top = 'limits:\n  stream_keepalive: 100ms\n';
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { models: MODELS, top })));
    client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'k', maxRetries: 0 });
    await h.setBehavior(mock.port, 'breaks-midway', { tokens: 16, faults: [{ when: { always: true }, action: { cut_after_tokens: 5 } }] });
    await h.setBehavior(mock.port, 'breaks-too', { tokens: 16, faults: [{ when: { always: true }, action: { cut_after_tokens: 5 } }] });
    await h.setBehavior(mock.port, 'finisher-model', { tokens: 16 });
    await h.setBehavior(mock.port, 'slow-first-token', { tokens: 8, first_token_ms: 450 });
    await h.setBehavior(mock.port, 'slow-then-500', { tokens: 8, faults: [{ when: { always: true }, action: { status: 500, latency_ms: 350 } }] });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  it('finishes a broken stream on a prefill target: the caller gets the whole answer once', async () => {
    const stream = await client.chat.completions.create({ model: 'continued', stream: true, messages: [{ role: 'user', content: 'count' }] });
    let text = '';
    let finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, h.expectedAnswer(16));
    assert.equal(finish, 'stop');
    const last = await (await fetch(`http://127.0.0.1:${mock.port}/_mock/last-request/openai`)).json();
    const sent = JSON.parse(last.body);
    assert.deepEqual(sent.messages.at(-1), { role: 'assistant', content: 'w1 w2 w3 w4 w5' });
  });

  it('ends with an error event, never [DONE], when no target can continue', async () => {
    const r = await rawStream(gw.port, 'not-continued');
    assert.equal(r.status, 200);
    assert.ok(contentOf(r.text).startsWith('w1 w2 w3 w4 w5'));
    assert.match(r.text, /data: \{"error":/);
    assert.ok(!r.text.includes('[DONE]'));
  });

  it('sends SSE keep-alives while the first token is slow, then the answer', async () => {
    const r = await rawStream(gw.port, 'slow-start');
    assert.equal(r.status, 200);
    assert.ok((r.text.match(/^: keep-alive$/gm) ?? []).length >= 2, r.text.slice(0, 200));
    assert.equal(contentOf(r.text), h.expectedAnswer(8));
    assert.match(r.text, /data: \[DONE\]/);
  });

  it('reports a failure after keep-alives inside the stream, as the status is already sent', async () => {
    const r = await rawStream(gw.port, 'slow-then-fail');
    assert.equal(r.status, 200);
    assert.match(r.text, /^: keep-alive$/m);
    assert.match(r.text, /data: \{"error":/);
    assert.ok(!r.text.includes('[DONE]'));
  });

  it('lets the caller shorten the total time limit, never lengthen it', async () => {
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 4, latency_ms: 600 });
    try {
      await assert.rejects(
        client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-bulwark-timeout': '200ms' } }),
        (e) => e.status === 504,
      );
      await assert.rejects(
        client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-bulwark-timeout': 'soon' } }),
        (e) => e.status === 400,
      );
      const ok = await client.chat.completions.create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] },
        { headers: { 'x-bulwark-timeout': '10m' } },
      );
      assert.equal(ok.choices[0].message.content, h.expectedAnswer(4));
    } finally {
      await h.setBehavior(mock.port, 'mock-fast', { tokens: 16 });
    }
  });
});
