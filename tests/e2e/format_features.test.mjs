// Features that one format has and another may lack (issue 4): prompt-cache breakpoints
// and extended thinking, with the official SDKs as callers and bulwark-mock as every
// upstream. Each test reads what the mock received (GET /_mock/last-request) so that a
// feature silently dropped on the way fails the test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import * as h from './harness.mjs';

const AWS_KEY_ID = 'AKIDBULWARKE2E';
const AWS_SECRET = 'bulwark-e2e-secret-access-key';
const FULL = h.expectedAnswer(16);
// What the mock answers when a request enables thinking (mock/include/mock/wire.hpp).
const THINKING = 'The mock thinks before it answers.';
const SIGNATURE = 'bW9jay1zaWduYXR1cmU=';
const CLAUDE_ID = 'anthropic.claude-3-7-sonnet-20250219-v1:0';

function providersYaml(mockPort) {
  const base = `http://127.0.0.1:${mockPort}`;
  return `  anthropic-up:
    kind: anthropic
    base_url: ${base}
    api_key: \${TEST_PROVIDER_KEY}
  converse-up:
    kind: bedrock
    region: us-east-1
    base_url: ${base}
    aws_access_key_id: ${AWS_KEY_ID}
    aws_secret_access_key: ${AWS_SECRET}
  invoke-up:
    kind: bedrock
    region: us-east-1
    api: invoke
    base_url: ${base}
    aws_access_key_id: ${AWS_KEY_ID}
    aws_secret_access_key: ${AWS_SECRET}
`;
}

const MODELS = `  f-anthropic:
    targets:
      - provider: anthropic-up
        model: claude-model
  f-converse:
    targets:
      - provider: converse-up
        model: ${CLAUDE_ID}
  f-converse-mistral:
    targets:
      - provider: converse-up
        model: mistral.mistral-large-2402-v1:0
  f-openai:
    targets:
      - provider: mock
        model: openai-model
  f-llama:
    targets:
      - provider: invoke-up
        model: meta.llama3-8b-instruct-v1:0
`;

const TOOL = { name: 'weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } } } };

// A request with cache breakpoints on a system block, a message block and a tool.
function cachedRequest(model) {
  return {
    model,
    max_tokens: 100,
    system: [
      { type: 'text', text: 'You are a weather bot with a long rule book.', cache_control: { type: 'ephemeral' } },
      { type: 'text', text: 'Be brief.' },
    ],
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'A long shared document.', cache_control: { type: 'ephemeral', ttl: '1h' } },
          { type: 'text', text: 'say four words please' },
        ],
      },
    ],
    tools: [{ ...TOOL, cache_control: { type: 'ephemeral' } }],
  };
}

// A conversation where the assistant thought (signed) before calling a tool.
function thinkingHistory(model) {
  return {
    model,
    max_tokens: 3000,
    thinking: { type: 'enabled', budget_tokens: 1024 },
    tools: [TOOL],
    messages: [
      { role: 'user', content: 'Weather in Lima?' },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'I need the tool.', signature: 'c2lnLWhpc3Rvcnk=' },
          { type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Lima' } },
        ],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }] },
    ],
  };
}

