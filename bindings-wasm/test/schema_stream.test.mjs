// `schema.updated` over the realtime stream, in headless Chromium against a real
// meterline-server: a schema changed through the admin API while the page is connected is
// what the full build validates the next track() by — fetched at once, not at the next
// scheduled refresh (an hour away here). The default build has no client-side schemas.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { putSchema } from '../../bindings-node/test/helpers.mjs';
import { browserMissing, eventually, startStack } from './helpers.mjs';

const missing = browserMissing();
if (missing) console.log(`# schema.updated tests skipped: ${missing}`);

/** What track() of `data` does in the tab's schema-fetching client: `ok` or the error code. */
function trackOutcome(tab, data) {
  return tab.evaluate((data) => {
    try {
      window.schemed.track('page.view', window.meterline.config.subject, data);
      return 'ok';
    } catch (e) {
      return e.code;
    }
  }, data);
}

describe('schema.updated in Chromium (full build)', { skip: missing ?? false }, () => {
  test('a schema changed while the page is connected validates the next track() at once', async () => {
    const stack = await startStack({ bundle: 'full' });
    try {
      await putSchema(stack.server, 'page.view', {
        type: 'object',
        properties: { path: { type: 'string' } },
      });
      const tab = await stack.open();
      await tab.evaluate(async () => {
        const { Client, config, token } = window.meterline;
        window.schemed = new Client({
          apiKey: config.publishableKey,
          endpoint: config.endpoint,
          customerToken: token,
          source: location.origin,
          fetchSchemas: true,
          schemaRefreshIntervalMs: 3_600_000,
          flushIntervalMs: 3_600_000,
        });
        // An entitlement cached: the stream connects and subscribes.
        await window.schemed.entitlement(config.subject, 'sso');
      });
      await eventually(async () => (await trackOutcome(tab, { path: 7 })) === 'schema_violation', 'first schemas');
      assert.equal(await trackOutcome(tab, { path: '/a' }), 'ok');
      await eventually(() => tab.evaluate(() => window.schemed.stats().streamConnected), 'the stream connected');
      // `plan` becomes required: the stream announces the new ETag.
      const changed = Date.now();
      await putSchema(stack.server, 'page.view', {
        type: 'object',
        properties: { path: { type: 'string' }, plan: { type: 'string' } },
        required: ['plan'],
      });
      await eventually(
        async () => (await trackOutcome(tab, { path: '/b' })) === 'schema_violation',
        'track() refused by the new schema',
        10_000,
      );
      const took = Date.now() - changed;
      assert.ok(took < 10_000, `took ${took} ms`);
      assert.equal(await trackOutcome(tab, { path: '/c', plan: 'pro' }), 'ok');
    } finally {
      await stack.stop();
    }
  });
});
