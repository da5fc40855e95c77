// `make demo-browser`'s second half (scripts/demo-browser.sh starts the server): makes a
// publishable key, allows the page's origin and `page.view` as a client event type, serves
// the quick start with its token route — the Node package (bindings-node) mints each
// visitor's customer token from the secret key, which never reaches the browser — and then
// either waits for you at the printed URL or (`--headless`) drives the page once in headless
// Chromium: three clicks on "Track a page view", a flush, one entitlement read, and prints
// what the server stored.
//
//   METERLINE_ENDPOINT=… METERLINE_SECRET_KEY=… METERLINE_ADMIN_KEY=… node demo.mjs [--headless]
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startExample } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const { METERLINE_ENDPOINT: endpoint, METERLINE_SECRET_KEY: secretKey, METERLINE_ADMIN_KEY: adminKey } = process.env;
const subject = process.env.METERLINE_SUBJECT ?? 'customer-7';
if (!endpoint || !secretKey || !adminKey) {
  console.error('set METERLINE_ENDPOINT, METERLINE_SECRET_KEY and METERLINE_ADMIN_KEY');
  process.exit(2);
}

async function adminCall(method, path, body) {
  const res = await fetch(`${endpoint}/v1/admin/${path}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} /v1/admin/${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

// The Node package, from this repository (an app would `npm install meterline`).
const { Client } = await import(join(repo, 'bindings-node', 'index.mjs'));
const backend = new Client({ apiKey: secretKey, endpoint, stream: false, fetchSchemas: false });
const { key: publishableKey } = await adminCall('POST', 'keys', { kind: 'publishable' });
const page = await startExample({
  endpoint,
  publishableKey,
  mintToken: (who) => backend.customerToken(who, 3_600_000),
  bundle: join(repo, 'bindings-wasm', 'dist', 'default'),
  subject,
  port: Number(process.env.PORT ?? 0),
});
await adminCall('PUT', 'settings', { client_event_types: ['page.view'], allowed_origins: [page.url] });
console.log(`browser quick start on ${page.url} (subject ${subject}, publishable key ${publishableKey.slice(0, 18)}…)`);

if (!process.argv.includes('--headless')) {
  console.log('open it in a browser; Ctrl-C stops');
} else {
  const { chromium } = await import(join(repo, 'bindings-wasm', 'node_modules', 'playwright-core', 'index.mjs'));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking'],
  });
  let ok = false;
  try {
    const tab = await browser.newPage();
    await tab.goto(page.url);
    await tab.waitForFunction(() => window.meterline || window.meterlineFailed, null, { timeout: 30_000 });
    const failed = await tab.evaluate(() => window.meterlineFailed && String(window.meterlineFailed));
    if (failed) throw new Error(`the page failed to start: ${failed}`);
    for (let i = 0; i < 3; i++) await tab.click('#view');
    const seen = await tab.evaluate(async () => {
      const { client, config, errors } = window.meterline;
      await client.flush(10_000);
      const tier = await client.entitlement(config.subject, 'tier');
      return { stats: client.stats(), tier, errors: errors.map((e) => `${e.name}: ${e.message}`) };
    });
    const res = await fetch(`${endpoint}/v1/events?type=page.view&subject=${encodeURIComponent(subject)}`, {
      headers: { authorization: `Bearer ${secretKey}` },
    });
    const stored = (await res.json()).events ?? [];
    console.log(`tracked in the page: 3 clicks → sent ${seen.stats.sent}, dropped ${seen.stats.dropped}`);
    console.log(`stored by the server: ${stored.length} page.view event(s) of ${subject}`);
    for (const e of stored) console.log(`  ${e.id} ${e.time} ${JSON.stringify(e.data)}`);
    console.log(
      `entitlement read in the page: ${subject} tier → ${JSON.stringify(seen.tier.value)} (hasAccess ${seen.tier.hasAccess}, source ${seen.tier.source})`,
    );
    if (seen.errors.length) console.log(`errors in the page: ${seen.errors.join('; ')}`);
    ok = stored.length === 3 && seen.tier.hasAccess;
  } finally {
    await browser.close();
    await page.close();
    await backend.shutdown(1000);
  }
  if (!ok) {
    console.error('the demo did not store three events and read the entitlement');
    process.exit(1);
  }
}
