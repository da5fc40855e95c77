// meterline-web in headless Chromium (Debian's, driven by playwright-core) against a real
// meterline-server on 127.0.0.1: the quick-start page tracks with a publishable key and a
// customer token; what the server stored is read back by id.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { browserMissing, mintToken, settings, startStack, storedEvents } from './helpers.mjs';

const missing = browserMissing();
if (missing) console.log(`# browser tests skipped: ${missing}`);

describe('meterline-web in Chromium', { skip: missing ?? false }, () => {
  let stack;
  let tab;
  before(async () => {
    stack = await startStack();
    tab = await stack.open();
  });
  after(async () => {
    await stack?.stop();
  });

  test('events tracked in the page are stored exactly once', async () => {
    const ids = await tab.evaluate(async () => {
      const { client, config } = window.meterline;
      const ids = [];
      for (let i = 0; i < 200; i++) ids.push(client.track('page.view', config.subject, { path: `/p/${i}`, i }));
      // Two ids given by the page, one of them twice: the server keeps it once.
      ids.push(client.track('page.view', config.subject, { path: '/again' }, { id: 'page-evt-1' }));
      client.track('page.view', config.subject, { path: '/again' }, { id: 'page-evt-1' });
      await client.flush(10_000);
      return ids;
    });
    assert.equal(ids.length, 201);
    const stored = await storedEvents(stack.server, { type: 'page.view' });
    const counts = new Map();
    for (const e of stored) counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
    for (const id of ids) assert.equal(counts.get(id), 1, `event ${id} stored ${counts.get(id) ?? 0} times`);
    assert.equal(stored.length, 201);
    const first = stored.find((e) => e.id === ids[0]);
    assert.deepEqual(first.data, { path: '/p/0', i: 0 });
    assert.equal(first.subject, 'c1');
    const stats = await tab.evaluate(() => window.meterline.client.stats());
    assert.equal(stats.enqueued, 202);
    assert.equal(stats.sent + stats.duplicates, 202, JSON.stringify(stats));
    assert.equal(stats.duplicates, 1);
    assert.equal(stats.queueLength, 0);
  });

  test('an idle client keeps no timer and no request', async () => {
    const idle = await tab.evaluate(async () => {
      const { client, config } = window.meterline;
      await client.flush();
      const before = client.idle();
      client.track('page.view', config.subject, { path: '/idle' });
      const busy = !client.idle();
      await client.flush();
      return { before, busy, after: client.idle() };
    });
    assert.deepEqual(idle, { before: true, busy: true, after: true });
  });

  test('every request names the SDK in X-Meterline-SDK, and the server accepts it (CORS)', async () => {
    // What Chromium's network stack sent (headers as on the wire, CORS preflights included).
    const seen = [];
    const record = (request) => {
      if (request.url().startsWith(stack.server.url)) seen.push(request);
    };
    tab.on('request', record);
    let id;
    try {
      id = await tab.evaluate(async () => {
        const { client, config } = window.meterline;
        const id = client.track('page.view', config.subject, { path: '/sdk-header' });
        await client.flush(10_000);
        await client.entitlement(config.subject, 'seats').catch(() => null);
        return id;
      });
    } finally {
      tab.off('request', record);
    }
    const calls = await Promise.all(
      seen.map(async (r) => ({ method: r.method(), url: r.url(), headers: await r.allHeaders() })),
    );
    const sent = calls.filter((c) => c.method !== 'OPTIONS');
    assert.ok(
      sent.some((c) => c.url.endsWith('/v1/events')),
      JSON.stringify(calls.map((c) => c.url)),
    );
    for (const c of sent) {
      assert.match(
        c.headers['x-meterline-sdk'] ?? '(none)',
        /^meterline-web\/\d+\.\d+\.\d+\S* \(Mozilla\/5\.0 .*Chrome\/.*\)$/,
        `${c.method} ${c.url}`,
      );
    }
    // The server let the header through its CORS rules: the event was stored, once.
    const stored = await storedEvents(stack.server, { type: 'page.view' });
    assert.equal(stored.filter((e) => e.id === id).length, 1);
  });

  /** Runs `track` calls in a fresh client of the page with `token`; returns codes, stats and errors. */
  async function trackWith(token, events) {
    return tab.evaluate(
      async ({ token, events }) => {
        const { Client, config } = window.meterline;
        const errors = [];
        const client = new Client({
          apiKey: config.publishableKey,
          endpoint: config.endpoint,
          customerToken: token,
          fetchSchemas: false,
          onError: (e) => errors.push({ name: e.name, code: e.code, eventId: e.eventId ?? null }),
        });
        const ids = events.map(([type, subject]) => client.track(type, subject, { path: '/refused' }));
        await client.flush(10_000);
        await new Promise((r) => setTimeout(r, 50)); // error callbacks run as tasks of their own
        const stats = client.stats();
        await client.shutdown(1000);
        return { ids, errors, stats };
      },
      { token, events },
    );
  }

  test('a publishable key without a valid token is refused with its code, nothing stored', async () => {
    const forged = mintToken('ml_sk_' + stack.server.secretKey.split('_')[2] + '_notthesecretatall0000000', 'c1');
    const { ids, errors, stats } = await trackWith(forged, [['page.view', 'c1']]);
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0].name, 'AuthError');
    assert.equal(errors[0].code, 'unauthorized');
    assert.equal(stats.sent, 0);
    assert.equal(stats.dropped, 1);
    const stored = await storedEvents(stack.server, { type: 'page.view' });
    assert.ok(!stored.some((e) => e.id === ids[0]));
  });

  test("another subject's events and a type outside client_event_types are refused, the rest stored", async () => {
    const token = mintToken(stack.server.secretKey, 'c1');
    const { ids, errors, stats } = await trackWith(token, [
      ['page.view', 'c2'],
      ['api.call', 'c1'],
      ['page.view', 'c1'],
    ]);
    assert.deepEqual(
      errors.map((e) => [e.name, e.code, e.eventId]),
      [
        ['RejectedError', 'forbidden', ids[0]],
        ['RejectedError', 'forbidden', ids[1]],
      ],
    );
    assert.equal(stats.rejected, 2);
    assert.equal(stats.sent, 1);
    const stored = new Set((await storedEvents(stack.server)).map((e) => e.id));
    assert.ok(!stored.has(ids[0]) && !stored.has(ids[1]));
    assert.ok(stored.has(ids[2]));
  });

  test('a disallowed origin gets no CORS answer: nothing is stored, and it is delivered once allowed', async () => {
    await settings(stack.server, { allowed_origins: ['https://app.example.com'] });
    const outcome = await tab.evaluate(async () => {
      const { client, config } = window.meterline;
      const id = client.track('page.view', config.subject, { path: '/cors' });
      let flushed = null;
      try {
        await client.flush(1500);
      } catch (e) {
        flushed = { name: e.name, code: e.code };
      }
      let direct = null;
      try {
        await fetch(`${config.endpoint}/v1/events`, {
          method: 'POST',
          headers: { authorization: 'Bearer x' },
          body: '[]',
        });
      } catch (e) {
        direct = e.name;
      }
      return { id, flushed, direct, stats: client.stats() };
    });
    assert.deepEqual(outcome.flushed, { name: 'TimeoutError', code: 'timeout' });
    assert.equal(outcome.direct, 'TypeError', 'the browser itself refuses to read the answer');
    assert.ok(outcome.stats.retried >= 1, JSON.stringify(outcome.stats));
    let stored = await storedEvents(stack.server, { type: 'page.view' });
    assert.ok(!stored.some((e) => e.id === outcome.id));
    await settings(stack.server, { allowed_origins: [stack.page.url] });
    await tab.evaluate(() => window.meterline.client.flush(10_000));
    stored = await storedEvents(stack.server, { type: 'page.view' });
    assert.equal(stored.filter((e) => e.id === outcome.id).length, 1);
  });
});
