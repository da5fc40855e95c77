// The Node half of scripts/bench-before-after.sh: per-call cost of `track()` with a schema and
// of an entitlement cache hit, for the addon of the tree given with `--tree` (the script runs
// it once on an old tree, once on this one). A benchmark script, not a test.
//
//   node bench/before_after.mjs --tree /path/to/checkout [--calls 200000]
//
// Written against the API both sides have (`new Client({ apiKey, endpoint, ... })`, local
// `schemas`, `primeEntitlements()`), so the measured calls are the same on both:
//
// * track — `track('api.call', 'customer-42', { i, model, tokens })` (the event of
//   bench/node_peers.mjs), validated against a local JSON Schema for `api.call`. The endpoint
//   is a socket on 127.0.0.1 that accepts connections and never answers, with a request
//   timeout of an hour: the sender forms at most `maxInFlight` batches and then waits, so no
//   retry policy runs beside the calls. The queue holds every event (nothing dropped).
// * cachedEntitlement (metered, boolean) and `await entitlement()` — one hot subject primed
//   with `primeEntitlements()` (the answer of bench/node_entitlement.mjs), every call a hit.
//
// Each figure: a warm-up of 20,000 calls, then 3 rounds of `--calls` calls (`await
// entitlement()`: a fifth of that), the median of the wall time per call and of the process's
// CPU time per call (Node 20 has no per-thread CPU clock; the sender is idle once its batches
// are in flight, so this is the calling thread and V8's collector). Prints one JSON object.

import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}
const TREE = resolve(arg('tree', '.'));
const N = Number(arg('calls', 200_000));
const WARMUP = 20_000;
const ROUNDS = 3;
const MODELS = ['m-large', 'm-small'];
const SCHEMA = {
  type: 'object',
  properties: {
    i: { type: 'integer', minimum: 0 },
    model: { type: 'string', enum: ['m-small', 'm-large'] },
    tokens: { type: 'integer', minimum: 0 },
  },
  required: ['i', 'model', 'tokens'],
  additionalProperties: false,
};

const { Client } = await import(pathToFileURL(join(TREE, 'bindings-node', 'index.js')).href);
const blackHole = createServer(() => {}); // accepts, never answers
await new Promise((ok) => blackHole.listen(0, '127.0.0.1', ok));

const client = new Client({
  apiKey: 'ml_sk_bench_0123456789abcdef0123',
  endpoint: `http://127.0.0.1:${blackHole.address().port}`,
  schemas: { 'api.call': SCHEMA },
  fetchSchemas: false,
  stream: false,
  flushAt: 10_000,
  flushIntervalMs: 3_600_000,
  requestTimeoutMs: 3_600_000,
  maxQueueSize: WARMUP + ROUNDS * N + 50_000,
});
client.on('error', () => {});
let refused = false;
try {
  client.track('api.call', 'customer-42', { i: -1, model: 'm-large', tokens: 1 });
} catch (e) {
  refused = e.code === 'schema_violation';
}
if (!refused) throw new Error('the schema did not refuse i = -1: is it applied?');

const now = Date.now();
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
client.primeEntitlements({
  subject: 'customer-42',
  version: 7,
  ttl_ms: 3_600_000,
  entitlements: {
    api_calls: {
      kind: 'metered',
      has_access: true,
      limit: 1_000_000,
      usage: 120,
      remaining: 999_880,
      period: 'day',
      period_start: iso(now - 3_600_000),
      period_end: iso(now + 23 * 3_600_000),
      event_type: 'api.call',
      aggregation: 'count',
    },
    sso: { kind: 'boolean', has_access: true },
  },
});
if (client.cachedEntitlement('customer-42', 'api_calls').source !== 'cache')
  throw new Error('the cache was not primed');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function rounds(n, body) {
  await body(WARMUP);
  const ns = [];
  const cpu = [];
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await body(n);
    ns.push(Number(process.hrtime.bigint() - t0) / n);
    const c = process.cpuUsage(c0);
    cpu.push(((c.user + c.system) * 1000) / n);
  }
  const tenth = (x) => Math.round(x * 10) / 10;
  return { ns: tenth(median(ns)), cpu_ns: tenth(median(cpu)) };
}

let sink = 0;
const out = {};
out.track = await rounds(N, (n) => {
  for (let i = 0; i < n; i++) client.track('api.call', 'customer-42', { i, model: MODELS[i & 1], tokens: 1234 });
});
out.cachedMetered = await rounds(N, (n) => {
  for (let i = 0; i < n; i++) sink += client.cachedEntitlement('customer-42', 'api_calls').remaining;
});
out.cachedBoolean = await rounds(N, (n) => {
  for (let i = 0; i < n; i++) sink += client.cachedEntitlement('customer-42', 'sso').hasAccess ? 1 : 0;
});
out.awaitEntitlement = await rounds(Math.max(1, Math.floor(N / 5)), async (n) => {
  for (let i = 0; i < n; i++) sink += (await client.entitlement('customer-42', 'api_calls')).remaining;
});
const stats = client.stats();
if (stats.dropped !== 0 || stats.enqueued !== WARMUP + ROUNDS * N)
  throw new Error(`events dropped or not queued: ${JSON.stringify(stats)}`);
if (sink === -1) console.error(sink);
console.log(JSON.stringify(out));
await client.shutdown(100).catch(() => {});
process.exit(0);
