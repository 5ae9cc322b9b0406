// Governance end to end: virtual keys through the admin API and the CLI, the official
// openai SDK as the caller, rate limits, budgets under a concurrent burst, policies,
// spend that survives kill -9, and the audit chain.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import * as h from './harness.mjs';

const MASTER = 'e2e-master-key-0123456789-abcdefghijklmnop';

// Prices for the mock's models: $1,000 per million tokens makes each answer cost cents.
const PRICES = `prices_as_of: "2026-11-24"
models:
  mock-fast: {input: "1000", output: "1000"}
  primary-model: {input: "1000", output: "1000"}
  backup-model: {input: "1000", output: "1000"}
  lonely-model: {input: "1000", output: "1000"}
`;

const GOVERNANCE = `governance:
  auth: keys
  prices: prices.yaml
  audit_content: full
  key_refresh: 200ms
  policies:
    strict:
      pii: {email: redact, card: block}
    no-w7:
      deny: [{id: no-w7, pattern: "w7 ", action: block}]
    email-only:
      pii: {email: redact}
admin:
  master_key: ${MASTER}
`;

function gatewayUrl(gw) {
  return `http://127.0.0.1:${gw.port}`;
}

async function admin(gw, method, route, body) {
  const r = await fetch(gatewayUrl(gw) + route, {
    method,
    headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, json };
}

function sdk(gw, apiKey) {
  return new OpenAI({ baseURL: `${gatewayUrl(gw)}/v1`, apiKey, maxRetries: 0 });
}

const ask = (client, extra = {}) =>
  client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: 'say something nice' }], ...extra });

function cli(config, ...args) {
  return spawnSync(h.bulwarkBin, [...args, '--config', config], { encoding: 'utf8', env: { ...process.env, TEST_PROVIDER_KEY: h.PROVIDER_KEY } });
}

