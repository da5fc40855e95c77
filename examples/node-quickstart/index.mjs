// meterline quick start for Node.js.
//
//   METERLINE_API_KEY=ml_sk_… METERLINE_ENDPOINT=http://127.0.0.1:8080 node index.mjs
//
// Tracks a few billable events for two customers, shows a refused invalid event, flushes,
// prints the client's counters and what the server stored (read back with GET /v1/events).
import { Client, ValidationError } from 'meterline';

const apiKey = process.env.METERLINE_API_KEY;
const endpoint = process.env.METERLINE_ENDPOINT ?? 'http://127.0.0.1:8080';
if (!apiKey) {
  console.error('set METERLINE_API_KEY to a secret key (ml_sk_…)');
  process.exit(2);
}

const client = new Client({ apiKey, endpoint, source: 'node-quickstart' });
client.on('error', (err) => console.error(`background error ${err.code}: ${err.message}`));

// Every billable action is one track(): it validates and queues, never waits on the network.
for (let i = 1; i <= 5; i++) {
  const id = client.track('api.call', 'customer-42', { tokens: 100 * i, model: 'm-large' });
  console.log(`tracked api.call for customer-42 (${id})`);
}
client.track('api.call', 'customer-7', { tokens: 42, model: 'm-small' }, { id: 'order-7-call-1' });

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
const res = await fetch(`${endpoint.replace(/\/$/, '')}/v1/events?limit=1000`, {
  headers: { authorization: `Bearer ${apiKey}` },
});
if (!res.ok) throw new Error(`GET /v1/events answered ${res.status}`);
const { events } = await res.json();
console.log(`the server stored ${events.length} events:`);
for (const e of events) console.log(`  ${e.time} ${e.type} ${e.subject} ${JSON.stringify(e.data)}`);
