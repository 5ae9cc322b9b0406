// Signs one Bedrock request (AWS SigV4, header signing) and prints the headers wrk must add,
// one per line, so that bench/run.sh can replay a native Converse request through nginx to
// a bulwark-mock that verifies signatures. HOST is the Host the mock receives (nginx sends
// its upstream's name); host and content-type are signed but not printed, since nginx and
// chat.lua set them. A signature stays valid for the mock's clock skew (5 minutes): run.sh
// signs right before each use.
//   node sigv4.mjs HOST PATH BODY_FILE ACCESS_KEY_ID SECRET REGION
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [host, path, bodyFile, keyId, secret, region] = process.argv.slice(2);
const service = 'bedrock';
const body = readFileSync(bodyFile);
const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const hmac = (k, s) => createHmac('sha256', k).update(s).digest();

const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
const date = amzDate.slice(0, 8);
const payloadHash = sha256(body);
// Every service but S3 URI-encodes each path segment of the wire path once more.
const canonicalUri = path.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())).join('/');
const headers = {
  accept: 'application/json',
  'content-type': 'application/json',
  host,
  'x-amz-content-sha256': payloadHash,
  'x-amz-date': amzDate,
};
const names = Object.keys(headers).sort();
const canonicalRequest = ['POST', canonicalUri, '', ...names.map((n) => `${n}:${headers[n]}`), '', names.join(';'), payloadHash].join('\n');
const scope = `${date}/${region}/${service}/aws4_request`;
const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
let key = hmac('AWS4' + secret, date);
for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
const signature = createHmac('sha256', key).update(stringToSign).digest('hex');
headers.authorization = `AWS4-HMAC-SHA256 Credential=${keyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
for (const [n, v] of Object.entries(headers)) if (n !== 'host' && n !== 'content-type') console.log(`${n}: ${v}`);
