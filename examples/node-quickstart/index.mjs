// meterline quick start for Node.js.
//
//   METERLINE_API_KEY=ml_sk_… METERLINE_ENDPOINT=http://127.0.0.1:8080 node index.mjs
//
// Gates a metered feature with entitlement(), tracks a few billable events for two
// customers, shows the usage counted locally and a refused invalid event, flushes, prints
// the client's counters and what the server stored (read back with GET /v1/events). With
// METERLINE_ADMIN_KEY (printed by the server on first start) it first creates the feature
// `api_calls` (100 calls a month on plan `starter`) and puts customer-42 on that plan.
import { Client, ValidationError } from 'meterline';

const apiKey = process.env.METERLINE_API_KEY;
const endpoint = process.env.METERLINE_ENDPOINT ?? 'http://127.0.0.1:8080';
if (!apiKey) {
  console.error('set METERLINE_API_KEY to a secret key (ml_sk_…)');
  process.exit(2);
}

const base = endpoint.replace(/\/$/, '');
const adminKey = process.env.METERLINE_ADMIN_KEY;
if (adminKey) {
  // The catalog, through the admin API (the server's CLI can do the same).
  for (const [path, body] of [
    ['features/api_calls', { kind: 'metered', event_type: 'api.call' }],
    ['plans/starter', { features: { api_calls: { limit: 100 } } }],
    ['customers/customer-42', { plan: 'starter' }],
  ]) {
    const res = await fetch(`${base}/v1/admin/${path}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`PUT /v1/admin/${path} answered ${res.status}`);
  }
}

const client = new Client({
  apiKey,
  endpoint,
  source: 'node-quickstart',
  // While the server cannot answer and nothing is cached: let calls through up to 10.
  fallbacks: { features: { api_calls: { limit: 10 } } },
});
client.on('error', (err) => console.error(`background error ${err.code}: ${err.message}`));

// Gate the feature: the first answer is fetched, later ones come from the local cache
// (kept current over the realtime stream).
const gate = await client.entitlement('customer-42', 'api_calls');
console.log(
  `api_calls for customer-42: hasAccess=${gate.hasAccess} usage=${gate.usage} remaining=${gate.remaining} ` +
    `(${gate.source}${gate.reason ? `: ${gate.reason}` : ''})`,
);

// Every billable action is one track(): it validates and queues, never waits on the network.
for (let i = 1; i <= 5; i++) {
  const id = client.track('api.call', 'customer-42', { tokens: 100 * i, model: 'm-large' });
  console.log(`tracked api.call for customer-42 (${id})`);
}
client.track('api.call', 'customer-7', { tokens: 42, model: 'm-small' }, { id: 'order-7-call-1' });

// Tracked events count into the cached answer at once, before the server has seen them.
const now = client.cachedEntitlement('customer-42', 'api_calls');
console.log(`after 5 calls: usage=${now.usage} remaining=${now.remaining} (${now.source})`);

// An invalid event throws at once with the JSON pointer of the problem, and is not queued.
try {
  client.track('api.call', 'customer-42', { tokens: NaN });
} catch (err) {
  if (!(err instanceof ValidationError)) throw err;
  console.log(`refused as expected: ${err.code} at ${err.path}`);
}

await client.flush();
const { enqueued, sent, duplicates, rejected } = client.stats();
console.log(`stats: enqueued=${enqueued} sent=${sent} duplicates=${duplicates} rejected=${rejected}`);
await client.shutdown();

// Read back what the server stored.
const res = await fetch(`${base}/v1/events?limit=1000`, {
  headers: { authorization: `Bearer ${apiKey}` },
});
if (!res.ok) throw new Error(`GET /v1/events answered ${res.status}`);
const { events } = await res.json();
console.log(`the server stored ${events.length} events:`);
for (const e of events) console.log(`  ${e.time} ${e.type} ${e.subject} ${JSON.stringify(e.data)}`);
