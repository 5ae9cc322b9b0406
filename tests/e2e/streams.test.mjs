// Streams that break: never handed to the caller as a complete answer; a caller that
// hangs up cancels the upstream request.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI from 'openai';
import * as h from './harness.mjs';

// A slow SSE upstream written here so the test can see exactly when its request is dropped.
function slowUpstream() {
  const state = { closedAt: null, startedAt: null, sent: 0 };
  const server = http.createServer((req, res) => {
    req.resume();
    state.startedAt = Date.now();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const timer = setInterval(() => {
      state.sent++;
      const chunk = { id: 'x', object: 'chat.completion.chunk', created: 0, model: 'slow', choices: [{ index: 0, delta: { content: ` t${state.sent}` }, finish_reason: null }] };
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      if (state.sent === 500) {
        clearInterval(timer);
        res.end('data: [DONE]\n\n');
      }
    }, 20);
    res.on('close', () => {
      clearInterval(timer);
      state.closedAt = Date.now();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, state, port: server.address().port })));
}

describe('broken streams', () => {
  let mock, gw, client, slow;
  before(async () => {
    mock = await h.startMock();
    slow = await slowUpstream();
    const providers = `  slow:\n    kind: openai\n    base_url: http://127.0.0.1:${slow.port}/v1\n`;
    const models = `  slow-model:\n    targets:\n      - provider: slow\n        model: slow\n`;
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { providers, models })));
    client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
    slow.server.close();
  });

  async function consume(model) {
    const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'go' }], stream: true });
    let text = '';
    let finish = null;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text += c.delta?.content ?? '';
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    return { text, finish };
  }

  for (const [name, action] of [
    ['cut after 40 of 60 tokens', { cut_after_tokens: 40 }],
    ['a malformed chunk mid-stream', { malformed_after_tokens: 10 }],
    ['a stream ending without [DONE]', { omit_done: true }],
  ]) {
    it(`${name} ends in an error the SDK raises, never a complete answer`, async () => {
      await h.setBehavior(mock.port, 'lonely-model', { tokens: 60, faults: [{ when: { always: true }, action }] });
      let got = null;
      await assert.rejects(
        (async () => {
          got = await consume('lonely');
        })(),
        (e) => e instanceof OpenAI.APIError || /error/i.test(String(e)),
      );
      assert.equal(got, null, 'iteration did not complete');
    });
  }

  it('a stall mid-stream is cut by the idle timeout with an error event', async () => {
    await h.setBehavior(mock.port, 'lonely-model', { tokens: 60, faults: [{ when: { always: true }, action: { stall_after_tokens: 5 } }] });
    const started = Date.now();
    await assert.rejects(consume('lonely'), (e) => /idle|timed out|timeout/i.test(e.message));
    assert.ok(Date.now() - started < 20_000, 'bounded by the idle timeout, not the total');
  });

  it('a caller hanging up mid-stream cancels the upstream request', async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'slow-model', messages: [{ role: 'user', content: 'go' }], stream: true },
      { signal: controller.signal },
    );
    let seen = 0;
    // Depending on the SDK version an abort ends the iteration or throws; either is a hang-up.
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content && ++seen === 5) controller.abort();
      }
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
    }
    assert.ok(seen >= 5);
    // The full stream would take 10 s; the upstream must see its request dropped long before.
    for (let i = 0; i < 100 && slow.state.closedAt === null; i++) await h.sleep(50);
    assert.ok(slow.state.closedAt !== null, 'upstream connection closed');
    assert.ok(slow.state.sent < 400, `upstream stopped early (sent ${slow.state.sent} of 500)`);
    const text = await h.metrics(gw.port);
    assert.ok(h.counter(text, 'bulwark_requests_total', { model: 'slow-model', status: '499' }) >= 1);
  });
});
