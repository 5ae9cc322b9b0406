// Policies on tool-call arguments end to end, with the official OpenAI and Anthropic SDKs
// as callers: a card number in an earlier tool call of the prompt's history is refused
// (or redacted before the upstream sees it, which bulwark-mock records), and an e-mail
// address in the arguments of a tool call the model makes is redacted, whole or streamed
// with the address split across two argument fragments, while the arguments stay JSON
// (an Anthropic caller gets them as tool_use input).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import * as h from './harness.mjs';

const MASTER = 'e2e-master-key-0123456789-abcdefghijklmnop';
const CARD = '4111 1111 1111 1111'; // Luhn-valid Visa test number
const EMAIL = 'jane.doe@example.com';

const GOVERNANCE = `governance:
  auth: keys
  key_refresh: 200ms
  policies:
    block-cards:
      pii: {card: block, email: redact}
    redact-all:
      pii: {card: redact, email: redact}
    deny-thoughts:
      deny: [{id: mock-thoughts, pattern: "(?i)the mock thinks", action: block}]
admin:
  master_key: ${MASTER}
`;

// The tool the callers offer and the model calls.
const SEND_EMAIL = {
  type: 'function',
  function: {
    name: 'send_email',
    description: 'Send an e-mail',
    parameters: { type: 'object', properties: { to: { type: 'string' }, subject: { type: 'string' } }, required: ['to'] },
  },
};

// A prompt whose history holds an assistant turn that called a tool with `args`.
function historyWith(args) {
  return [
    { role: 'user', content: 'Pay the invoice.' },
    {
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_pay_1', type: 'function', function: { name: 'pay', arguments: JSON.stringify(args) } }],
    },
    { role: 'tool', tool_call_id: 'call_pay_1', content: 'Paid.' },
    { role: 'user', content: 'Thanks. Anything else?' },
  ];
}

