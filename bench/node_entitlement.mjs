// The per-call cost of an entitlement cache hit from Node.js: `cachedEntitlement()` (sync)
// and `await entitlement()`, against the floors they sit on. A benchmark script, not a test.
//
//   node bench/node_entitlement.mjs [--calls 1000000] [--rounds 5]
//
// Needs the napi-rs addon built in bindings-node/ (`scripts/test-node.sh` or
// `npx napi build --platform --release --strip --js native.js --dts native.d.ts` there). No
// server: the cache is primed with `primeEntitlements()` (an answer in the server's shape,
// TTL one hour), so every call measured is a hit answered on the JavaScript thread. The
// client points at a closed port with the stream and schema fetches off.
//
// Per path: the wall time of N calls divided by N, median of `--rounds`. Paths:
// * `cachedEntitlement()` — a metered feature (the largest answer) and a boolean one;
// * `await entitlement()` — N sequential awaits (a hit resolves without leaving the thread);
// * `entitlement()` × 1,000 in flight, then `Promise.all` — the concurrent shape;
// * floors: `stats()` (a bare napi call returning an object), `await Promise.resolve(obj)`
//   (the await alone) and `await flush()` of an empty queue (one napi async round trip
//   through napi-rs's tokio runtime — what a hit would cost without the fast path).

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { Client } = await import(pathToFileURL(join(REPO, 'bindings-node', 'index.js')).href);

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}
const CALLS = arg('calls', 1_000_000);
const ROUNDS = arg('rounds', 5);

const client = new Client({
  apiKey: 'ml_sk_bench_0123456789abcdef0123',
  endpoint: 'http://127.0.0.1:9',
  fetchSchemas: false,
  stream: false,
});
client.on('error', () => {});
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

async function measure(name, n, body) {
  const ns = [];
  await body(Math.min(n, 10_000)); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    await body(n);
    ns.push(Number(process.hrtime.bigint() - t0) / n);
  }
  const m = median(ns);
  console.log(
    `${name.padEnd(52)} ${m.toFixed(0).padStart(7)} ns/call   (rounds: ${ns.map((x) => x.toFixed(0)).join(', ')})`,
  );
  return m;
}

let sink = 0;
const results = {};
results.cachedMetered = await measure('cachedEntitlement(metered) — sync hit', CALLS, (n) => {
  for (let i = 0; i < n; i++) sink += client.cachedEntitlement('customer-42', 'api_calls').remaining;
});
results.cachedBoolean = await measure('cachedEntitlement(boolean) — sync hit', CALLS, (n) => {
  for (let i = 0; i < n; i++) sink += client.cachedEntitlement('customer-42', 'sso').hasAccess ? 1 : 0;
});
const awaited = Math.max(1, Math.floor(CALLS / 5));
results.awaitEntitlement = await measure('await entitlement(metered) — sequential hits', awaited, async (n) => {
  for (let i = 0; i < n; i++) sink += (await client.entitlement('customer-42', 'api_calls')).remaining;
});
results.concurrent = await measure('entitlement() × 1,000 in flight + Promise.all', awaited, async (n) => {
  for (let done = 0; done < n; done += 1_000) {
    const batch = [];
    for (let i = 0; i < 1_000; i++) batch.push(client.entitlement('customer-42', 'sso'));
    for (const a of await Promise.all(batch)) sink += a.hasAccess ? 1 : 0;
  }
});
results.floorStats = await measure('floor: stats() (bare napi call → object)', CALLS, (n) => {
  for (let i = 0; i < n; i++) sink += client.stats().cacheHits > 0 ? 1 : 0;
});
const obj = { hasAccess: true };
results.floorAwait = await measure('floor: await Promise.resolve(obj)', awaited, async (n) => {
  for (let i = 0; i < n; i++) sink += (await Promise.resolve(obj)).hasAccess ? 1 : 0;
});
results.asyncRoundTrip = await measure(
  'for scale: await flush() of an empty queue',
  Math.max(1, Math.floor(CALLS / 50)),
  async (n) => {
    for (let i = 0; i < n; i++) await client.flush();
  },
);
const stats = client.stats();
console.log(
  JSON.stringify({ calls: CALLS, rounds: ROUNDS, results, cacheHits: stats.cacheHits, cacheMisses: stats.cacheMisses }),
);
if (sink === -1) console.log(sink);
await client.shutdown(100).catch(() => {});
