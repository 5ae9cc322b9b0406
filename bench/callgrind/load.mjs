// bench/callgrind/governance.sh: N sequential keep-alive requests (the bench's chat body); exits non-zero on a non-200.
import http from 'node:http';
const [port, n, key] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4] ?? ''];
const body = '{"model":"bench","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16,"temperature":0}';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const one = () => new Promise((resolve, reject) => {
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  if (key) headers.authorization = `Bearer ${key}`;
  const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent, headers }, (res) => {
    let d = '';
    res.on('data', (c) => (d += c));
    res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(res.statusCode + ' ' + d))));
  });
  req.on('error', reject);
  req.end(body);
});
for (let i = 0; i < n; i++) await one();
agent.destroy();