describe('policies on tool-call arguments', () => {
  let mock, gw;
  const url = () => `http://127.0.0.1:${gw.port}`;

  before(async () => {
    mock = await h.startMock();
    const providers = `  anthropic-up:
    kind: anthropic
    base_url: http://127.0.0.1:${mock.port}
    api_key: \${TEST_PROVIDER_KEY}
`;
    const models = `  think:
    targets: [{provider: anthropic-up, model: claude-thinker}]
  tools:
    targets: [{provider: mock, model: tool-answer}]
  tools-split:
    targets: [{provider: mock, model: tool-split}]
  tools-card:
    targets: [{provider: mock, model: tool-card}]
  tools-legacy:
    targets: [{provider: mock, model: tool-legacy}]
  tools-broken:
    targets: [{provider: mock, model: tool-broken}]
  tools-escaped:
    targets: [{provider: mock, model: tool-escaped}]
`;
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { providers, models, governance: GOVERNANCE })));
    // The model's answers: one tool call whose arguments hold an e-mail address (whole,
    // and split inside the address over two stream fragments), or a card number.
    await h.setBehavior(mock.port, 'tool-answer', {
      tool_call: { name: 'send_email', arguments: [JSON.stringify({ to: EMAIL, subject: 'Invoice' })] },
    });
    await h.setBehavior(mock.port, 'tool-split', {
      tool_call: { name: 'send_email', arguments: ['{"to":"jane.d', 'oe@example.com","subject":"Invoice"}'] },
    });
    // OpenAI's deprecated function_call form, the address split as above.
    await h.setBehavior(mock.port, 'tool-legacy', {
      tool_call: { name: 'send_email', legacy: true, arguments: ['{"to":"jane.d', 'oe@example.com","subject":"Invoice"}'] },
    });
    // The '@' written as a JSON escape inside the arguments, the escape cut by the fragments.
    await h.setBehavior(mock.port, 'tool-escaped', {
      tool_call: { name: 'send_email', arguments: ['{"to":"jane.doe\\u00', '40example.com","subject":"Invoice"}'] },
    });
    // An answer cut off inside its arguments, just after the address: not JSON any more.
    await h.setBehavior(mock.port, 'tool-broken', {
      tool_call: { name: 'send_email', arguments: ['{"to":"jane.doe@example.com"', ',"subject":"Invoice"}'] },
      faults: [{ when: { always: true }, action: { malformed_after_tokens: 1 } }],
    });
    // Fragments 30 ms apart: the stream has begun (its head and first chunk sent) when the
    // number completes.
    await h.setBehavior(mock.port, 'tool-card', {
      token_delay_ms: 30,
      tool_call: { name: 'pay', arguments: ['{"amount":12,', '"card":"4111 1111 ', '1111 1111"}'] },
    });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  async function keyFor(profile) {
    const r = await fetch(url() + '/admin/keys', {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `tools-${profile}`, policy_profile: profile }),
    });
    const text = await r.text();
    assert.equal(r.status, 201, text);
    return JSON.parse(text).secret;
  }
  const openaiFor = async (profile) => new OpenAI({ baseURL: `${url()}/v1`, apiKey: await keyFor(profile), maxRetries: 0 });
  const anthropicFor = async (profile) => new Anthropic({ baseURL: url(), apiKey: await keyFor(profile), maxRetries: 0 });

  async function lastBody(format) {
    const r = await fetch(`http://127.0.0.1:${mock.port}/_mock/last-request/${format}`);
    if (r.status === 404) return undefined;
    return JSON.parse((await r.json()).body);
  }

  it('refuses a prompt whose history has a tool call with a card number, naming the policy, not the number', async () => {
    const client = await openaiFor('block-cards');
    await h.resetMock(mock.port);
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 16, tools: [SEND_EMAIL], messages: historyWith({ card: CARD, amount: 12 }) }),
      (e) => {
        assert.equal(e.status, 403);
        assert.match(e.message, /request blocked by policy 'block-cards': pii \(card\)/);
        assert.ok(!e.message.includes('4111'), e.message);
        return true;
      },
    );
    assert.equal(await lastBody('openai'), undefined, 'nothing reached the upstream');
  });

  it('reads the reasoning of an assistant turn in the history: refused under a blocking profile, redacted under another', async () => {
    const messages = [
      { role: 'user', content: 'Which card did I use?' },
      { role: 'assistant', content: 'The Visa.', reasoning_content: `The user paid with ${CARD}.` },
      {
        role: 'assistant',
        content: 'Anything else?',
        thinking_blocks: [{ type: 'thinking', thinking: `Mail ${EMAIL} the receipt.`, signature: 'c2ln' }],
      },
      { role: 'user', content: 'No, thanks.' },
    ];
    await h.resetMock(mock.port);
    await assert.rejects(
      (await openaiFor('block-cards')).chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 16, messages }),
      (e) => e.status === 403 && /request blocked by policy 'block-cards': pii \(card\)/.test(e.message) && !e.message.includes('4111'),
    );
    assert.equal(await lastBody('openai'), undefined, 'nothing reached the upstream');
    await (await openaiFor('redact-all')).chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 16, messages });
    const sent = await lastBody('openai');
    assert.equal(sent.messages[1].reasoning_content, 'The user paid with [REDACTED:CARD].');
    assert.equal(sent.messages[2].thinking_blocks[0].thinking, 'Mail [REDACTED:EMAIL] the receipt.');
    assert.equal(sent.messages[2].thinking_blocks[0].signature, 'c2ln');
  });

  it('redacts the card number in the history\'s tool-call arguments before the upstream, keeping them JSON', async () => {
    const client = await openaiFor('redact-all');
    await h.resetMock(mock.port);
    const r = await client.chat.completions.create({
      model: 'gpt-4o-mini', max_tokens: 16, tools: [SEND_EMAIL], messages: historyWith({ card: CARD, amount: 12 }),
    });
    assert.equal(r.choices[0].message.content, h.expectedAnswer(16));
    const sent = await lastBody('openai');
    const call = sent.messages[1].tool_calls[0];
    assert.equal(call.id, 'call_pay_1');
    assert.deepEqual(JSON.parse(call.function.arguments), { card: '[REDACTED:CARD]', amount: 12 });
    assert.ok(!JSON.stringify(sent).includes('4111'), 'no card digits left the gateway');
  });

  it('redacts an e-mail address in the arguments of a tool call the model answers with', async () => {
    const client = await openaiFor('block-cards');
    const r = await client.chat.completions.create({
      model: 'tools', max_tokens: 16, tools: [SEND_EMAIL], messages: [{ role: 'user', content: 'Mail the invoice to Jane.' }],
    });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const call = r.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'send_email');
    assert.deepEqual(JSON.parse(call.function.arguments), { to: '[REDACTED:EMAIL]', subject: 'Invoice' });
  });

  it('redacts the address when a stream splits it across two argument fragments', async () => {
    const client = await openaiFor('block-cards');
    const request = { model: 'tools-split', max_tokens: 16, tools: [SEND_EMAIL], messages: [{ role: 'user', content: 'Mail the invoice to Jane.' }] };
    // Raw chunks: no fragment carries any part of the address.
    const stream = await client.chat.completions.create({ ...request, stream: true });
    const fragments = [];
    let finish;
    for await (const chunk of stream) {
      for (const call of chunk.choices[0]?.delta?.tool_calls ?? []) fragments.push(call.function?.arguments ?? '');
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'tool_calls');
    const joined = fragments.join('');
    assert.ok(!joined.includes('jane') && !joined.includes('example.com'), joined);
    assert.deepEqual(JSON.parse(joined), { to: '[REDACTED:EMAIL]', subject: 'Invoice' });
    // The SDK's own accumulation agrees.
    const final = await client.chat.completions.stream(request).finalChatCompletion();
    const call = final.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'send_email');
    assert.deepEqual(JSON.parse(call.function.arguments), { to: '[REDACTED:EMAIL]', subject: 'Invoice' });
  });

  it('redacts the address in a legacy function_call, whole and streamed in fragments', async () => {
    const client = await openaiFor('block-cards');
    const request = { model: 'tools-legacy', max_tokens: 16, messages: [{ role: 'user', content: 'Mail the invoice to Jane.' }] };
    const r = await client.chat.completions.create(request);
    assert.equal(r.choices[0].finish_reason, 'function_call');
    assert.equal(r.choices[0].message.function_call.name, 'send_email');
    assert.deepEqual(JSON.parse(r.choices[0].message.function_call.arguments), { to: '[REDACTED:EMAIL]', subject: 'Invoice' });
    const stream = await client.chat.completions.create({ ...request, stream: true });
    const fragments = [];
    let finish;
    for await (const chunk of stream) {
      fragments.push(chunk.choices[0]?.delta?.function_call?.arguments ?? '');
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'function_call');
    const joined = fragments.join('');
    assert.ok(!joined.includes('jane') && !joined.includes('example.com'), joined);
    assert.deepEqual(JSON.parse(joined), { to: '[REDACTED:EMAIL]', subject: 'Invoice' });
  });

  it('finds an address spelled with a \\u escape inside the arguments, whole and streamed with the escape cut', async () => {
    const client = await openaiFor('block-cards');
    const request = { model: 'tools-escaped', max_tokens: 16, tools: [SEND_EMAIL], messages: [{ role: 'user', content: 'Mail Jane.' }] };
    const r = await client.chat.completions.create(request);
    assert.deepEqual(JSON.parse(r.choices[0].message.tool_calls[0].function.arguments), { to: '[REDACTED:EMAIL]', subject: 'Invoice' });
    const stream = await client.chat.completions.create({ ...request, stream: true });
    const fragments = [];
    for await (const chunk of stream) for (const call of chunk.choices[0]?.delta?.tool_calls ?? []) fragments.push(call.function?.arguments ?? '');
    const joined = fragments.join('');
    assert.ok(!joined.includes('example.com'), joined);
    assert.deepEqual(JSON.parse(joined), { to: '[REDACTED:EMAIL]', subject: 'Invoice' });
  });

  it('withholds an answer it cannot read when it may hold what the policy acts on, naming the policy', async () => {
    const key = await keyFor('block-cards');
    const r = await fetch(`${url()}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tools-broken', max_tokens: 16, messages: [{ role: 'user', content: 'Mail it.' }] }),
    });
    const text = await r.text();
    assert.equal(r.status, 400, text);
    assert.ok(!text.includes('jane') && !text.includes('example.com'), text);
    const error = JSON.parse(text).error;
    assert.equal(error.code, 'content_filter');
    assert.match(error.message, /response blocked by policy 'block-cards': answer_not_inspectable \(unreadable\)/);
    // Without a profile that reads answers, the same bytes pass as the upstream sent them.
    const made = await fetch(url() + '/admin/keys', {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'tools-no-profile' }),
    });
    assert.equal(made.status, 201);
    const plain = await fetch(`${url()}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${(await made.json()).secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tools-broken', max_tokens: 16, messages: [{ role: 'user', content: 'Mail it.' }] }),
    });
    assert.equal(plain.status, 200);
    assert.ok((await plain.text()).includes('jane.doe@example.com'));
  });

  it('ends a stream whose tool-call arguments hold a card number under a blocking profile, without its digits', async () => {
    const client = await openaiFor('block-cards');
    const seen = [];
    await assert.rejects(
      (async () => {
        const stream = await client.chat.completions.create({
          model: 'tools-card', max_tokens: 16, stream: true, tools: [SEND_EMAIL], messages: [{ role: 'user', content: 'Pay it.' }],
        });
        for await (const chunk of stream) seen.push(JSON.stringify(chunk));
      })(),
      /response blocked by policy 'block-cards': pii \(card\)/,
    );
    assert.ok(seen.length > 0, 'the stream had begun');
    assert.ok(!seen.join('').includes('1111'), seen.join('\n'));
  });

  it('gives an Anthropic caller the redacted arguments as tool_use input, plain and streamed, and redacts its history', async () => {
    const client = await anthropicFor('block-cards');
    const tools = [{ name: 'send_email', description: 'Send an e-mail', input_schema: SEND_EMAIL.function.parameters }];
    const m = await client.messages.create({ model: 'tools', max_tokens: 64, tools, messages: [{ role: 'user', content: 'Mail Jane.' }] });
    assert.equal(m.stop_reason, 'tool_use');
    const use = m.content.find((b) => b.type === 'tool_use');
    assert.ok(use, JSON.stringify(m.content));
    assert.equal(use.name, 'send_email');
    assert.deepEqual(use.input, { to: '[REDACTED:EMAIL]', subject: 'Invoice' });

    const streamed = await client.messages
      .stream({ model: 'tools-split', max_tokens: 64, tools, messages: [{ role: 'user', content: 'Mail Jane.' }] })
      .finalMessage();
    const streamedUse = streamed.content.find((b) => b.type === 'tool_use');
    assert.deepEqual(streamedUse.input, { to: '[REDACTED:EMAIL]', subject: 'Invoice' });

    // Its own history: a tool_use input with an address reaches the upstream redacted.
    await h.resetMock(mock.port);
    await client.messages.create({
      model: 'gpt-4o-mini', max_tokens: 16, tools,
      messages: [
        { role: 'user', content: 'Mail Jane.' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_01', name: 'send_email', input: { to: EMAIL, subject: 'Invoice' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: 'sent' }] },
      ],
    });
    const sent = await lastBody('openai');
    const call = sent.messages.find((msg) => msg.tool_calls).tool_calls[0];
    assert.deepEqual(JSON.parse(call.function.arguments), { to: '[REDACTED:EMAIL]', subject: 'Invoice' });
    assert.ok(!JSON.stringify(sent).includes(EMAIL));
  });

  // The mock's Anthropic answers to a request with thinking start with a signed thinking
  // block, "The mock thinks before it answers." (mock/include/mock/wire.hpp): the output
  // rules read it, whole and streamed.
  it('applies the output rules to the model\'s reasoning, plain and streamed', async () => {
    const client = await anthropicFor('deny-thoughts');
    const request = { model: 'think', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'Think.' }] };
    await assert.rejects(client.messages.create(request), (e) => {
      assert.equal(e.status, 400);
      assert.match(e.error.error.message, /response blocked by policy 'deny-thoughts': deny_pattern \(mock-thoughts\)/);
      return true;
    });
    await assert.rejects(client.messages.stream(request).finalMessage(), /blocked by policy 'deny-thoughts'/);
  });
  // simdjson reads the first of two equal keys, most upstream servers the last: with
  // both in the body a policy would judge one value and the upstream act on the other.
  it('refuses a body that names a key twice in one object, so a second "content" cannot slip past the policy', async () => {
    const key = await keyFor('block-cards');
    for (const body of [
      '{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hello","content":"card 4111 1111 1111 1111"}]}',
      '{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hello"}],"messages":[{"role":"user","content":"card 4111 1111 1111 1111"}]}',
      '{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":[{"type":"text","text":"Hi","text":"card 4111 1111 1111 1111"}]}]}',
    ]) {
      await h.resetMock(mock.port);
      const r = await fetch(`${url()}/v1/chat/completions`, {
        method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body,
      });
      const text = await r.text();
      assert.equal(r.status, 400, text);
      const err = JSON.parse(text).error;
      assert.equal(err.type, 'invalid_request_error');
      assert.match(err.message, /twice in one object/);
      assert.ok(!text.includes('4111'), text);
      assert.equal(await lastBody('openai'), undefined, 'nothing reached the upstream');
    }
  });
});
