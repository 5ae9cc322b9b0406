// Policies on documents and citations end to end, with the official Anthropic SDK (and
// the OpenAI one) as callers: a plain-text document's personal data is redacted before it
// reaches the upstream (bulwark-mock records what it received), a PDF the gateway cannot
// read is refused under a profile with content rules unless the profile lets it through,
// and the cited_text of an answer's citations gets the output rules, plain and streamed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import * as h from './harness.mjs';

const MASTER = 'e2e-master-key-0123456789-abcdefghijklmnop';
const PDF = Buffer.from('%PDF-1.4\n% a page that says: Contact jane.doe@example.com\n').toString('base64');
// What an upstream that read the PDF quotes from it.
const CITED = 'Contact: jane.doe@example.com, ward 4';

const GOVERNANCE = `governance:
  auth: keys
  key_refresh: 200ms
  policies:
    strict:
      pii: {email: redact, card: block}
    pdf-allow:
      pii: {email: redact, card: block}
      uninspectable_documents: allow
    pdf-flag:
      pii: {email: redact, card: block}
      uninspectable_documents: flag
admin:
  master_key: ${MASTER}
`;

// An Anthropic upstream whose answers cite the caller's document, quoting personal data
// from it (as Anthropic does when it reads a PDF the gateway could not).
function citingUpstream() {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const request = JSON.parse(body);
      const cited = request.model === 'claude-citing-card' ? 'Card: 4111 1111 1111 1111' : CITED;
      const citation = { type: 'page_location', cited_text: cited, document_index: 0, document_title: 'Chart', start_page_number: 1, end_page_number: 2 };
      const usage = { input_tokens: 12, output_tokens: 8 };
      if (!request.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          id: 'msg_cited', type: 'message', role: 'assistant', model: request.model,
          content: [{ type: 'text', text: 'The chart lists a contact.', citations: [citation] }],
          stop_reason: 'end_turn', stop_sequence: null, usage,
        }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const event = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
      res.end(
        event('message_start', { message: { id: 'msg_cited', type: 'message', role: 'assistant', model: request.model, content: [],
          stop_reason: null, stop_sequence: null, usage: { input_tokens: 12, output_tokens: 0 } } }) +
        event('content_block_start', { index: 0, content_block: { type: 'text', text: '', citations: [] } }) +
        event('content_block_delta', { index: 0, delta: { type: 'citations_delta', citation } }) +
        event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'The chart lists ' } }) +
        event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'a contact.' } }) +
        event('content_block_stop', { index: 0 }) +
        event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 8 } }) +
        event('message_stop', {}),
      );
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('policies on documents and citations', () => {
  let mock, upstream, gw;
  const url = () => `http://127.0.0.1:${gw.port}`;

  before(async () => {
    mock = await h.startMock();
    upstream = await citingUpstream();
    const providers = `  anthropic-up:
    kind: anthropic
    base_url: http://127.0.0.1:${mock.port}
    api_key: \${TEST_PROVIDER_KEY}
  citing-up:
    kind: anthropic
    base_url: http://127.0.0.1:${upstream.address().port}
    api_key: upstream-key
`;
    const models = `  doc-claude:
    targets: [{provider: anthropic-up, model: claude-model}]
  cite-claude:
    targets: [{provider: citing-up, model: claude-citing}]
  cite-card:
    targets: [{provider: citing-up, model: claude-citing-card}]
`;
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { providers, models, governance: GOVERNANCE })));
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
    upstream.close();
  });

  async function admin(method, route, body) {
    const r = await fetch(url() + route, {
      method,
      headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, text: await r.text() };
  }

  // An Anthropic SDK client whose key uses `profile`.
  async function anthropicFor(profile) {
    const { status, text } = await admin('POST', '/admin/keys', { name: `docs-${profile}`, policy_profile: profile });
    assert.equal(status, 201, text);
    return { client: new Anthropic({ baseURL: url(), apiKey: JSON.parse(text).secret, maxRetries: 0 }), secret: JSON.parse(text).secret };
  }

  async function lastBody(format) {
    const r = await fetch(`http://127.0.0.1:${mock.port}/_mock/last-request/${format}`);
    if (r.status === 404) return undefined;
    return JSON.parse((await r.json()).body);
  }

  async function auditRecord(requestId) {
    for (let i = 0; i < 100; i++) {
      const { text } = await admin('GET', '/admin/audit?from_seq=1&limit=100000');
      const rec = text.trim().split('\n').filter((l) => l).map((l) => JSON.parse(l).record).find((r) => r && r.request_id === requestId);
      if (rec) return rec;
      await h.sleep(50);
    }
    return undefined;
  }

  const pdfDocument = { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF }, title: 'Chart' };

  it('redacts an e-mail address in a plain-text document before it reaches the upstream', async () => {
    const { client } = await anthropicFor('strict');
    await h.resetMock(mock.port);
    const m = await client.messages.create({
      model: 'doc-claude', max_tokens: 64,
      messages: [{ role: 'user', content: [
        { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'Patient: J. Doe\nContact: jane.doe@example.com\nStable.' },
          title: 'Chart', context: 'Filed by nurse.ratched@example.com' },
        { type: 'text', text: 'Summarise the chart.' },
      ] }],
    });
    assert.equal(m.type, 'message');
    const sent = await lastBody('anthropic');
    const doc = sent.messages[0].content[0];
    assert.equal(doc.type, 'document');
    assert.deepEqual(doc.source, { type: 'text', media_type: 'text/plain', data: 'Patient: J. Doe\nContact: [REDACTED:EMAIL]\nStable.' });
    assert.equal(doc.context, 'Filed by [REDACTED:EMAIL]');
    assert.ok(!JSON.stringify(sent).includes('@example.com'), 'no address left the gateway');
  });

  it('redacts a plain-text file part an OpenAI caller sends to an OpenAI upstream (the passthrough path)', async () => {
    const { secret } = await anthropicFor('strict');
    const openai = new OpenAI({ baseURL: `${url()}/v1`, apiKey: secret, maxRetries: 0 });
    await h.resetMock(mock.port);
    await openai.chat.completions.create({
      model: 'gpt-4o-mini', max_tokens: 16,
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'Summarise.' },
        { type: 'file', file: { file_data: `data:text/plain;base64,${Buffer.from('Write to jane.doe@example.com').toString('base64')}`, filename: 'notes.txt' } },
      ] }],
    });
    const sent = await lastBody('openai');
    const fileData = sent.messages[0].content[1].file.file_data;
    assert.match(fileData, /^data:text\/plain;base64,/);
    assert.equal(Buffer.from(fileData.split(',')[1], 'base64').toString(), 'Write to [REDACTED:EMAIL]');
  });

  it('refuses a PDF under a profile with PII rules, in Anthropic\'s error shape, before any upstream call', async () => {
    const { client } = await anthropicFor('strict');
    await h.resetMock(mock.port);
    await assert.rejects(
      client.messages.create({ model: 'doc-claude', max_tokens: 64, messages: [{ role: 'user', content: [pdfDocument, { type: 'text', text: 'Summarise.' }] }] }),
      (e) => {
        assert.equal(e.status, 403);
        assert.equal(e.error.type, 'error');
        assert.equal(e.error.error.type, 'permission_error');
        assert.match(e.error.error.message, /policy 'strict': document_not_inspectable \(pdf\)/);
        return true;
      },
    );
    assert.equal(await lastBody('anthropic'), undefined, 'the PDF never reached the upstream');
  });

  it('lets the PDF through with uninspectable_documents: allow', async () => {
    const { client } = await anthropicFor('pdf-allow');
    await h.resetMock(mock.port);
    const m = await client.messages.create({ model: 'doc-claude', max_tokens: 64, messages: [{ role: 'user', content: [pdfDocument, { type: 'text', text: 'Summarise.' }] }] });
    assert.equal(m.type, 'message');
    const doc = (await lastBody('anthropic')).messages[0].content[0];
    assert.deepEqual(doc.source, { type: 'base64', media_type: 'application/pdf', data: PDF });
  });

  it('lets the PDF through with flag and records it in the audit trail', async () => {
    const { client } = await anthropicFor('pdf-flag');
    const { response } = await client.messages
      .create({ model: 'doc-claude', max_tokens: 64, messages: [{ role: 'user', content: [pdfDocument, { type: 'text', text: 'Summarise.' }] }] })
      .withResponse();
    const record = await auditRecord(response.headers.get('x-bulwark-request-id'));
    assert.ok(record, 'the request is in the audit trail');
    assert.ok(record.policy.includes('input:allow document_not_inspectable=flagx1'), JSON.stringify(record.policy));
  });

  it('redacts the cited_text of a citation in a plain answer', async () => {
    const { client } = await anthropicFor('pdf-flag');
    const m = await client.messages.create({
      model: 'cite-claude', max_tokens: 64,
      messages: [{ role: 'user', content: [{ ...pdfDocument, citations: { enabled: true } }, { type: 'text', text: 'Who is the contact?' }] }],
    });
    assert.equal(m.content[0].text, 'The chart lists a contact.');
    assert.equal(m.content[0].citations.length, 1);
    assert.equal(m.content[0].citations[0].cited_text, 'Contact: [REDACTED:EMAIL], ward 4');
    assert.equal(m.content[0].citations[0].start_page_number, 1);
  });

  it('redacts the cited_text of a citation in a streamed answer', async () => {
    const { client } = await anthropicFor('pdf-flag');
    const s = client.messages.stream({
      model: 'cite-claude', max_tokens: 64,
      messages: [{ role: 'user', content: [{ ...pdfDocument, citations: { enabled: true } }, { type: 'text', text: 'Who is the contact?' }] }],
    });
    const seen = [];
    s.on('citation', (c) => seen.push(c));
    const m = await s.finalMessage();
    assert.equal(m.content[0].text, 'The chart lists a contact.');
    assert.equal(seen.length, 1);
    assert.equal(seen[0].cited_text, 'Contact: [REDACTED:EMAIL], ward 4');
    assert.deepEqual(m.content[0].citations.map((c) => c.cited_text), ['Contact: [REDACTED:EMAIL], ward 4']);
  });

  it('ends the answer when a cited_text holds a card number, plain or streamed, without its digits', async () => {
    const { client } = await anthropicFor('pdf-flag');
    const request = {
      model: 'cite-card', max_tokens: 64,
      messages: [{ role: 'user', content: [{ ...pdfDocument, citations: { enabled: true } }, { type: 'text', text: 'Which card?' }] }],
    };
    await assert.rejects(client.messages.create(request), (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.error.error.type, 'invalid_request_error');
      assert.match(e.error.error.message, /response blocked by policy 'pdf-flag': pii \(card\)/);
      assert.ok(!e.message.includes('4111'));
      return true;
    });
    const seen = [];
    const s = client.messages.stream(request);
    s.on('citation', (c) => seen.push(c));
    await assert.rejects(s.finalMessage(), /blocked by policy 'pdf-flag'/);
    assert.ok(!JSON.stringify(seen).includes('4111'), 'no digits reached the caller');
  });
});
