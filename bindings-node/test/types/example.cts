// Type-checked with `tsc --noEmit` (CommonJS): require() gets the same types.
import meterline = require('meterline');

const client = new meterline.Client({
  apiKey: 'ml_sk_example_0123456789abcdef0123',
  endpoint: 'http://127.0.0.1:8080',
});
const id: string | null = client.track('api.call', 'customer-42', { tokens: 1 });
client.once('error', (err: meterline.MeterlineError) => console.error(err.code));
client.on('connection', (change: meterline.ConnectionChange) => console.log(change.connected));
void client
  .entitlement('customer-42', 'sso')
  .then((a: meterline.Entitlement) => console.log(a.hasAccess, a.source))
  .then(() => client.shutdown())
  .then(() => console.log(id, client.stats().enqueued, client.stats().fallbackAnswers));

export = client;