describe('governance', () => {
  let mock, gw, config;
  before(async () => {
    mock = await h.startMock();
    // `guarded` carries a model-level policy profile.
    const models = '  guarded:\n    policy: strict\n    targets:\n      - provider: mock\n        model: mock-fast\n';
    config = h.writeConfig(h.gatewayConfig(mock.port, { governance: GOVERNANCE, models }));
    writeFileSync(path.join(path.dirname(config), 'prices.yaml'), PRICES);
    gw = await h.startGateway(config);
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  it('refuses callers without a key or with an unknown one, in OpenAI error shape', async () => {
    await assert.rejects(ask(sdk(gw, 'sk-not-a-bulwark-key')), (e) => e.status === 401 && e.code === 'invalid_api_key');
    await assert.rejects(ask(sdk(gw, 'bwk_' + 'A'.repeat(40))), (e) => e.status === 401);
    const r = await fetch(`${gatewayUrl(gw)}/v1/chat/completions`, { method: 'POST', body: '{"model":"gpt-4o-mini","messages":[]}' });
    assert.equal(r.status, 401);
  });

  it('guards the admin API with the master key', async () => {
    const r = await fetch(`${gatewayUrl(gw)}/admin/keys`, { headers: { authorization: 'Bearer wrong-master-key-0123456789-abcdefghij' } });
    assert.equal(r.status, 401);
  });

  it('creates a key shown once, serves it, prices the answer and never stores the secret', async () => {
    const created = await admin(gw, 'POST', '/admin/keys', { name: 'alice', models: ['gpt-*'] });
    assert.equal(created.status, 201);
    const secret = created.json.secret;
    assert.match(secret, /^bwk_[0-9A-Za-z]{40}$/);
    assert.equal(created.json.key.display_prefix, secret.slice(0, 10));
    const { data, response } = await ask(sdk(gw, secret)).withResponse();
    assert.equal(data.choices[0].message.content, h.expectedAnswer(16));
    // 3 prompt + 16 completion tokens at $1,000 per million.
    assert.equal(response.headers.get('x-bulwark-cost-usd'), '0.019000');
    const shown = await admin(gw, 'GET', `/admin/keys/${created.json.key.id}`);
    assert.equal(shown.status, 200);
    assert.ok(!JSON.stringify(shown.json).includes(secret.slice(10)), 'the secret never comes back');
    const listed = await admin(gw, 'GET', '/admin/keys');
    assert.ok(listed.json.data.some((k) => k.id === created.json.key.id));
  });

  it('enforces the model allow-list with 403', async () => {
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'narrow', models: ['gpt-*'] });
    await assert.rejects(
      sdk(gw, json.secret).chat.completions.create({ model: 'lonely', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e.status === 403 && e.code === 'model_not_allowed',
    );
  });

  it('limits requests per minute with x-ratelimit headers and Retry-After on 429', async () => {
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'slow', rpm: 2 });
    const client = sdk(gw, json.secret);
    const first = await ask(client).withResponse();
    assert.equal(first.response.headers.get('x-ratelimit-limit-requests'), '2');
    assert.equal(first.response.headers.get('x-ratelimit-remaining-requests'), '1');
    await ask(client);
    await assert.rejects(ask(client), (e) => {
      assert.equal(e.status, 429);
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.ok(Number(e.headers.get('retry-after')) >= 1);
      assert.ok(Number(e.headers.get('retry-after-ms')) > 0);
      return true;
    });
  });

  it('caps a team: two keys share its limit', async () => {
    const team = await admin(gw, 'POST', '/admin/teams', { id: 'search', name: 'Search', rpm: 3 });
    assert.equal(team.status, 201);
    const a = (await admin(gw, 'POST', '/admin/keys', { name: 'a', team_id: 'search' })).json.secret;
    const b = (await admin(gw, 'POST', '/admin/keys', { name: 'b', team_id: 'search' })).json.secret;
    await ask(sdk(gw, a));
    await ask(sdk(gw, b));
    await ask(sdk(gw, a));
    await assert.rejects(ask(sdk(gw, b)), (e) => e.status === 429 && /team/.test(e.message));
  });

  it('holds a budget worth 10 answers under a burst of 50 concurrent requests', async () => {
    // Each answer costs $0.019; admission reserves its maximum (~$0.08) first.
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'budgeted', budget_usd: '0.19', budget_period: 'day' });
    const client = sdk(gw, json.secret);
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 16, latency_ms: 50 });
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => ask(client)));
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 16 });
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const refused = results.filter((r) => r.status === 'rejected');
    assert.ok(ok >= 1, 'some requests are served');
    assert.ok(refused.length >= 1, 'the burst is cut off');
    for (const r of refused) {
      assert.equal(r.reason.status, 429);
      assert.equal(r.reason.code, 'budget_exceeded');
      assert.match(r.reason.message, /budget/i);
    }
    const shown = await admin(gw, 'GET', `/admin/keys/${json.key.id}`);
    const spent = Number(shown.json.budget.spent_usd);
    assert.ok(Math.abs(spent - ok * 0.019) < 1e-9, `spent ${spent} for ${ok} answers`);
    assert.ok(ok <= 10, `${ok} answers fit a budget worth 10`);
    assert.ok(spent <= 0.19 + 1e-9, `spent ${spent} stays within the $0.19 budget`);
    assert.equal(Number(shown.json.budget.reserved_usd), 0);
  });

  it('revokes at once and rotates with a grace period', async () => {
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'temp' });
    await ask(sdk(gw, json.secret));
    const rotated = await admin(gw, 'POST', `/admin/keys/${json.key.id}/rotate`, { grace: '1h' });
    assert.equal(rotated.status, 200);
    await ask(sdk(gw, json.secret)); // the old secret, within its grace
    await ask(sdk(gw, rotated.json.secret));
    assert.equal((await admin(gw, 'DELETE', `/admin/keys/${json.key.id}`)).status, 200);
    await assert.rejects(ask(sdk(gw, rotated.json.secret)), (e) => e.status === 401);
    await assert.rejects(ask(sdk(gw, json.secret)), (e) => e.status === 401);
  });

  it('applies the key policy: PII redacted before it leaves, card numbers blocked', async () => {
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'pii', policy_profile: 'strict' });
    const client = sdk(gw, json.secret);
    const { response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'mail bob.smith@example.com about it' }] })
      .withResponse();
    const id = response.headers.get('x-bulwark-request-id');
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'my card is 4111 1111 1111 1111' }] }),
      (e) => e.status === 403 && e.code === 'policy_violation' && !e.message.includes('4111'),
    );
    // The audit trail (content: full) holds the prompt as it went upstream.
    const audit = await admin(gw, 'GET', '/admin/audit?limit=100000');
    const record = audit.json
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).record)
      .find((r) => r.request_id === id);
    assert.ok(record, 'the request is in the audit log');
    assert.ok(!JSON.stringify(record).includes('bob.smith@example.com'));
    assert.match(JSON.stringify(record), /REDACTED:EMAIL/);
  });

  it('chooses the policy profile by key, then team, then model', async () => {
    const card = (client, model = 'gpt-4o-mini') =>
      client.chat.completions.create({ model, max_tokens: 8, messages: [{ role: 'user', content: 'my card is 4111 1111 1111 1111' }] });
    const blocked = (e) => e.status === 403 && e.code === 'policy_violation' && /policy 'strict'/.test(e.message);
    // A team's profile holds for its keys that name none.
    const team = await admin(gw, 'POST', '/admin/teams', { name: 'careful', policy_profile: 'strict' });
    assert.equal(team.status, 201, JSON.stringify(team.json));
    assert.equal(team.json.policy_profile, 'strict');
    const member = await admin(gw, 'POST', '/admin/keys', { name: 'member', team_id: team.json.id });
    await assert.rejects(card(sdk(gw, member.json.secret)), blocked);
    // A key's own profile comes first: email-only has no card rule.
    const own = await admin(gw, 'POST', '/admin/keys', { name: 'own', team_id: team.json.id, policy_profile: 'email-only' });
    const answered = await card(sdk(gw, own.json.secret));
    assert.ok(answered.choices[0].message.content.length > 0);
    // Without either, the requested model's profile: `guarded` has one, gpt-4o-mini none.
    const loose = await admin(gw, 'POST', '/admin/keys', { name: 'loose' });
    await assert.rejects(card(sdk(gw, loose.json.secret), 'guarded'), blocked);
    assert.ok((await card(sdk(gw, loose.json.secret))).choices[0].message.content.length > 0);
    // The team's profile can be changed and cleared; a name no profile has is refused.
    const unknown = await admin(gw, 'PATCH', `/admin/teams/${team.json.id}`, { policy_profile: 'nope' });
    assert.equal(unknown.status, 400);
    assert.match(unknown.json.error.message, /policy_profile 'nope'/);
    const badKey = await admin(gw, 'POST', '/admin/keys', { name: 'typo', policy_profile: 'strikt' });
    assert.equal(badKey.status, 400);
    const cleared = await admin(gw, 'PATCH', `/admin/teams/${team.json.id}`, { policy_profile: '' });
    assert.equal(cleared.status, 200);
    assert.equal(cleared.json.policy_profile, '');
    await h.sleep(400);  // key_refresh: 200ms
    assert.ok((await card(sdk(gw, member.json.secret))).choices[0].message.content.length > 0);
  });

  it('applies output rules to answers, streamed or not', async () => {
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'deny', policy_profile: 'no-w7' });
    const client = sdk(gw, json.secret);
    await assert.rejects(ask(client), (e) => e.status === 400 && e.code === 'content_filter');
    // Tokens paced as a model sends them: the gateway reads what the socket holds, so a
    // stream sent whole would be judged before its first token went out.
    await h.setBehavior(mock.port, 'mock-fast', { token_delay_ms: 5 });
    try {
      const stream = await ask(client, { stream: true });
      let text = '';
      await assert.rejects(
        (async () => {
          for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
        })(),
        /blocked by policy 'no-w7'/,
      );
      assert.ok(!text.includes('w7'), `nothing of the blocked part reached the caller: ${text}`);
    } finally {
      await fetch(`http://127.0.0.1:${mock.port}/_mock/behaviors/mock-fast`, { method: 'DELETE' });
    }
  });

  it('reports spend by key and model, from the admin API and the CLI', async () => {
    const r = await admin(gw, 'GET', '/admin/spend?by=model');
    assert.equal(r.status, 200);
    const row = r.json.data.find((d) => d.group === 'gpt-4o-mini');
    assert.ok(row && row.requests > 0 && Number(row.cost_usd) > 0);
    const csv = cli(config, 'spend', '--by', 'key', '--format', 'csv');
    assert.equal(csv.status, 0, csv.stderr);
    assert.match(csv.stdout.split('\n')[0], /^key,requests,input_tokens/);
    assert.ok(csv.stdout.trim().split('\n').length > 2);
  });

  it('picks up a key created by the CLI while the gateway runs', async () => {
    const made = cli(config, 'keys', 'create', '--name', 'from-cli', '--models', 'gpt-*');
    assert.equal(made.status, 0, made.stderr);
    const secret = JSON.parse(made.stdout).secret;
    let served = false;
    for (let i = 0; i < 50 && !served; i++) {
      try {
        await ask(sdk(gw, secret));
        served = true;
      } catch (e) {
        assert.equal(e.status, 401);
        await h.sleep(100);
      }
    }
    assert.ok(served, 'the gateway saw the new key within its refresh interval');
  });

  it('keeps every answered request in the ledger through kill -9 under load', async () => {
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'durable' });
    const client = sdk(gw, json.secret);
    const concurrency = 8;
    let received = 0;
    let stop = false;
    const callers = Array.from({ length: concurrency }, async () => {
      while (!stop) {
        try {
          await ask(client);
          received++;
        } catch {
          return;
        }
      }
    });
    await h.sleep(800);
    stop = true;
    await h.stopProcess(gw, 'SIGKILL');
    await Promise.allSettled(callers);
    gw = await h.startGateway(config);
    const spend = await admin(gw, 'GET', '/admin/spend?by=key');
    const row = spend.json.data.find((d) => d.group === json.key.id);
    assert.ok(received > 10, `load was running (${received} answers)`);
    // Recorded before each answer's last byte: every answer a client got is there, plus
    // at most the requests that were in flight when the process died.
    assert.ok(row.requests >= received && row.requests <= received + concurrency, `ledger ${row.requests}, answers ${received}`);
    assert.equal(Number(row.cost_usd).toFixed(6), (row.requests * 0.019).toFixed(6));
  });

  it('verifies the audit chain and detects a tampered record', async () => {
    const verify = await admin(gw, 'GET', '/admin/audit/verify');
    assert.equal(verify.json.ok, true, JSON.stringify(verify.json));
    assert.ok(verify.json.checked > 20);
    const clean = cli(config, 'audit', 'verify');
    assert.equal(clean.status, 0, clean.stdout + clean.stderr);
    // An insider edits one record's body directly in the database.
    await h.stopProcess(gw);
    const db = path.join(path.dirname(config), 'bulwark-data', 'bulwark.db');
    const sql = spawnSync('sqlite3', [
      db,
      "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET body = replace(body, '\"status\":', '\"status\":9') WHERE seq = 5;",
    ], { encoding: 'utf8' });
    assert.equal(sql.status, 0, sql.stderr);
    const tampered = cli(config, 'audit', 'verify');
    assert.equal(tampered.status, 1, tampered.stdout + tampered.stderr);
    assert.match(tampered.stdout, /BROKEN at seq 5/);
    gw = await h.startGateway(config);
  });

  it('refuses an expired key', async () => {
    const expires = new Date(Date.now() + 1500).toISOString();
    const { json, status } = await admin(gw, 'POST', '/admin/keys', { name: 'short-lived', expires_at: expires });
    assert.equal(status, 201, JSON.stringify(json));
    await ask(sdk(gw, json.secret));
    await h.sleep(1700);
    await assert.rejects(ask(sdk(gw, json.secret)), (e) => e.status === 401 && /expired/i.test(e.message));
  });
});

