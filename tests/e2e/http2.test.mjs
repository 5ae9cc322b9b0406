// HTTP/2 on the gateway's own listener: h2c with prior knowledge on plain TCP, h2 by ALPN
// over TLS, HTTP/1.1 over the same TLS listener, and a stream reset mid-SSE that must
// close the upstream request. The client is Node's built-in node:http2.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import * as h from './harness.mjs';

const chatBody = (model, extra = {}) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

// One request on an HTTP/2 session: resolves with status, headers and the whole body.
function h2request(session, { method = 'GET', path: p, body, headers = {} }) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': method, ':path': p, ...(body ? { 'content-type': 'application/json' } : {}), ...headers });
    let status = 0;
    let head = {};
    const chunks = [];
    req.on('response', (hs) => {
      status = hs[':status'];
      head = hs;
    });
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => resolve({ status, headers: head, body: Buffer.concat(chunks).toString() }));
    req.on('error', reject);
    if (body) req.end(body);
    else req.end();
  });
}

// The text of an OpenAI SSE stream.
function sseText(body) {
  let text = '';
  for (const line of body.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    for (const c of JSON.parse(line.slice(6)).choices ?? []) text += c.delta?.content ?? '';
  }
  return text;
}

// A slow SSE upstream written here so the test sees exactly when its request is dropped.
function slowUpstream() {
  const state = { closedAt: null, sent: 0 };
  const server = http.createServer((req, res) => {
    req.resume();
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

const slowProviders = (port) => `  slow:\n    kind: openai\n    base_url: http://127.0.0.1:${port}/v1\n`;
const slowModels = `  slow-model:\n    targets:\n      - provider: slow\n        model: slow\n`;

async function resetMidStream(session, slow) {
  slow.state.closedAt = null;
  slow.state.sent = 0;
  const req = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
  req.end(chatBody('slow-model', { stream: true }));
  let events = 0;
  await new Promise((resolve, reject) => {
    req.on('data', (d) => {
      events += (d.toString().match(/^data: /gm) ?? []).length;
      if (events >= 5) {
        req.close(http2.constants.NGHTTP2_CANCEL);
        resolve();
      }
    });
    req.on('error', reject);
    req.on('end', () => reject(new Error('the stream ended before the reset')));
  });
  // The full stream would take 10 s; the upstream must see its request dropped long before.
  for (let i = 0; i < 100 && slow.state.closedAt === null; i++) await h.sleep(50);
  assert.ok(slow.state.closedAt !== null, 'upstream connection closed');
  assert.ok(slow.state.sent < 400, `upstream stopped early (sent ${slow.state.sent} of 500)`);
}

describe('HTTP/2 cleartext with prior knowledge', () => {
  let mock, gw, slow, session;
  before(async () => {
    mock = await h.startMock();
    slow = await slowUpstream();
    const top = 'limits:\n  max_body_bytes: 64KiB\n';
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { top, providers: slowProviders(slow.port), models: slowModels })));
    session = http2.connect(`http://127.0.0.1:${gw.port}`);
  });
  after(async () => {
    session?.close();
    await h.stopProcess(gw);
    await h.stopProcess(mock);
    slow.server.close();
  });

  it('answers a chat completion', async () => {
    const r = await h2request(session, { method: 'POST', path: '/v1/chat/completions', body: chatBody('gpt-4o-mini') });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /application\/json/);
    assert.match(r.headers['x-bulwark-request-id'], /^[0-9a-f]{32}$/);
    assert.equal(r.headers['x-bulwark-target'], 'mock/mock-fast');
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    assert.equal(JSON.parse(r.body).choices[0].message.content, h.expectedAnswer(16));
  });

  it('streams a chat completion as server-sent events', async () => {
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 40 });
    const r = await h2request(session, { method: 'POST', path: '/v1/chat/completions', body: chatBody('gpt-4o-mini', { stream: true }) });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /text\/event-stream/);
    assert.equal(r.headers['transfer-encoding'], undefined, 'no HTTP/1.1 framing in HTTP/2');
    assert.equal(sseText(r.body), h.expectedAnswer(40));
    assert.match(r.body, /data: \[DONE\]\n\n$/);
    await h.resetMock(mock.port);
  });

  it('serves many concurrent streams on one connection', async () => {
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 8, latency_ms: 300 });
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        h2request(session, { method: 'POST', path: '/v1/chat/completions', body: chatBody('gpt-4o-mini', { stream: i % 2 === 1 }) }),
      ),
    );
    const took = Date.now() - started;
    for (const [i, r] of answers.entries()) {
      assert.equal(r.status, 200);
      assert.equal(i % 2 ? sseText(r.body) : JSON.parse(r.body).choices[0].message.content, h.expectedAnswer(8));
    }
    assert.equal(new Set(answers.map((r) => r.headers['x-bulwark-request-id'])).size, 12);
    assert.ok(took < 12 * 300, `concurrent, not one after another (${took} ms)`);
    await h.resetMock(mock.port);
  });

  it('lists the models', async () => {
    const r = await h2request(session, { path: '/v1/models' });
    assert.equal(r.status, 200);
    assert.ok(JSON.parse(r.body).data.some((m) => m.id === 'gpt-4o-mini'));
  });

  it('answers an unknown path with 404 in the OpenAI error shape', async () => {
    const r = await h2request(session, { path: '/v1/nothing-here' });
    assert.equal(r.status, 404);
    assert.ok(JSON.parse(r.body).error.message.includes('/v1/nothing-here'));
  });

  it('refuses a body over the limit with 413, and the connection lives on', async () => {
    const big = chatBody('gpt-4o-mini', { pad: 'x'.repeat(100 * 1024) });
    const r = await h2request(session, { method: 'POST', path: '/v1/chat/completions', body: big });
    assert.equal(r.status, 413);
    assert.match(JSON.parse(r.body).error.message, /exceeds/);
    const again = await h2request(session, { path: '/v1/models' });
    assert.equal(again.status, 200);
  });

  it('a stream reset mid-SSE closes the upstream request', async () => {
    await resetMidStream(session, slow);
    const text = await h.metrics(gw.port);
    assert.ok(h.counter(text, 'bulwark_requests_total', { model: 'slow-model', status: '499' }) >= 1);
    // The session is still usable after the reset.
    const r = await h2request(session, { path: '/healthz' });
    assert.equal(r.status, 200);
  });

  it('counts the connection as h2 in the metrics, HTTP/1.1 beside it on the same port', async () => {
    const text = await h.metrics(gw.port); // fetch: HTTP/1.1 on the same listener
    assert.equal(h.counter(text, 'bulwark_client_connections_total', { protocol: 'h2', tls: 'false' }), 1);
    assert.ok(h.counter(text, 'bulwark_client_connections_total', { protocol: 'h1', tls: 'false' }) >= 1);
    assert.ok(h.counter(text, 'bulwark_http2_requests_total') >= 20);
  });
});

