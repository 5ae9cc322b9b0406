// Starts real processes on loopback for the end-to-end tests: bulwark-mock as the
// upstream and bulwark in front of it, each on a port the kernel picks.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const buildDir = process.env.BULWARK_BUILD_DIR ?? path.join(root, 'build');
export const bulwarkBin = process.env.BULWARK_BIN ?? path.join(buildDir, 'bin', 'bulwark');
export const mockBin = process.env.BULWARK_MOCK_BIN ?? path.join(buildDir, 'mock', 'bulwark-mock');
export const PROVIDER_KEY = 'provider-secret-key-1234';

// The mock's deterministic healthy answer: "w1 w2 ... wN."
export function expectedAnswer(n) {
  return Array.from({ length: n }, (_, i) => `w${i + 1}`).join(' ') + '.';
}

// Spawns a server that prints "listening on HOST:PORT" and resolves once it has.
export function startProcess(bin, args, { env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const logs = [];
    child.stderr.on('data', (d) => logs.push(d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(bin)} did not start: ${logs.join('')}`));
    }, 10_000);
    child.stdout.on('data', (d) => {
      out += d.toString();
      const m = out.match(/listening on ([\d.]+):(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[2]), logs: () => logs.join(''), exited: exitPromise(child) });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(bin)} exited with ${code}: ${logs.join('')}`));
    });
  });
}

function exitPromise(child) {
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
}

export async function stopProcess(p, signal = 'SIGTERM') {
  if (!p || p.child.exitCode !== null) return;
  p.child.kill(signal);
  await p.exited;
}

export async function startMock(extraArgs = []) {
  return startProcess(mockBin, ['--listen', '127.0.0.1:0', '--workers', '1', '--api-key', PROVIDER_KEY, ...extraArgs]);
}

// Each gateway's folder holds its database and two preallocated 32 MiB journal segments:
// left behind, a full run fills the disk. Removed when the test file's process exits.
const tempDirs = new Set();
process.on('exit', () => {
  if (process.env.BULWARK_E2E_KEEP) return;
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = 'bulwark-e2e-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function writeConfig(yaml) {
  const dir = tempDir();
  const file = path.join(dir, 'bulwark.yaml');
  writeFileSync(file, yaml);
  return file;
}

// A gateway config in front of the mock: `extra` is appended under models:.
// Keyless unless a test passes its own `governance` section (keys are required by default
// in a real deployment; tests/e2e/governance.test.mjs covers them).
export function gatewayConfig(mockPort, { models = '', providers = '', top = '', governance = 'governance:\n  auth: keyless\n' } = {}) {
  return `listen: 127.0.0.1:0
log:
  level: info
  access: true
${governance}
${top}
timeouts:
  connect: 1s
  first_token: 5s
  idle: 5s
  total: 30s
providers:
  mock:
    kind: openai
    base_url: http://127.0.0.1:${mockPort}/v1
    api_key: \${TEST_PROVIDER_KEY}
  mock-b:
    kind: openai
    base_url: http://127.0.0.1:${mockPort}/v1
    api_key: \${TEST_PROVIDER_KEY}
${providers}
models:
  gpt-4o-mini:
    targets:
      - provider: mock
        model: mock-fast
  primary:
    targets:
      - provider: mock
        model: primary-model
    fallbacks: [backup]
  backup:
    targets:
      - provider: mock-b
        model: backup-model
  lonely:
    targets:
      - provider: mock
        model: lonely-model
${models}
`;
}

export async function startGateway(configFile, { workers = 2 } = {}) {
  return startProcess(bulwarkBin, ['serve', '--config', configFile, '--workers', String(workers)], {
    env: { TEST_PROVIDER_KEY: PROVIDER_KEY },
  });
}

export async function setBehavior(mockPort, model, behavior) {
  const r = await fetch(`http://127.0.0.1:${mockPort}/_mock/behaviors/${encodeURIComponent(model)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(behavior),
  });
  if (!r.ok) throw new Error(`mock rejected behaviour for ${model}: ${r.status} ${await r.text()}`);
}

export async function mockStats(mockPort) {
  const r = await fetch(`http://127.0.0.1:${mockPort}/_mock/stats`);
  return r.json();
}

export async function resetMock(mockPort) {
  await fetch(`http://127.0.0.1:${mockPort}/_mock/reset`, { method: 'POST' });
}

export async function metrics(gatewayPort) {
  const r = await fetch(`http://127.0.0.1:${gatewayPort}/metrics`);
  return r.text();
}

// Sum of a Prometheus counter's samples whose labels include every given pair.
export function counter(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop());
  }
  return sum;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