// An upstream whose answers carry personal data, split across stream chunks the way a
// model's tokens would split it.
function piiUpstream() {
  const answer = (model) =>
    model === 'pii-card' ? 'Your card 4111 1111 1111 1111 is on file.' : 'Write to jane.doe@example.com or call +1 415 555 0100 today.';
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const request = JSON.parse(body);
      const text = answer(request.model);
      if (!request.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'chatcmpl-pii', object: 'chat.completion', created: 1, model: request.model,
          choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 5, completion_tokens: 12, total_tokens: 17 } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta, finish = null) =>
        `data: ${JSON.stringify({ id: 'chatcmpl-pii', object: 'chat.completion.chunk', created: 1, model: request.model,
          choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      const events = [chunk({ role: 'assistant', content: '' })];
      for (let i = 0; i < text.length; i += 3) events.push(chunk({ content: text.slice(i, i + 3) }));
      events.push(chunk({}, 'stop'));
      events.push(`data: ${JSON.stringify({ id: 'chatcmpl-pii', object: 'chat.completion.chunk', created: 1, model: request.model, choices: [],
        usage: { prompt_tokens: 5, completion_tokens: 12, total_tokens: 17 } })}\n\n`);
      events.push('data: [DONE]\n\n');
      // One event at a time, as a model streams: the gateway reads what the socket holds,
      // so an answer written whole would be judged before its first token went out.
      const next = () => {
        res.write(events.shift());
        if (events.length === 0) res.end();
        else setTimeout(next, 2);
      };
      next();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('policies on answers with personal data', () => {
  let mock, upstream, gw, client;
  before(async () => {
    mock = await h.startMock();
    upstream = await piiUpstream();
    const providers = `  pii-up:\n    kind: openai\n    base_url: http://127.0.0.1:${upstream.address().port}/v1\n`;
    const models = `  pii-mail:\n    targets: [{provider: pii-up, model: pii-mail}]\n  pii-card:\n    targets: [{provider: pii-up, model: pii-card}]\n`;
    const governance = 'governance:\n  auth: keyless\n  default_policy: strict\n  policies:\n    strict:\n      pii: {email: redact, phone: redact, card: block}\n';
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { providers, models, governance })));
    client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
    upstream.close();
  });

  it('redacts an e-mail address and a phone number split across stream chunks', async () => {
    const stream = await client.chat.completions.create({ model: 'pii-mail', stream: true, messages: [{ role: 'user', content: 'contact?' }] });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'Write to [REDACTED:EMAIL] or call [REDACTED:PHONE] today.');
  });

  it('redacts the same in a plain answer', async () => {
    const r = await client.chat.completions.create({ model: 'pii-mail', messages: [{ role: 'user', content: 'contact?' }] });
    assert.equal(r.choices[0].message.content, 'Write to [REDACTED:EMAIL] or call [REDACTED:PHONE] today.');
  });

  it('blocks a card number mid-stream without letting its digits through', async () => {
    const stream = await client.chat.completions.create({ model: 'pii-card', stream: true, messages: [{ role: 'user', content: 'card?' }] });
    let text = '';
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      })(),
      /blocked by policy 'strict'/,
    );
    assert.ok(!/4111|1111/.test(text), `no digits reached the caller: ${text}`);
    await assert.rejects(
      client.chat.completions.create({ model: 'pii-card', messages: [{ role: 'user', content: 'card?' }] }),
      (e) => e.status === 400 && e.code === 'content_filter',
    );
  });
});