describe('format features: cache breakpoints and extended thinking', () => {
  let mock, gw, anthropic, openai;

  before(async () => {
    mock = await h.startMock(['--aws-access-key-id', AWS_KEY_ID, '--aws-secret-access-key', AWS_SECRET, '--aws-region', 'us-east-1']);
    const cfg = h.gatewayConfig(mock.port, { providers: providersYaml(mock.port), models: MODELS });
    gw = await h.startGateway(h.writeConfig(cfg));
    const url = `http://127.0.0.1:${gw.port}`;
    anthropic = new Anthropic({ baseURL: url, authToken: 'k', apiKey: null, maxRetries: 0 });
    openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'k', maxRetries: 0 });
  });

  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  async function lastBody(format) {
    const r = await fetch(`http://127.0.0.1:${mock.port}/_mock/last-request/${format}`);
    assert.equal(r.status, 200, `the mock received no ${format} request`);
    return JSON.parse((await r.json()).body);
  }

  // ---- cache_control ----

  it('cache_control reaches an Anthropic upstream where the caller put it', async () => {
    const { data, response } = await anthropic.messages.create(cachedRequest('f-anthropic')).withResponse();
    assert.equal(data.content[0].text, FULL);
    assert.equal(response.headers.get('x-bulwark-dropped'), null);
    const body = await lastBody('anthropic');
    assert.deepEqual(body.system[0].cache_control, { type: 'ephemeral' });
    assert.equal(body.system[1].cache_control, undefined);
    assert.deepEqual(body.messages[0].content[0].cache_control, { type: 'ephemeral', ttl: '1h' });
    assert.equal(body.messages[0].content[1].cache_control, undefined);
    assert.deepEqual(body.tools[0].cache_control, { type: 'ephemeral' });
  });

  it('cache_control reaches a Converse (Claude) upstream as cachePoint blocks', async () => {
    const m = await anthropic.messages.create(cachedRequest('f-converse'));
    assert.equal(m.content[0].text, FULL);
    const body = await lastBody('bedrock');
    assert.deepEqual(body.system, [
      { text: 'You are a weather bot with a long rule book.' },
      { cachePoint: { type: 'default' } },
      { text: 'Be brief.' },
    ]);
    assert.deepEqual(body.messages[0].content[1], { cachePoint: { type: 'default' } });
    assert.equal(body.messages[0].content[2].text, 'say four words please');
    assert.equal(body.toolConfig.tools[0].toolSpec.name, 'weather');
    assert.deepEqual(body.toolConfig.tools[1], { cachePoint: { type: 'default' } });
  });

  it('an OpenAI upstream gets no cache_control, and the answer says it was dropped', async () => {
    const { data, response } = await anthropic.messages.create(cachedRequest('f-openai')).withResponse();
    assert.equal(data.content[0].text, FULL);
    assert.equal(response.headers.get('x-bulwark-dropped'), 'cache_control');
    const raw = JSON.stringify(await lastBody('openai'));
    assert.ok(!raw.includes('cache_control'), raw);
    assert.ok(!raw.includes('x-bulwark-ext'), raw);
  });

  it('a Converse model without prompt caching gets no cachePoint (and no 400)', async () => {
    const { data, response } = await anthropic.messages.create({ ...cachedRequest('f-converse-mistral'), tools: undefined }).withResponse();
    assert.equal(data.content[0].text, FULL);
    assert.equal(response.headers.get('x-bulwark-dropped'), 'cache_control');
    const raw = JSON.stringify(await lastBody('bedrock'));
    assert.ok(!raw.includes('cachePoint'), raw);
  });

  // ---- thinking ----

  for (const [model, format] of [['f-anthropic', 'anthropic'], ['f-converse', 'bedrock']]) {
    it(`${model}: thinking round-trips, not streamed`, async () => {
      const m = await anthropic.messages.create({
        model, max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 },
        messages: [{ role: 'user', content: 'say four words please' }],
      });
      assert.equal(m.content.length, 2, JSON.stringify(m.content));
      assert.deepEqual(m.content[0], { type: 'thinking', thinking: THINKING, signature: SIGNATURE });
      assert.equal(m.content[1].text, FULL);
      const body = await lastBody(format);
      const thinking = format === 'anthropic' ? body.thinking : body.additionalModelRequestFields.thinking;
      assert.deepEqual(thinking, { type: 'enabled', budget_tokens: 1024 });
    });

    it(`${model}: thinking round-trips, streamed (thinking_delta, signature_delta)`, async () => {
      const s = anthropic.messages.stream({
        model, max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 },
        messages: [{ role: 'user', content: 'say four words please' }],
      });
      const deltas = [];
      s.on('streamEvent', (e) => {
        if (e.type === 'content_block_delta') deltas.push(e.delta.type);
      });
      const m = await s.finalMessage();
      assert.ok(deltas.includes('thinking_delta') && deltas.includes('signature_delta'), deltas.join(','));
      assert.equal(m.content[0].type, 'thinking');
      assert.equal(m.content[0].thinking, THINKING);
      assert.equal(m.content[0].signature, SIGNATURE);
      assert.equal(m.content[1].text, FULL);
    });

    it(`${model}: signed thinking in the history reaches the upstream`, async () => {
      const m = await anthropic.messages.create(thinkingHistory(model));
      assert.equal(m.content[1].text, FULL);
      const body = await lastBody(format);
      const first = body.messages[1].content[0];
      if (format === 'anthropic') assert.deepEqual(first, { type: 'thinking', thinking: 'I need the tool.', signature: 'c2lnLWhpc3Rvcnk=' });
      else assert.deepEqual(first, { reasoningContent: { reasoningText: { text: 'I need the tool.', signature: 'c2lnLWhpc3Rvcnk=' } } });
    });
  }

  it('an OpenAI caller sees reasoning_content (reasoning_effort -> a thinking budget)', async () => {
    const c = await openai.chat.completions.create({
      model: 'f-anthropic', reasoning_effort: 'low', messages: [{ role: 'user', content: 'say four words please' }],
    });
    assert.equal(c.choices[0].message.content, FULL);
    assert.equal(c.choices[0].message.reasoning_content, THINKING);
    const body = await lastBody('anthropic');
    assert.deepEqual(body.thinking, { type: 'enabled', budget_tokens: 1024 });
    assert.ok(body.max_tokens > 1024, `max_tokens ${body.max_tokens}`);

    const stream = await openai.chat.completions.create({
      model: 'f-converse', reasoning_effort: 'medium', stream: true, messages: [{ role: 'user', content: 'say four words please' }],
    });
    let reasoning = '', text = '';
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta ?? {};
      reasoning += d.reasoning_content ?? '';
      text += d.content ?? '';
    }
    assert.equal(reasoning, THINKING);
    assert.equal(text, FULL);
    assert.equal((await lastBody('bedrock')).additionalModelRequestFields.thinking.budget_tokens, 2048);
  });

  it('a plain answer has no reasoning fields', async () => {
    const c = await openai.chat.completions.create({ model: 'f-anthropic', messages: [{ role: 'user', content: 'say four words please' }] });
    assert.equal(c.choices[0].message.reasoning_content, undefined);
    assert.equal((await lastBody('anthropic')).thinking, undefined);
  });

  it('a Llama target refuses thinking with a 400 in the caller format', async () => {
    await assert.rejects(
      anthropic.messages.create({ model: 'f-llama', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e.status === 400 && e.error?.type === 'error' && e.error.error.type === 'invalid_request_error' && /thinking/.test(e.error.error.message) && /Llama/.test(e.error.error.message),
    );
    await assert.rejects(
      openai.chat.completions.create({ model: 'f-llama', reasoning_effort: 'high', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e.status === 400 && /thinking/.test(e.error?.message ?? e.message),
    );
    await assert.rejects(
      anthropic.messages.create({ model: 'f-converse-mistral', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e.status === 400 && /mistral/.test(e.error.error.message),
    );
  });

  // ---- documents ----

  it('documents reach a Converse upstream (pdf and txt), citations only an Anthropic one', async () => {
    const pdf = Buffer.from('%PDF-1.4 mock').toString('base64');
    const m = await anthropic.messages.create({
      model: 'f-converse', max_tokens: 100,
      messages: [{ role: 'user', content: [
        { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: pdf }, title: 'Q3 report.pdf' },
        { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'Plain notes.' } },
        { type: 'text', text: 'say four words please' },
      ] }],
    });
    assert.equal(m.content[0].text, FULL);
    const content = (await lastBody('bedrock')).messages[0].content;
    assert.deepEqual(content[0], { document: { format: 'pdf', name: 'Q3 report-pdf', source: { bytes: pdf } } });
    assert.deepEqual(content[1], { document: { format: 'txt', name: 'document-2', source: { bytes: Buffer.from('Plain notes.').toString('base64') } } });

    const cited = (model) => anthropic.messages.create({
      model, max_tokens: 100,
      messages: [{ role: 'user', content: [
        { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'The sky is blue.' }, citations: { enabled: true } },
        { type: 'text', text: 'say four words please' },
      ] }],
    });
    assert.equal((await cited('f-anthropic')).content[0].text, FULL);
    const doc = (await lastBody('anthropic')).messages[0].content[0];
    assert.deepEqual(doc.citations, { enabled: true });
    assert.deepEqual(doc.source, { type: 'text', media_type: 'text/plain', data: 'The sky is blue.' });
    await assert.rejects(cited('f-converse'), (e) => e.status === 400 && /citations/.test(e.error.error.message));
    await assert.rejects(cited('f-openai'), (e) => e.status === 400 && /citations/.test(e.error.error.message));
  });

  it('a streamed answer keeps its citations (citations_delta) for an Anthropic caller', async () => {
    // The mock cites the document's first five words (docs/mock.md); the stream crosses
    // the gateway's OpenAI form, where the citation rides as a delta field.
    const expected = {
      type: 'char_location', cited_text: 'The sky is blue today,', document_index: 0,
      document_title: 'Weather', start_char_index: 0, end_char_index: 22,
    };
    const s = anthropic.messages.stream({
      model: 'f-anthropic', max_tokens: 100,
      messages: [{ role: 'user', content: [
        { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'The sky is blue today, said the forecast.' },
          title: 'Weather', citations: { enabled: true } },
        { type: 'text', text: 'say four words please' },
      ] }],
    });
    const seen = [];
    s.on('citation', (citation) => seen.push(citation));
    const m = await s.finalMessage();
    assert.deepEqual(seen, [expected]);
    assert.equal(m.content.length, 1);
    assert.equal(m.content[0].type, 'text');
    assert.equal(m.content[0].text, FULL);
    assert.deepEqual(m.content[0].citations, [expected]);
    assert.equal((await lastBody('anthropic')).stream, true);
  });

  it('an OpenAI upstream gets reasoning_effort from a thinking budget, and no signed blocks', async () => {
    const m = await anthropic.messages.create(thinkingHistory('f-openai'));
    assert.equal(m.content.at(-1).text, FULL);
    const body = await lastBody('openai');
    assert.equal(body.reasoning_effort, 'low');
    const raw = JSON.stringify(body);
    assert.ok(!raw.includes('c2lnLWhpc3Rvcnk=') && !raw.includes('thinking'), raw);
  });
});
