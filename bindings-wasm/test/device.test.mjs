// What meterline-web keeps on the device, in headless Chromium against a real
// meterline-server: `persist: false` writes no event to IndexedDB and a reload replays
// nothing of it; when IndexedDB refuses a write (the site's data cleared while the page is
// open, through the DevTools protocol: Chromium closes the connection), every event is still
// delivered, kept, or counted as dropped and reported — none vanishes uncounted. Each test
// has a stack of its own.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { browserMissing, eventually, storedEvents } from './helpers.mjs';
import { lifeStack, ready, trackViews } from './page-life.mjs';

const missing = browserMissing();
if (missing) console.log(`# device-storage tests skipped: ${missing}`);

/** Runs `body(stack)` on a fresh stack, stopped after. */
async function withStack(body) {
  const stack = await lifeStack();
  try {
    await body(stack);
  } finally {
    await stack.stop();
  }
}

/** A second client in the tab (`window.second`), the quick start's options plus `extra`. */
function secondClient(tab, extra) {
  return tab.evaluate((extra) => {
    const { Client, config, token } = window.meterline;
    window.secondErrors = [];
    window.second = new Client({
      apiKey: config.publishableKey,
      endpoint: config.endpoint,
      customerToken: token,
      source: location.origin,
      fetchSchemas: false,
      stream: false,
      onError: (e) => window.secondErrors.push(e.code),
      ...extra,
    });
  }, extra);
}

describe('meterline-web on the device, in Chromium', { skip: missing ?? false }, () => {
  test('persist: false writes no event to IndexedDB and a reload replays none of them', () =>
    withStack(async (stack) => {
      const tab = await stack.open();
      // The server is down: nothing leaves the page, not even the beacon as it unloads.
      await stack.server.stop();
      await secondClient(tab, { persist: false });
      const privateIds = await tab.evaluate(() => {
        const { config } = window.meterline;
        return Array.from({ length: 20 }, (_, i) =>
          window.second.track('page.view', config.subject, { path: `/private/${i}` }),
        );
      });
      // The quick start's own client (persist on) is the control: its events are persisted
      // and replayed after the reload.
      const keptIds = await trackViews(tab, 5, { prefix: '/kept' });
      await eventually(async () => (await stack.persisted(tab)).length >= 5, 'the 5 kept events persisted');
      await new Promise((r) => setTimeout(r, 300));
      const persisted = (await stack.persisted(tab)).map((e) => e.id);
      assert.deepEqual(
        privateIds.filter((id) => persisted.includes(id)),
        [],
        'persist: false wrote events to IndexedDB',
      );
      const second = await tab.evaluate(() => window.second.stats());
      assert.equal(second.enqueued, 20);
      assert.equal(second.spoolLength, 0, JSON.stringify(second));
      await tab.reload();
      await ready(tab);
      await stack.server.start();
      await eventually(
        async () => (await storedEvents(stack.server, { type: 'page.view' })).length >= 5,
        'the 5 kept events stored after the reload',
      );
      await tab.evaluate(() => window.meterline.client.flush(10_000));
      await new Promise((r) => setTimeout(r, 500));
      const stored = (await storedEvents(stack.server, { type: 'page.view' })).map((e) => e.id);
      assert.deepEqual(
        keptIds.filter((id) => !stored.includes(id)),
        [],
        'the control replayed',
      );
      assert.deepEqual(
        privateIds.filter((id) => stored.includes(id)),
        [],
        'events of a persist: false client replayed after the reload',
      );
      const stats = await tab.evaluate(() => window.meterline.client.stats());
      assert.equal(stats.sent, 5, JSON.stringify(stats));
    }));

  test('IndexedDB closed under the page: events given up on are counted as dropped and reported once', () =>
    withStack(async (stack) => {
      const tab = await stack.open();
      await stack.server.stop();
      await secondClient(tab, {});
      await tab.evaluate(() => window.second.track('page.view', window.meterline.config.subject, { path: '/first' }));
      await eventually(async () => (await stack.persisted(tab)).length === 1, 'the first event persisted');
      // The user clears the site's data while the page is open: Chromium deletes the
      // databases and closes their connections, so every later write of the page fails.
      const cdp = await stack.context.newCDPSession(tab);
      await cdp.send('Storage.clearDataForOrigin', {
        origin: new URL(stack.page.url).origin,
        storageTypes: 'indexeddb',
      });
      const shutdown = await tab.evaluate(async () => {
        const { config } = window.meterline;
        for (let i = 0; i < 10; i++) window.second.track('page.view', config.subject, { path: `/closed/${i}` });
        // No time to deliver anything: what is queued is given up on.
        return window.second.shutdown(0).then(
          () => 'resolved',
          (e) => e.code,
        );
      });
      assert.equal(shutdown, 'timeout');
      // The batch on the wire as shutdown gave up settles when its request fails.
      await eventually(() => tab.evaluate(() => window.second.stats().dropped >= 11), '11 dropped');
      await new Promise((r) => setTimeout(r, 300));
      const stats = await tab.evaluate(() => window.second.stats());
      // Neither delivered nor kept (the store is gone): each of the 11 counted as dropped.
      assert.equal(stats.enqueued, 11);
      assert.equal(stats.sent, 0);
      assert.equal(stats.dropped, 11, JSON.stringify(stats));
      assert.equal(stats.spoolLength, 0);
      assert.equal((await stack.persisted(tab)).length, 0, 'nothing kept');
      const errors = await tab.evaluate(() => window.secondErrors);
      assert.equal(errors.filter((c) => c === 'spool_error').length, 1, `reported once: ${errors}`);
    }));
});