describe('keyless mode', () => {
  let mock, gw;
  before(async () => {
    mock = await h.startMock();
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port)));
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  it('serves callers without a Bulwark key', async () => {
    const data = await ask(sdk(gw, 'anything'));
    assert.equal(data.choices[0].message.content, h.expectedAnswer(16));
  });
});

// What providers charge for attempts that did not become the caller's answer is gateway
// overhead: in the ledger (spend report, overhead_usd), the audit record's attempt list and
// bulwark_overhead_cost_usd_total, never in the caller's cost, x-bulwark-cost-usd or budget.
describe('governance: overhead of failed attempts', () => {
  const OVERHEAD_PRICES = `prices_as_of: "2026-11-24"
models:
  breaks-midway: {input: "1000", output: "3000"}
  finisher-model: {input: "1000", output: "1000"}
  claude-breaks: {input: "1000", output: "0"}
  anthropic.claude-breaks-v1:0: {input: "1000", output: "0"}
  primary-model: {input: "2000", output: "2000"}
  backup-model: {input: "1000", output: "1000"}
  mock-fast: {input: "1000", output: "1000"}
`;
  const OVERHEAD_MODELS = `  continued:
    targets: [{provider: mock, model: breaks-midway}]
    fallbacks: [finisher]
  finisher:
    targets: [{provider: mock-b, model: finisher-model, prefill: true}]
  claude-continued:
    targets: [{provider: anthropic-up, model: claude-breaks}]
    fallbacks: [finisher]
  invoke-continued:
    targets: [{provider: invoke-up, model: "anthropic.claude-breaks-v1:0"}]
    fallbacks: [finisher]
`;
  const OVERHEAD_PROVIDERS = (port) => `  anthropic-up:
    kind: anthropic
    base_url: http://127.0.0.1:${port}
    api_key: \${TEST_PROVIDER_KEY}
  invoke-up:
    kind: bedrock
    region: us-east-1
    api: invoke
    base_url: http://127.0.0.1:${port}
    aws_access_key_id: AKIDBULWARKE2E
    aws_secret_access_key: bulwark-e2e-secret-access-key
`;
  let mock, gw, config;
  before(async () => {
    mock = await h.startMock(['--aws-access-key-id', 'AKIDBULWARKE2E', '--aws-secret-access-key', 'bulwark-e2e-secret-access-key', '--aws-region', 'us-east-1']);
    config = h.writeConfig(h.gatewayConfig(mock.port, { governance: GOVERNANCE.replace('audit_content: full', 'audit_content: off'), models: OVERHEAD_MODELS, providers: OVERHEAD_PROVIDERS(mock.port) }));
    writeFileSync(path.join(path.dirname(config), 'prices.yaml'), OVERHEAD_PRICES);
    gw = await h.startGateway(config);
    await h.setBehavior(mock.port, 'breaks-midway', { tokens: 16, faults: [{ when: { always: true }, action: { cut_after_tokens: 5 } }] });
    await h.setBehavior(mock.port, 'finisher-model', { tokens: 16 });
    for (const model of ['claude-breaks', 'anthropic.claude-breaks-v1:0'])
      await h.setBehavior(mock.port, model, { tokens: 16, faults: [{ when: { always: true }, action: { cut_after_tokens: 5 } }] });
    await h.setBehavior(mock.port, 'primary-model', { tokens: 16, faults: [{ when: { always: true }, action: { cut_after_tokens: 3 } }] });
    await h.setBehavior(mock.port, 'backup-model', { tokens: 8 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  const nano = (usd) => Math.round(Number(usd) * 1e9);
  // The key's row of the spend report, once the ledger has committed `requests` of its requests.
  async function spendRow(keyId, requests) {
    for (let i = 0; i < 100; i++) {
      const r = await admin(gw, 'GET', '/admin/spend?by=key');
      const row = r.json.data.find((d) => d.group === keyId);
      if (row && row.requests >= requests && row.overhead_attempts > 0) return row;
      await h.sleep(50);
    }
    assert.fail(`no spend row with overhead for ${keyId}`);
  }
  // The request's audit record, once committed (its line may land after the overhead's).
  async function auditRecord(requestId) {
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${gatewayUrl(gw)}/admin/audit?from_seq=1&limit=1000`, { headers: { authorization: `Bearer ${MASTER}` } });
      const lines = (await r.text()).trim().split('\n').filter((l) => l).map((l) => JSON.parse(l));
      const rec = lines.map((l) => l.record).find((x) => x && x.request_id === requestId);
      if (rec) return rec;
      await h.sleep(50);
    }
    return undefined;
  }

  it('books a broken stream finished on a prefill target as overhead, not as the caller\'s cost', async () => {
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'overhead-stream', budget_usd: '100' });
    const r = await fetch(`${gatewayUrl(gw)}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${json.secret}` },
      body: JSON.stringify({ model: 'continued', stream: true, max_tokens: 64, messages: [{ role: 'user', content: 'count' }] }),
    });
    assert.equal(r.status, 200);
    const requestId = r.headers.get('x-bulwark-request-id');
    const text = await r.text();
    let answer = '';
    for (const line of text.split('\n'))
      if (line.startsWith('data: {')) answer += JSON.parse(line.slice(6)).choices?.[0]?.delta?.content ?? '';
    assert.equal(answer, h.expectedAnswer(16));
    const callerCost = text.match(/^: x-bulwark-cost-usd ([0-9.]+)$/m)?.[1];
    assert.ok(callerCost, text.slice(-300));

    const row = await spendRow(json.key.id, 1);
    assert.equal(row.requests, 1);
    assert.equal(row.overhead_attempts, 1);
    const overhead = nano(row.overhead_usd);
    // The broken attempt: the prompt (estimated) and the five tokens it relayed, at its price.
    assert.ok(overhead > 0, JSON.stringify(row));
    // The caller pays the continuation only: its cost, to the header's 6 decimals, and
    // nothing of the overhead; so does the budget.
    assert.equal(Number(row.cost_usd).toFixed(6), Number(callerCost).toFixed(6));
    const key = await admin(gw, 'GET', `/admin/keys/${json.key.id}`);
    assert.equal(key.json.budget.spent_usd, row.cost_usd);
    const report = await admin(gw, 'GET', '/admin/spend?by=model');
    const model = report.json.data.find((d) => d.group === 'continued');
    assert.equal(nano(model.overhead_usd), overhead);
    assert.ok(nano(report.json.total_overhead_usd) >= overhead);

    const metrics = await h.metrics(gw.port);
    assert.equal(Math.round(h.counter(metrics, 'bulwark_overhead_cost_usd_total', { reason: 'stream_broken' }) * 1e9), overhead);
    assert.equal(h.counter(metrics, 'bulwark_overhead_attempts_total', { reason: 'stream_broken' }), 1);

    const rec = await auditRecord(requestId);
    assert.ok(rec, 'audit record');
    const broken = rec.attempts.find((a) => a.target === 'mock/breaks-midway');
    assert.deepEqual(broken.overhead, { reason: 'stream_broken', cost_nano_usd: overhead, estimated: true });
    assert.equal(rec.attempts.find((a) => a.target === 'mock-b/finisher-model').overhead, undefined);
    assert.equal(rec.cost_nano_usd, nano(row.cost_usd));

    const csv = cli(config, 'spend', '--by', 'key', '--format', 'csv');
    assert.equal(csv.status, 0, csv.stderr);
    const header = csv.stdout.split('\n')[0].split(',');
    const line = csv.stdout.split('\n').find((l) => l.startsWith(json.key.id + ',')).split(',');
    assert.equal(nano(line[header.indexOf('overhead_usd')]), overhead);
    assert.equal(line[header.indexOf('cost_usd')], row.cost_usd);
  });

  // Anthropic reports the prompt's tokens in message_start, before any text (also inside
  // Bedrock InvokeModel's binary frames for Claude): a stream cut later is charged with
  // them, not with an estimate from the prompt's bytes.
  for (const [model, target] of [['claude-continued', 'anthropic-up/claude-breaks'],
                                 ['invoke-continued', 'invoke-up/anthropic.claude-breaks-v1:0']]) {
    it(`charges a broken stream with the prompt tokens its start reported (${target})`, async () => {
      const { json } = await admin(gw, 'POST', '/admin/keys', { name: `overhead-${model}`, budget_usd: '100' });
      // 1000 one-letter words: the mock reports 1000 input tokens; 2000 bytes would estimate ~500.
      const prompt = Array.from({ length: 1000 }, () => 'x').join(' ');
      const r = await fetch(`${gatewayUrl(gw)}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${json.secret}` },
        body: JSON.stringify({ model, stream: true, max_tokens: 64, messages: [{ role: 'user', content: prompt }] }),
      });
      assert.equal(r.status, 200);
      const requestId = r.headers.get('x-bulwark-request-id');
      await r.text();
      const row = await spendRow(json.key.id, 1);
      assert.equal(row.overhead_attempts, 1);
      // Output is free at this target's price: the overhead is the reported input alone,
      // 1000 tokens at 1000 USD per million.
      assert.equal(nano(row.overhead_usd), 1000 * 1000 * 1000);
      const rec = await auditRecord(requestId);
      assert.ok(rec, 'audit record');
      const broken = rec.attempts.find((a) => a.target === target);
      assert.equal(broken.overhead.reason, 'stream_broken');
      assert.equal(broken.overhead.cost_nano_usd, 1000 * 1000 * 1000);
    });
  }

  it('books a plain answer cut mid-body, then failed over, as overhead of the cut attempts', async () => {
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'overhead-unary', budget_usd: '10' });
    const before = await h.metrics(gw.port);
    const r = await fetch(`${gatewayUrl(gw)}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${json.secret}` },
      body: JSON.stringify({ model: 'primary', max_tokens: 16, messages: [{ role: 'user', content: 'say something nice' }] }),
    });
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(body.choices[0].message.content, h.expectedAnswer(8));
    assert.equal(r.headers.get('x-bulwark-target'), 'mock-b/backup-model');
    const callerCost = r.headers.get('x-bulwark-cost-usd');
    // The caller pays the backup's answer at the backup's price ($1,000 per million tokens).
    assert.equal(nano(callerCost), (body.usage.prompt_tokens + body.usage.completion_tokens) * 1e6);

    const row = await spendRow(json.key.id, 1);
    assert.equal(row.requests, 1);
    assert.equal(Number(row.cost_usd).toFixed(6), Number(callerCost).toFixed(6));
    assert.ok(row.overhead_attempts >= 1);
    const overhead = nano(row.overhead_usd);
    assert.ok(overhead > 0);
    const key = await admin(gw, 'GET', `/admin/keys/${json.key.id}`);
    assert.equal(key.json.budget.spent_usd, row.cost_usd);
    const after = await h.metrics(gw.port);
    const delta = (name) => h.counter(after, name) - h.counter(before, name);
    assert.equal(Math.round(delta('bulwark_overhead_cost_usd_total') * 1e9), overhead);
    assert.equal(delta('bulwark_overhead_attempts_total'), row.overhead_attempts);
  });

  it('books an answer the output policy refused as overhead, billing the caller nothing', async () => {
    const { json } = await admin(gw, 'POST', '/admin/keys', { name: 'overhead-discarded', budget_usd: '10', policy_profile: 'no-w7' });
    const r = await fetch(`${gatewayUrl(gw)}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${json.secret}` },
      body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: 'count' }] }),
    });
    assert.equal(r.status, 400);
    assert.equal(r.headers.get('x-bulwark-cost-usd'), null);
    const requestId = r.headers.get('x-bulwark-request-id');
    const row = await spendRow(json.key.id, 0);
    assert.equal(row.requests, 0);
    assert.equal(row.cost_usd, '0.000000000');
    assert.equal(row.overhead_attempts, 1);
    // The mock reports the usage: the prompt's tokens and 16 answer tokens at $1,000 per million.
    const overhead = nano(row.overhead_usd);
    assert.ok(overhead >= 17 * 1e6, row.overhead_usd);
    const key = await admin(gw, 'GET', `/admin/keys/${json.key.id}`);
    assert.equal(key.json.budget.spent_usd, '0.000000000');
    const rec = await auditRecord(requestId);
    assert.deepEqual(rec.attempts[0].overhead, { reason: 'discarded', cost_nano_usd: overhead, estimated: false });
  });
});

// Admin calls run on the admin thread, not on a worker: a spend report over a large ledger
// takes a while, and with one worker every request would otherwise wait for it.
describe('admin calls off the workers', () => {
  let mock, gw, config;
  const ROWS = 300000;
  before(async () => {
    mock = await h.startMock();
    config = h.writeConfig(h.gatewayConfig(mock.port, { governance: `governance:\n  auth: keyless\nadmin:\n  master_key: ${MASTER}\n` }));
    gw = await h.startGateway(config, { workers: 1 });
    await h.stopProcess(gw);  // the store exists now, with its schema
    const db = path.join(path.dirname(config), 'bulwark-data', 'bulwark.db');
    const sql = spawnSync('sqlite3', [db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
      INSERT INTO spend(entry_id, request_id, time, key_id, team_id, model, target, input_tokens, output_tokens,
                        cached_input_tokens, cache_write_tokens, cost_nano_usd, estimated, status)
      SELECT 'e' || i, 'r' || i, ${Date.now()} - i, 'key-' || (i % 3000), 'team-' || (i % 10), 'mock-fast', 'mock',
             10, 20, 0, 0, 1000, 0, 200 FROM n;`], { encoding: 'utf8' });
    assert.equal(sql.status, 0, sql.stderr);
    gw = await h.startGateway(config, { workers: 1 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  it('keeps answering chat requests while a long spend report runs', async () => {
    const t0 = performance.now();
    let reportDone = 0;
    const report = admin(gw, 'GET', '/admin/spend?by=key').then((r) => {
      reportDone = performance.now();
      return r;
    });
    await h.sleep(20);  // the report is under way on the gateway's one worker
    const answer = await sdk(gw, 'unused').chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });
    const answered = performance.now();
    assert.ok(answer.choices[0].message.content.length > 0);
    const r = await report;
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.data.length, 3000);
    assert.equal(r.json.data.reduce((n, row) => n + row.requests, 0), ROWS);  // begun before the chat request
    assert.ok(answered < reportDone, `chat answered after ${Math.round(answered - t0)} ms, report after ${Math.round(reportDone - t0)} ms`);
  });
});
