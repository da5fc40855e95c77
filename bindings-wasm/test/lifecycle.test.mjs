// The page's life in headless Chromium against a real meterline-server: `offline` pauses
// sending and `online` flushes at once; leaving the page sends what is queued through the
// beacon route with fetch(keepalive), in pieces under 64 KiB.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { requestCount } from '../../bindings-node/test/helpers.mjs';
import { browserMissing, eventually, storedEvents } from './helpers.mjs';
import { lifeStack, notOnce, ready, trackViews } from './page-life.mjs';

const missing = browserMissing();
if (missing) console.log(`# page lifecycle tests skipped: ${missing}`);

async function withStack(body) {
  const stack = await lifeStack();
  try {
    await body(stack);
  } finally {
    await stack.stop();
  }
}

describe('meterline-web page lifecycle in Chromium', { skip: missing ?? false }, () => {
  test('offline pauses sending (no request at all), online delivers at once, each event once', () =>
    withStack(async (stack) => {
      const tab = await stack.open();
      const requests = [];
      tab.on('request', (r) => {
        if (r.url().startsWith(stack.server.url)) requests.push(r.url());
      });
      await stack.context.setOffline(true);
      await eventually(() => tab.evaluate(() => navigator.onLine === false), 'navigator.onLine false');
      const ids = await trackViews(tab, 20, { prefix: '/offline' });
      // Settles once online; a rejection is kept to be reported below, not thrown mid-test.
      const flushed = tab.evaluate(() => window.meterline.client.flush(15_000).then(() => Date.now())).catch((e) => e);
      // Past the flush interval and two backoff ceilings: a client that kept trying would
      // have sent by now.
      await new Promise((r) => setTimeout(r, 2500));
      assert.deepEqual(requests, [], 'requests while offline');
      assert.equal(await tab.evaluate(() => window.meterline.client.idle()), true, 'no timer while offline');
      const online = Date.now();
      await stack.context.setOffline(false);
      const delivered = await flushed;
      assert.equal(typeof delivered, 'number', `flush: ${delivered}`);
      assert.ok(delivered - online < 2000, `delivered ${delivered - online} ms after online`);
      assert.deepEqual(notOnce(ids, await storedEvents(stack.server, { type: 'page.view' })), []);
      const stats = await tab.evaluate(() => window.meterline.client.stats());
      assert.equal(stats.sent, 20, JSON.stringify(stats));
      assert.equal(stats.retried, 0, `no attempt failed: ${JSON.stringify(stats)}`);
    }));

  test('pagehide sends what is queued through the beacon route, the first 64 KiB at once and the rest after the next load', () =>
    withStack(async (stack) => {
      const tab = await stack.open();
      // The ingest route never answers: only the beacon route can deliver before the reload.
      const unblock = await stack.block('/v1/events');
      // ~1 KiB each: about 200 KiB, more than three beacons' worth.
      const ids = await trackViews(tab, 200, { prefix: '/leaving', pad: 900 });
      await eventually(async () => (await stack.persisted(tab)).length === 200, '200 events persisted');
      await tab.goto('about:blank');
      const first = await eventually(async () => {
        const stored = await storedEvents(stack.server, { type: 'page.view' });
        return stored.length > 0 && stored;
      }, 'the first piece stored through the beacon route');
      // The request is counted when its answer is written, after the events are committed.
      await eventually(async () => (await requestCount(stack.server, '/v1/beacon')) > 0, 'the beacon counted');
      assert.equal(await requestCount(stack.server, '/v1/beacon'), 1);
      assert.ok(first.length >= 40 && first.length < 64, `${first.length} events of ~1 KiB in the first piece`);
      assert.deepEqual(notOnce(ids.slice(0, first.length), first), [], 'the oldest ones, once');
      // The next page load sends the rest (and the first piece again: the page that sent it
      // never heard the answer; the server keeps each id once).
      await unblock();
      await tab.goto(stack.page.url);
      await ready(tab);
      await eventually(
        async () => (await storedEvents(stack.server, { type: 'page.view' })).length >= 200,
        'the 200 events stored after the next load',
      );
      assert.deepEqual(notOnce(ids, await storedEvents(stack.server, { type: 'page.view' })), []);
      const stats = await tab.evaluate(() => window.meterline.client.stats());
      assert.equal(stats.sent + stats.duplicates, 200, JSON.stringify(stats));
      assert.equal(stats.duplicates, first.length, JSON.stringify(stats));
    }));

  test('a hidden page sends what is queued by beacon in pieces under 64 KiB, one after another, and hears the answers', () =>
    withStack(async (stack) => {
      const tab = await stack.open();
      // The sizes of the keepalive bodies the page hands to fetch.
      await tab.evaluate(() => {
        const fetch = window.fetch;
        window.keepalive = [];
        window.fetch = (request, init) => {
          if (request instanceof Request && request.keepalive)
            window.keepalive.push(
              request
                .clone()
                .arrayBuffer()
                .then((b) => b.byteLength),
            );
          return fetch(request, init);
        };
      });
      const ids = await trackViews(tab, 200, { prefix: '/hidden', pad: 900 });
      // What a tab switch does: the page stays, its visibility turns hidden.
      await tab.evaluate(() => {
        Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await eventually(() => tab.evaluate(() => window.meterline.client.stats().sent === 200), 'the answers heard');
      assert.deepEqual(notOnce(ids, await storedEvents(stack.server, { type: 'page.view' })), []);
      const sizes = await tab.evaluate(() => Promise.all(window.keepalive));
      // The quota holds one piece at a time: the next leaves when one finishes (what is left
      // when the flush interval comes may go by the ingest route: the page is alive).
      assert.ok(sizes.length >= 2, `split into ${sizes.length} pieces`);
      for (const size of sizes) assert.ok(size > 0 && size <= 64 * 1024, `a piece of ${size} bytes`);
      assert.equal(await requestCount(stack.server, '/v1/beacon'), sizes.length);
      const stats = await tab.evaluate(() => window.meterline.client.stats());
      assert.equal(stats.retried, 0, `no piece refused for the quota: ${JSON.stringify(stats)}`);
      await eventually(async () => (await stack.persisted(tab)).length === 0, 'acknowledged events removed');
    }));
});