// A self-signed certificate for localhost and 127.0.0.1, made with the openssl CLI.
function selfSigned(dir) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { cwd: dir, stdio: 'pipe' });
  return { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem'), ca: readFileSync(path.join(dir, 'cert.pem')) };
}

function httpsRequest(port, ca, { method = 'GET', path: p, body, ALPNProtocols }) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', servername: 'localhost', port, method, path: p, ca, ALPNProtocols, agent: false,
      headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data, alpn: req.socket.alpnProtocol, version: res.httpVersion }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('TLS on the listener', () => {
  let mock, gw, slow, certs, session;
  before(async () => {
    mock = await h.startMock();
    slow = await slowUpstream();
    certs = selfSigned(h.tempDir('bulwark-h2tls-'));
    const top = `tls:\n  cert_file: ${certs.cert}\n  key_file: ${certs.key}\n  min_version: "1.2"\n`;
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port, { top, providers: slowProviders(slow.port), models: slowModels })));
    session = http2.connect(`https://localhost:${gw.port}`, { ca: certs.ca });
    await new Promise((resolve, reject) => session.once('connect', resolve).once('error', reject));
  });
  after(async () => {
    session?.close();
    await h.stopProcess(gw);
    await h.stopProcess(mock);
    slow.server.close();
  });

  it('negotiates h2 by ALPN and answers plain and streamed requests', async () => {
    assert.equal(session.alpnProtocol, 'h2');
    const plain = await h2request(session, { method: 'POST', path: '/v1/chat/completions', body: chatBody('gpt-4o-mini') });
    assert.equal(plain.status, 200);
    assert.equal(JSON.parse(plain.body).choices[0].message.content, h.expectedAnswer(16));
    const streamed = await h2request(session, { method: 'POST', path: '/v1/chat/completions', body: chatBody('gpt-4o-mini', { stream: true }) });
    assert.equal(streamed.status, 200);
    assert.equal(sseText(streamed.body), h.expectedAnswer(16));
  });

  it('serves HTTP/1.1 over the same TLS listener (with and without ALPN)', async () => {
    for (const ALPNProtocols of [undefined, ['http/1.1']]) {
      const r = await httpsRequest(gw.port, certs.ca, { method: 'POST', path: '/v1/chat/completions', body: chatBody('gpt-4o-mini'), ALPNProtocols });
      assert.equal(r.status, 200);
      assert.equal(r.version, '1.1');
      assert.equal(JSON.parse(r.body).choices[0].message.content, h.expectedAnswer(16));
    }
    const streamed = await httpsRequest(gw.port, certs.ca, { method: 'POST', path: '/v1/chat/completions', body: chatBody('gpt-4o-mini', { stream: true }) });
    assert.equal(streamed.headers['transfer-encoding'], 'chunked');
    assert.equal(sseText(streamed.body), h.expectedAnswer(16));
  });

  it('a stream reset mid-SSE over TLS closes the upstream request', async () => {
    await resetMidStream(session, slow);
  });

  it('an HTTP/1.1 caller hanging up mid-SSE over TLS closes the upstream request', async () => {
    slow.state.closedAt = null;
    slow.state.sent = 0;
    await new Promise((resolve, reject) => {
      const body = chatBody('slow-model', { stream: true });
      const req = https.request({ host: '127.0.0.1', servername: 'localhost', port: gw.port, method: 'POST', path: '/v1/chat/completions', ca: certs.ca, agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let events = 0;
        res.on('data', (d) => {
          events += (d.toString().match(/^data: /gm) ?? []).length;
          if (events >= 5) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', (e) => (e.code === 'ECONNRESET' ? null : reject(e)));
      req.end(body);
    });
    for (let i = 0; i < 100 && slow.state.closedAt === null; i++) await h.sleep(50);
    assert.ok(slow.state.closedAt !== null, 'upstream connection closed');
    assert.ok(slow.state.sent < 400, `upstream stopped early (sent ${slow.state.sent} of 500)`);
  });

  it('refuses a plain-text client and an untrusted certificate is refused by the client', async () => {
    await assert.rejects(fetch(`http://127.0.0.1:${gw.port}/healthz`));
    await assert.rejects(httpsRequest(gw.port, undefined, { path: '/healthz' }), /self[- ]signed|certificate/i);
  });

  it('counts h1 and h2 connections over TLS', async () => {
    const r = await httpsRequest(gw.port, certs.ca, { path: '/metrics' });
    assert.equal(h.counter(r.body, 'bulwark_client_connections_total', { protocol: 'h2', tls: 'true' }), 1);
    assert.ok(h.counter(r.body, 'bulwark_client_connections_total', { protocol: 'h1', tls: 'true' }) >= 3);
    assert.equal(h.counter(r.body, 'bulwark_client_connections_total', { tls: 'false' }), 0);
  });
});

describe('HTTP/2 and a graceful shutdown', () => {
  let mock, gw;
  before(async () => {
    mock = await h.startMock();
    gw = await h.startGateway(h.writeConfig(h.gatewayConfig(mock.port)), { workers: 1 });
  });
  after(async () => {
    await h.stopProcess(gw);
    await h.stopProcess(mock);
  });

  it('SIGTERM sends GOAWAY: the stream in flight finishes, then the process exits', async () => {
    await h.setBehavior(mock.port, 'mock-fast', { tokens: 8, latency_ms: 800 });
    const session = http2.connect(`http://127.0.0.1:${gw.port}`);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    session.on('error', () => {});
    const inFlight = h2request(session, { method: 'POST', path: '/v1/chat/completions', body: chatBody('gpt-4o-mini') });
    await h.sleep(200);
    gw.child.kill('SIGTERM');
    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).choices[0].message.content, h.expectedAnswer(8));
    const exit = await gw.exited;
    assert.equal(exit.code, 0);
    assert.ok(goaway, 'GOAWAY received');
    session.destroy();
  });
});
