// Streaming load client for bench/stream.sh: keeps N chat completion streams open at once
// (each a POST with "stream": true), starting a new one whenever one finishes, until the
// duration has passed; streams already running then finish. Every stream is verified: HTTP
// 200, ends with `data: [DONE]`, and carried the expected number of content deltas.
// Prints one JSON line with the totals.
//
//   node bench/stream/client.mjs --url http://127.0.0.1:PORT/v1/chat/completions \
//        --model bench-long --concurrency 64 --duration 8 --expect-tokens 500
import http from "node:http";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const url = new URL(args.url ?? "http://127.0.0.1:8080/v1/chat/completions");
if (url.hostname !== "127.0.0.1" && url.hostname !== "localhost") {
  console.error("client.mjs only talks to 127.0.0.1");
  process.exit(2);
}
const model = args.model ?? "bench-long";
const concurrency = Number(args.concurrency ?? 64);
const durationMs = Number(args.duration ?? 8) * 1000;
const expectTokens = Number(args["expect-tokens"] ?? 0);
const maxStreams = Number(args["max-streams"] ?? Infinity);

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
const body = JSON.stringify({
  model,
  stream: true,
  messages: [{ role: "user", content: "Write a long story." }],
});

const DONE = "data: [DONE]";
const NEEDLE = '"content":"';
let started = 0, ok = 0, failed = 0, tokens = 0, bytes = 0;
const failures = new Map();
const fail = (why) => { failed++; failures.set(why, (failures.get(why) ?? 0) + 1); };
const t0 = process.hrtime.bigint();
const elapsedMs = () => Number(process.hrtime.bigint() - t0) / 1e6;

function countTokens(s) {
  let n = 0, i = 0;
  while ((i = s.indexOf(NEEDLE, i)) !== -1) { n++; i += NEEDLE.length; }
  return n;
}

function oneStream() {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: url.hostname, port: url.port, path: url.pathname, method: "POST", agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), accept: "text/event-stream" },
      },
      (res) => {
        let carry = "";   // the tail of the previous chunk, so a needle split across chunks is seen
        let n = 0, tail = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => {
          bytes += chunk.length;
          const s = carry + chunk;
          n += countTokens(s);
          // keep a tail shorter than the needle, so nothing is counted twice
          carry = s.slice(Math.max(0, s.length - (NEEDLE.length - 1)));
          tail = (tail + chunk).slice(-64);
        });
        res.on("end", () => {
          if (res.statusCode !== 200) fail(`status ${res.statusCode}`);
          else if (!tail.trimEnd().endsWith(DONE)) fail("no [DONE]");
          else if (expectTokens && n !== expectTokens) fail(`tokens ${n} != ${expectTokens}`);
          else { ok++; tokens += n; }
          resolve();
        });
        res.on("error", (e) => { fail(`response error ${e.code ?? e.message}`); resolve(); });
      },
    );
    req.on("error", (e) => { fail(`request error ${e.code ?? e.message}`); resolve(); });
    req.end(body);
  });
}

async function lane() {
  while (elapsedMs() < durationMs && started < maxStreams) {
    started++;
    await oneStream();
  }
}

await Promise.all(Array.from({ length: concurrency }, lane));
const secs = elapsedMs() / 1000;
agent.destroy();
console.log(JSON.stringify({
  streams_ok: ok, streams_failed: failed, failures: Object.fromEntries(failures),
  tokens, bytes, seconds: Number(secs.toFixed(3)), tokens_per_s: Math.round(tokens / secs),
}));
