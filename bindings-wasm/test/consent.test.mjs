// Opt-out in headless Chromium against a real meterline-server: the core's consent gate,
// recorded in localStorage for the page's API key. A stack of its own, so the choice (which
// survives reloads by design) reaches no other test.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { browserMissing, startStack, storedEvents } from './helpers.mjs';

const missing = browserMissing();
if (missing) console.log(`# consent tests skipped: ${missing}`);

describe('meterline-web opt-out in Chromium', { skip: missing ?? false }, () => {
  let stack;
  let tab;
  before(async () => {
    stack = await startStack();
    tab = await stack.open();
  });
  after(async () => {
    await stack?.stop();
  });

  /** Reloads the page and waits for its client. */
  async function reload() {
    await tab.reload();
    await tab.waitForFunction(() => window.meterline || window.meterlineFailed, null, { timeout: 30_000 });
  }

  test('optOut keeps nothing, discards what is queued, and survives a reload; optIn sends again', async () => {
    const entry = `meterline.consent.${stack.pk.split('_')[2]}`;
    const out = await tab.evaluate(async (entry) => {
      const { client, config } = window.meterline;
      const before = client.stats().optedOut;
      // Queued, not yet sent (no task ran in between): optOut() discards it.
      const queued = client.track('page.view', config.subject, { path: '/queued-then-opted-out' });
      client.optOut();
      const refused = client.track('page.view', config.subject, { path: '/opted-out' });
      await client.flush(10_000);
      return {
        queued,
        refused,
        optedOut: client.optedOut,
        counted: client.stats().optedOut - before,
        stored: localStorage.getItem(entry),
      };
    }, entry);
    assert.equal(typeof out.queued, 'string');
    assert.equal(out.refused, null);
    assert.equal(out.optedOut, true);
    assert.equal(out.counted, 2, 'the discarded event and the refused one');
    assert.equal(out.stored, 'opted_out');

    await reload();
    const reloaded = await tab.evaluate(async () => {
      const { client, config } = window.meterline;
      const id = client.track('page.view', config.subject, { path: '/opted-out-after-reload' });
      await client.flush(10_000);
      return { optedOut: client.optedOut, id, stats: client.stats() };
    });
    assert.deepEqual([reloaded.optedOut, reloaded.id], [true, null]);
    assert.equal(reloaded.stats.optedOut, 1);
    assert.equal(reloaded.stats.enqueued, 0, JSON.stringify(reloaded.stats));

    const paths = (await storedEvents(stack.server, { type: 'page.view' })).map((e) => e.data.path);
    for (const path of ['/queued-then-opted-out', '/opted-out', '/opted-out-after-reload'])
      assert.ok(!paths.includes(path), `${path} was stored while opted out`);

    const back = await tab.evaluate(async (entry) => {
      const { client, config } = window.meterline;
      client.optIn();
      const id = client.track('page.view', config.subject, { path: '/opted-in' });
      await client.flush(10_000);
      return { id, optedOut: client.optedOut, stored: localStorage.getItem(entry) };
    }, entry);
    assert.deepEqual([back.optedOut, back.stored], [false, null]);
    const stored = await storedEvents(stack.server, { type: 'page.view' });
    assert.equal(stored.filter((e) => e.id === back.id).length, 1);
    await reload();
    assert.equal(await tab.evaluate(() => window.meterline.client.optedOut), false);
  });
});
