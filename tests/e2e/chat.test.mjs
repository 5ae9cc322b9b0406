// The official openai SDK through bulwark to bulwark-mock: plain and streamed answers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import * as h from './harness.mjs';

describe('chat completions through the gateway', () => {
  let mock, gw, client;
  before(async () => {
    mock = await h.startMock();
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port)));
    // The caller's key is not the provider's: the gateway must use its own credentials.
    client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'caller-key-not-for-upstream', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  it('answers a plain request with the upstream answer, its usage and the serving target', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'say something nice' }] })
      .withResponse();
    assert.equal(data.choices[0].message.content, h.expectedAnswer(16));
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.deepEqual(
      { p: data.usage.prompt_tokens, c: data.usage.completion_tokens, t: data.usage.total_tokens },
      { p: 3, c: 16, t: 19 },
    );
    assert.equal(response.headers.get('x-bulwark-target'), 'mock/mock-fast');
    assert.equal(response.headers.get('x-bulwark-model'), 'gpt-4o-mini');
    assert.equal(response.headers.get('x-bulwark-attempts'), '1');
    assert.match(response.headers.get('x-bulwark-request-id'), /^[0-9a-f]{32}$/);
  });

  it('streams every token and the usage chunk when the caller asks for it', async () => {
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 40 });
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'count for me' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish = null;
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta?.content ?? '';
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(text, h.expectedAnswer(40));
    assert.equal(finish, 'stop');
    assert.ok(chunks >= 40, `relayed chunk by chunk (${chunks} chunks)`);
    assert.equal(usage.completion_tokens, 40);
    assert.equal(usage.prompt_tokens, 3);
  });

  it('does not hand the caller a usage chunk it did not ask for, yet accounts the usage', async () => {
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 12 });
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) {
      assert.ok(chunk.choices.length > 0, 'no usage-only chunk');
      assert.equal(chunk.usage ?? null, null);
      text += chunk.choices[0].delta?.content ?? '';
    }
    assert.equal(text, h.expectedAnswer(12));
    const stats = await h.mockStats(mock.port);
    assert.ok(stats.models['mock-fast'].requests.every((r) => r.authorization), 'provider credentials were sent');
  });

  it('lists the configured model names', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['gpt-4o-mini', 'primary', 'backup', 'lonely']);
  });

  it('serves many concurrent requests on keep-alive connections', async () => {
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 5 });
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `q${i}` }] }),
      ),
    );
    for (const a of answers) assert.equal(a.choices[0].message.content, h.expectedAnswer(5));
  });

  it('reports requests, attempts and latency in Prometheus metrics', async () => {
    const text = await h.metrics(gw.port);
    assert.ok(h.counter(text, 'bulwark_requests_total', { model: 'gpt-4o-mini', status: '200' }) >= 53);
    assert.ok(h.counter(text, 'bulwark_upstream_attempts_total', { target: 'mock/mock-fast', outcome: 'ok' }) >= 53);
    for (const family of [
      'bulwark_request_duration_seconds_bucket',
      'bulwark_upstream_duration_seconds_bucket',
      'bulwark_gateway_overhead_seconds_bucket',
      'bulwark_time_to_first_token_seconds_bucket',
      'bulwark_in_flight_requests',
      'bulwark_open_connections',
    ])
      assert.ok(text.includes(family), `${family} exported`);
    assert.ok(!text.includes(h.PROVIDER_KEY), 'no secret in metrics');
  });
});
