// The persisted outbox in headless Chromium against a real meterline-server: events not yet
// acknowledged are kept in IndexedDB, sent after a reload exactly once, survive a server
// restart, and tabs of one origin share them (one tab replays at a time; a live tab's events
// are its own). Each test has a stack of its own: what one leaves persisted reaches no other.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { browserMissing, eventually, storedEvents } from './helpers.mjs';
import { lifeStack, notOnce, ready, trackViews } from './page-life.mjs';

const missing = browserMissing();
if (missing) console.log(`# persisted-outbox tests skipped: ${missing}`);

/** Runs `body(stack)` on a fresh stack, stopped after. */
async function withStack(body) {
  const stack = await lifeStack();
  try {
    await body(stack);
  } finally {
    await stack.stop();
  }
}

describe('meterline-web persisted outbox in Chromium', { skip: missing ?? false }, () => {
  test('a reload with unsent events sends them after the reload, exactly once', () =>
    withStack(async (stack) => {
      const tab = await stack.open();
      // The server is down: nothing leaves this page, not even the beacon as it unloads.
      await stack.server.stop();
      const ids = await trackViews(tab, 30, { prefix: '/reload' });
      await eventually(async () => (await stack.persisted(tab)).length === 30, '30 events persisted');
      await eventually(
        () => tab.evaluate(() => window.meterline.client.stats().spoolLength === 30),
        'stats().spoolLength 30',
      );
      await tab.reload();
      await ready(tab);
      await stack.server.start();
      await eventually(
        async () => (await storedEvents(stack.server, { type: 'page.view' })).length >= 30,
        'the 30 events stored after the reload',
      );
      await tab.evaluate(() => window.meterline.client.flush(10_000));
      assert.deepEqual(notOnce(ids, await storedEvents(stack.server, { type: 'page.view' })), []);
      const stats = await tab.evaluate(() => window.meterline.client.stats());
      assert.equal(stats.sent, 30, `the reloaded page sent them: ${JSON.stringify(stats)}`);
      assert.equal(stats.duplicates, 0);
      await eventually(async () => (await stack.persisted(tab)).length === 0, 'acknowledged events removed');
      await eventually(
        () => tab.evaluate(() => window.meterline.client.stats().spoolLength === 0),
        'stats().spoolLength 0',
      );
    }));

  test('the server stopped and restarted while the page tracks: nothing lost, nothing twice', () =>
    withStack(async (stack) => {
      const tab = await stack.open();
      await tab.evaluate(() => {
        const { client, config } = window.meterline;
        window.tracked = [];
        let i = 0;
        window.ticker = setInterval(() => {
          window.tracked.push(client.track('page.view', config.subject, { path: `/restart/${i++}` }));
        }, 10);
      });
      await new Promise((r) => setTimeout(r, 700));
      await stack.server.stop();
      await new Promise((r) => setTimeout(r, 1500));
      await stack.server.start();
      await new Promise((r) => setTimeout(r, 700));
      const ids = await tab.evaluate(async () => {
        clearInterval(window.ticker);
        await window.meterline.client.flush(20_000);
        return window.tracked;
      });
      assert.ok(ids.length > 100, `tracked ${ids.length}`);
      assert.deepEqual(notOnce(ids, await storedEvents(stack.server, { type: 'page.view' })), []);
      const stats = await tab.evaluate(() => window.meterline.client.stats());
      assert.equal(stats.dropped, 0, JSON.stringify(stats));
      assert.ok(stats.retried > 0, `the outage was seen: ${JSON.stringify(stats)}`);
      await eventually(async () => (await stack.persisted(tab)).length === 0, 'acknowledged events removed');
    }));

  test('tabs share the persisted outbox: a live tab keeps its own, one tab takes over a gone one, each event sent once', () =>
    withStack(async (stack) => {
      // The server is down while A and B track and close.
      await stack.server.stop();
      const a = await stack.open();
      const b = await stack.open();
      const ids = [
        ...(await trackViews(a, 15, { prefix: '/tab-a' })),
        ...(await trackViews(b, 15, { prefix: '/tab-b' })),
      ];
      await eventually(async () => (await stack.persisted(a)).length === 30, '30 events persisted');
      // A third tab starts while A and B live: their events are theirs, it takes none.
      const c = await stack.open();
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(
        (await c.evaluate(() => window.meterline.client.stats())).queueLength,
        0,
        'a live tab’s events taken',
      );
      assert.equal((await stack.persisted(c)).length, 30);
      // A and B are closed (their beacons fail) and the server answers again: C, which saw
      // them at its start, or one of two tabs starting now takes their events over.
      await a.close();
      await b.close();
      const sessionLocks = () =>
        c.evaluate(
          async () =>
            (await navigator.locks.query()).held.filter((l) => l.name.startsWith('meterline.session.')).length,
        );
      await eventually(async () => (await sessionLocks()) === 1, 'the closed tabs’ locks released');
      await stack.server.start();
      const [d, e] = await Promise.all([stack.open(), stack.open()]);
      await eventually(
        async () => (await storedEvents(stack.server, { type: 'page.view' })).length >= 30,
        'the 30 events stored',
      );
      const stats = [];
      for (const tab of [c, d, e]) {
        await tab.evaluate(() => window.meterline.client.flush(10_000));
        stats.push(await tab.evaluate(() => window.meterline.client.stats()));
      }
      assert.deepEqual(notOnce(ids, await storedEvents(stack.server, { type: 'page.view' })), []);
      const received = stats.reduce((n, s) => n + s.sent + s.duplicates, 0);
      assert.equal(received, 30, `each event sent by one tab: ${JSON.stringify(stats)}`);
      assert.equal(stats[0].enqueued, 0, 'the watching tab tracked nothing itself');
      await eventually(async () => (await stack.persisted(d)).length === 0, 'acknowledged events removed');
    }));
});
