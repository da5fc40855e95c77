// The realtime stream in headless Chromium against a real meterline-server: the page's
// WebSocket authenticates with the `{"op":"auth"}` first frame, admin changes reach the
// page's entitlement cache without a fetch, `usage.threshold` reaches its callback, and a
// server restart is followed by a reconnect that resumes with `since`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { requestCount, seedCatalog } from '../../bindings-node/test/helpers.mjs';
import { admin, browserMissing, eventually, settings, startStack } from './helpers.mjs';
import { startRestartableServer } from './restartable.mjs';

const missing = browserMissing();
if (missing) console.log(`# stream tests skipped: ${missing}`);

const ENTITLEMENTS_ROUTE = '/v1/customers/{subject}/entitlements';

describe('meterline-web realtime stream in Chromium', { skip: missing ?? false }, () => {
  let server;
  let stack;
  let tab;
  /** Frames the page sent on its stream sockets, in order, with the socket's number. */
  const sent = [];
  before(async () => {
    server = await startRestartableServer();
    await seedCatalog(server, { limit: 5, subjects: ['c1'] });
    stack = await startStack({ server });
    await settings(server, { client_event_types: ['page.view', 'api.call'] });
    tab = await stack.open();
    let sockets = 0;
    tab.on('websocket', (ws) => {
      const n = ++sockets;
      ws.on('framesent', (f) => sent.push({ socket: n, frame: JSON.parse(f.payload) }));
    });
    await tab.evaluate(() => {
      const { Client, config, token } = window.meterline;
      const s = { changes: [], thresholds: [], errors: [] };
      s.client = new Client({
        apiKey: config.publishableKey,
        endpoint: config.endpoint,
        customerToken: token,
        fetchSchemas: false,
        flushIntervalMs: 50,
        onConnectionChange: (connected, reason) => s.changes.push({ connected, reason }),
        onUsageThreshold: (event) => s.thresholds.push(event),
        onError: (e) => s.errors.push({ name: e.name, code: e.code, message: e.message }),
      });
      window.streamed = s;
    });
  });
  after(async () => {
    await stack?.stop();
    await server?.stop();
  });

  const connected = () => tab.evaluate(() => window.streamed.client.stats().streamConnected);
  const seats = () => tab.evaluate(() => window.streamed.client.cachedEntitlement('c1', 'tier'));

  test('an admin change reaches the cache over the stream, without a fetch', async () => {
    const first = await tab.evaluate(() => window.streamed.client.entitlement('c1', 'tier'));
    assert.deepEqual(first.value, { seats: 3 });
    assert.equal(first.source, 'fresh');
    await eventually(connected, 'the stream to connect');
    // The socket's first frame carries the credentials; the subscription follows.
    await eventually(() => sent.some((s) => s.frame.op === 'subscribe'), 'the subscribe frame');
    assert.equal(sent[0].frame.op, 'auth', JSON.stringify(sent));
    assert.equal(sent[0].frame.key, stack.pk);
    assert.equal(sent[0].frame.token, await tab.evaluate(() => window.meterline.token));
    assert.deepEqual(sent[1].frame.subjects, ['c1']);
    const fetches = await requestCount(server, ENTITLEMENTS_ROUTE);

    await admin(server, 'PUT', 'customers/c1', { plan: 'pro', overrides: { tier: { value: { seats: 7 } } } });
    const answer = await eventually(async () => {
      const a = await seats();
      return a.value?.seats === 7 && a;
    }, 'the change in the page cache');
    assert.equal(answer.source, 'cache');
    assert.equal(await requestCount(server, ENTITLEMENTS_ROUTE), fetches, 'no fetch: it came over the stream');
    const s = await tab.evaluate(() => ({ changes: window.streamed.changes, errors: window.streamed.errors }));
    assert.deepEqual(s.changes, [{ connected: true, reason: 'connected' }]);
    assert.deepEqual(s.errors, []);
  });

  test('usage.threshold reaches onUsageThreshold', async () => {
    await tab.evaluate(async () => {
      await window.streamed.client.entitlement('c1', 'calls');
      for (let i = 0; i < 4; i++) window.streamed.client.track('api.call', 'c1', { n: i });
      await window.streamed.client.flush(10_000);
    });
    const [event] = await eventually(async () => {
      const t = await tab.evaluate(() => window.streamed.thresholds);
      return t.length > 0 && t;
    }, 'the usage.threshold callback');
    assert.equal(event.subject, 'c1');
    assert.equal(event.feature, 'calls');
    assert.equal(event.threshold, 0.8);
    assert.equal(event.limit, 5);
    assert.ok(event.seq > 0);
  });

  test('the server restarted: the stream reconnects and resumes with since', async () => {
    const before = sent.length;
    await server.down();
    await eventually(async () => !(await connected()), 'the page to see the stream lost', 20_000);
    await server.up();
    // Changed at once: before or after the page reconnects, it must reach the cache.
    await admin(server, 'PUT', 'customers/c1', { plan: 'pro', overrides: { tier: { value: { seats: 9 } } } });
    const answer = await eventually(
      async () => {
        const a = await seats();
        return a.value?.seats === 9 && a;
      },
      'the change made across the restart',
      30_000,
    );
    assert.equal(answer.source, 'cache');
    assert.ok(await connected());
    assert.equal(await requestCount(server, ENTITLEMENTS_ROUTE), 0, 'resumed, not refetched');
    const after = sent.slice(before);
    const socket = after[0]?.socket;
    const frames = after.filter((s) => s.socket === socket).map((s) => s.frame);
    assert.equal(frames[0]?.op, 'auth', JSON.stringify(after));
    const subscribe = frames.find((f) => f.op === 'subscribe');
    assert.deepEqual(subscribe.subjects, ['c1']);
    assert.ok(Number.isInteger(subscribe.since) && subscribe.since > 0, JSON.stringify(subscribe));
    const changes = await tab.evaluate(() => window.streamed.changes.map((c) => c.connected));
    assert.deepEqual(changes.slice(0, 2), [true, false]);
    assert.equal(changes.at(-1), true);
  });
});
