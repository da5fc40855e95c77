// The token provider and identify()/reset() in headless Chromium against a real
// meterline-server: an expired token refreshed once for every batch refused with it (events
// stored once), a stream closed 4401 at its token's expiry reconnecting with a fresh one,
// reset() then track() → ForbiddenError, identify() switching users without a batch spanning
// two, and bad input to each of them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { seedCatalog } from '../../bindings-node/test/helpers.mjs';
import { admin, browserMissing, eventually, mintToken, settings, startStack, storedEvents } from './helpers.mjs';

const missing = browserMissing();
if (missing) console.log(`# identity tests skipped: ${missing}`);

describe('meterline-web token provider and identify/reset in Chromium', { skip: missing ?? false }, () => {
  let stack;
  let tab;
  before(async () => {
    stack = await startStack();
    await seedCatalog(stack.server, { subjects: ['c1'] });
    await settings(stack.server, { client_event_types: ['page.view'] });
    tab = await stack.open();
  });
  after(async () => {
    await stack?.stop();
  });

  /** Tokens minted here (the page's provider hands them out in order, then the last again). */
  const tokens = (...specs) => specs.map(([subject, ttl]) => mintToken(stack.server.secretKey, subject, ttl));

  test('an expired token is refreshed once for every batch refused with it; events stored once', async () => {
    const answers = tokens(['c1', -3600], ['c1', 600]);
    const out = await tab.evaluate(async (answers) => {
      const { Client, config } = window.meterline;
      let calls = 0;
      const errors = [];
      const client = new Client({
        apiKey: config.publishableKey,
        endpoint: config.endpoint,
        fetchSchemas: false,
        stream: false,
        flushAt: 5,
        maxInFlight: 4,
        // A Promise of a string, resolved later: the provider is asynchronous.
        tokenProvider: () => new Promise((r) => setTimeout(() => r(answers[Math.min(calls++, 1)]), 20)),
        onError: (e) => errors.push(`${e.name} ${e.code} ${e.message}`),
      });
      const ids = [];
      for (let i = 0; i < 20; i++) ids.push(client.track('page.view', 'c1', { path: '/token', i }));
      await client.flush(10_000);
      const stats = client.stats();
      await client.shutdown(2000);
      return { ids, calls, errors, stats };
    }, answers);
    assert.deepEqual(out.errors, []);
    assert.equal(out.calls, 2, 'one call for the first token, one for every batch refused with it');
    assert.deepEqual([out.stats.sent, out.stats.duplicates, out.stats.dropped], [20, 0, 0], JSON.stringify(out.stats));
    assert.equal(out.stats.tokenProviderFailures, 0);
    const stored = await storedEvents(stack.server, { type: 'page.view' });
    for (const id of out.ids) assert.equal(stored.filter((e) => e.id === id).length, 1, `event ${id}`);
  });

  test('the stream closed 4401 at its token expiry reconnects with a fresh token', async () => {
    // The server keeps an expired token's stream open for its 30 s leeway: this one is 25 s
    // past its exp, so the stream is closed with 4401 about 5 s after it opens.
    const answers = tokens(['c1', -25], ['c1', 600]);
    const sent = [];
    const onSocket = (ws) => ws.on('framesent', (f) => sent.push(JSON.parse(f.payload)));
    tab.on('websocket', onSocket);
    try {
      await tab.evaluate((answers) => {
        const { Client, config } = window.meterline;
        const s = { calls: 0, changes: [], errors: [] };
        s.client = new Client({
          apiKey: config.publishableKey,
          endpoint: config.endpoint,
          fetchSchemas: false,
          tokenProvider: () => answers[Math.min(s.calls++, 1)],
          onConnectionChange: (connected, reason) => s.changes.push({ connected, reason }),
          onError: (e) => s.errors.push({ name: e.name, code: e.code, message: e.message }),
        });
        window.refreshed = s;
        return s.client.entitlement('c1', 'tier');
      }, answers);
      const state = () => tab.evaluate(() => ({ ...window.refreshed, client: undefined }));
      await eventually(async () => (await state()).changes.length >= 3, 'lost at expiry and back', 20_000);
      const s = await state();
      assert.deepEqual(
        s.changes.map((c) => c.connected),
        [true, false, true],
        JSON.stringify(s.changes),
      );
      assert.match(s.changes[1].reason, /4401.*token_expired/);
      assert.equal(s.calls, 2);
      const auths = sent.filter((f) => f.op === 'auth');
      assert.deepEqual(
        auths.map((f) => f.token),
        answers,
      );
      assert.deepEqual(
        s.errors.map((e) => [e.name, e.code]),
        [['AuthError', 'unauthorized']],
      );
      // Still live: a change reaches the cache.
      await admin(stack.server, 'PUT', 'customers/c1', { plan: 'pro', overrides: { tier: { value: { seats: 4 } } } });
      await eventually(
        () => tab.evaluate(() => window.refreshed.client.cachedEntitlement('c1', 'tier').value?.seats === 4),
        'the change after the reconnect',
      );
      await tab.evaluate(() => window.refreshed.client.shutdown(1000));
    } finally {
      tab.off('websocket', onSocket);
    }
  });

  test('reset() then track() throws ForbiddenError; identify() switches users, no batch spans two', async () => {
    const [c1, c2] = tokens(['c1', 600], ['c2', 600]);
    const out = await tab.evaluate(
      async ({ c1, c2 }) => {
        const { Client, config } = window.meterline;
        const errors = [];
        const client = new Client({
          apiKey: config.publishableKey,
          endpoint: config.endpoint,
          customerToken: c1,
          fetchSchemas: false,
          stream: false,
          flushIntervalMs: 60_000,
          onError: (e) => errors.push(`${e.name} ${e.code} ${e.message}`),
        });
        const ids = { c1: [], c2: [] };
        for (let i = 0; i < 3; i++) ids.c1.push(client.track('page.view', 'c1', { path: '/who', i }));
        client.identify('c2', c2);
        for (let i = 0; i < 3; i++) ids.c2.push(client.track('page.view', 'c2', { path: '/who', i }));
        client.reset();
        let refused = null;
        try {
          client.track('page.view', 'c2', { path: '/nobody' });
        } catch (e) {
          refused = { name: e.name, code: e.code, message: e.message };
        }
        await client.flush(10_000);
        await new Promise((r) => setTimeout(r, 50));
        const stats = client.stats();
        await client.shutdown(1000);
        return { ids, refused, errors, stats };
      },
      { c1, c2 },
    );
    assert.equal(out.refused?.name, 'ForbiddenError', JSON.stringify(out.refused));
    assert.equal(out.refused.code, 'forbidden');
    assert.match(out.refused.message, /identify/);
    assert.deepEqual(out.errors, []);
    assert.equal(out.stats.rejected, 0, JSON.stringify(out.stats));
    assert.equal(out.stats.sent, 6);
    assert.ok(out.stats.batches >= 2, 'one batch per user at least');
    const stored = await storedEvents(stack.server, { type: 'page.view' });
    for (const subject of ['c1', 'c2']) {
      for (const id of out.ids[subject]) {
        const found = stored.filter((e) => e.id === id);
        assert.equal(found.length, 1, `event ${id}`);
        assert.equal(found[0].subject, subject);
      }
    }
  });

  test('bad input: typed errors naming what was wrong, provider failures reported and counted', async () => {
    const token = mintToken(stack.server.secretKey, 'c1', 600);
    const out = await tab.evaluate(async (token) => {
      const { Client, config } = window.meterline;
      const caught = (f) => {
        try {
          f();
          return null;
        } catch (e) {
          return { name: e.name, code: e.code, message: e.message, option: e.option ?? null };
        }
      };
      const base = { apiKey: config.publishableKey, endpoint: config.endpoint, fetchSchemas: false, stream: false };
      const notFunction = caught(() => new Client({ ...base, tokenProvider: 'abc' }));
      const errors = [];
      const thrown = [];
      const onError = (e) => errors.push({ name: e.name, code: e.code, message: e.message });
      // Each provider is wrong a different way; track() never throws for it.
      const providers = [() => 42, () => Promise.reject(new Error('backend down')), () => 'not a jwt'];
      const stats = [];
      for (const tokenProvider of providers) {
        const client = new Client({ ...base, tokenProvider, onError });
        try {
          client.track('page.view', 'c1', { path: '/bad-provider' });
        } catch (e) {
          thrown.push(e.name);
        }
        await client.flush(300).catch(() => {});
        stats.push(client.stats().tokenProviderFailures);
        await client.shutdown(10).catch(() => {});
      }
      const client = new Client({ ...base, customerToken: token });
      const identify = [
        caught(() => client.identify(42, token)),
        caught(() => client.identify('c1', 7)),
        caught(() => client.identify('c1', 'not-a-token')),
        caught(() => client.identify('c2', token)),
      ];
      const secret = new Client({ apiKey: 'ml_sk_k1_0123456789abcdef0123', endpoint: config.endpoint, stream: false });
      const onSecret = [caught(() => secret.identify('c1', token)), caught(() => secret.reset())];
      await new Promise((r) => setTimeout(r, 50));
      return { notFunction, errors, thrown, stats, identify, onSecret };
    }, token);
    assert.equal(out.notFunction.name, 'ConfigError');
    assert.equal(out.notFunction.option, 'tokenProvider');
    assert.match(out.notFunction.message, /tokenProvider.*must be a function/);
    assert.deepEqual(out.thrown, []);
    for (const failures of out.stats) assert.ok(failures >= 1, JSON.stringify(out.stats));
    const messages = out.errors.filter((e) => e.code === 'unauthorized').map((e) => e.message);
    assert.ok(
      messages.some((m) => /returned a number, not a string/.test(m)),
      JSON.stringify(out.errors),
    );
    assert.ok(
      messages.some((m) => /rejected with Error: backend down/.test(m)),
      JSON.stringify(out.errors),
    );
    assert.ok(
      messages.some((m) => /returned no customer token/.test(m)),
      JSON.stringify(out.errors),
    );
    assert.deepEqual(
      out.identify.map((e) => e && [e.name, e.code]),
      [
        ['ArgumentError', 'invalid_argument'],
        ['ArgumentError', 'invalid_argument'],
        ['ArgumentError', 'invalid_argument'],
        ['ArgumentError', 'invalid_argument'],
      ],
    );
    assert.match(out.identify[0].message, /subject/);
    assert.match(out.identify[1].message, /token/);
    assert.match(out.identify[3].message, /not "c2"/);
    assert.deepEqual(
      out.onSecret.map((e) => e && [e.name, e.option]),
      [
        ['ConfigError', 'apiKey'],
        ['ConfigError', 'apiKey'],
      ],
    );
  });
});
