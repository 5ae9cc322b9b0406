// HTTPS upstreams: certificate verification on by default, a CA bundle option, SNI, and
// a certificate for the wrong host refused.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import OpenAI from 'openai';
import * as h from './harness.mjs';

// A private CA and a server certificate for `host`, made with the openssl CLI.
function makeCerts(dir, host) {
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bulwark-test-ca');
  writeFileSync(path.join(dir, 'ext.cnf'), `subjectAltName=DNS:${host}\n`);
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${host}`);
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
  return { ca: path.join(dir, 'ca.pem'), key: readFileSync(path.join(dir, 'server.key')), cert: readFileSync(path.join(dir, 'server.pem')) };
}

function httpsUpstream({ key, cert }) {
  const seen = { servernames: [], authorization: [] };
  const server = https.createServer({ key, cert }, (req, res) => {
    seen.servernames.push(req.socket.servername);
    seen.authorization.push(req.headers.authorization);
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const model = JSON.parse(body).model;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'tls-1', object: 'chat.completion', created: 0, model, choices: [{ index: 0, message: { role: 'assistant', content: 'over tls' }, finish_reason: 'stop' }], usage: { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 } }));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, seen, port: server.address().port })));
}

describe('HTTPS upstreams', () => {
  let gw, good, wrongHost, client;
  before(async () => {
    const dir = h.tempDir('bulwark-tls-');
    const certs = makeCerts(dir, 'localhost');
    const otherDir = h.tempDir('bulwark-tls-other-');
    const other = makeCerts(otherDir, 'not-this-host.example');
    good = await httpsUpstream(certs);
    wrongHost = await httpsUpstream(other);
    const cfg = `listen: 127.0.0.1:0
governance: {auth: keyless}
timeouts: {connect: 2s, first_token: 5s, idle: 5s, total: 10s}
resilience:
  retry: {max_attempts_per_target: 1}
providers:
  trusted:
    kind: openai
    base_url: https://localhost:${good.port}/v1
    api_key: tls-provider-key
    ca_file: ${certs.ca}
  system-store:
    kind: openai
    base_url: https://localhost:${good.port}/v1
  wrong-host:
    kind: openai
    base_url: https://localhost:${wrongHost.port}/v1
    ca_file: ${other.ca}
  unverified:
    kind: openai
    base_url: https://localhost:${wrongHost.port}/v1
    verify_tls: false
models:
  trusted: {targets: [{provider: trusted, model: m1}]}
  system-store: {targets: [{provider: system-store, model: m2}]}
  wrong-host: {targets: [{provider: wrong-host, model: m3}]}
  unverified: {targets: [{provider: unverified, model: m4}]}
`;
    // One worker: every provider shares one connection pool, so a pooled connection
    // verified for one provider would be offered to the others if the pool mixed them.
    gw = await h.startGateway(h.writeConfig(cfg), { workers: 1 });
    client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await h.stopProcess(gw);
    good.server.close();
    wrongHost.server.close();
  });

  it('verifies the upstream against the configured CA bundle and sends SNI', async () => {
    const answer = await client.chat.completions.create({ model: 'trusted', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(answer.choices[0].message.content, 'over tls');
    assert.equal(answer.model, 'm1');
    assert.equal(good.seen.servernames.at(-1), 'localhost');
    assert.equal(good.seen.authorization.at(-1), 'Bearer tls-provider-key');
  });

  it('refuses a certificate the system trust store does not know', async () => {
    const before = good.seen.servernames.length;
    await assert.rejects(
      client.chat.completions.create({ model: 'system-store', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e.status === 502 && /certificate|TLS|handshake/i.test(e.message),
    );
    assert.equal(good.seen.servernames.length, before, 'no request reached the upstream');
  });

  it('refuses a valid certificate issued for another host', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'wrong-host', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e.status === 502,
    );
    assert.equal(wrongHost.seen.servernames.length, 0);
  });

  it('skips verification only where the configuration says so', async () => {
    const answer = await client.chat.completions.create({ model: 'unverified', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(answer.choices[0].message.content, 'over tls');
  });
});
