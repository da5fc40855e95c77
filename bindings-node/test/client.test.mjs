// The client against a real meterline-server: round trip, ids and times, duplicates,
// background errors through on('error'), flush/shutdown and their errors.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  AuthError,
  Client,
  ClosedError,
  MeterlineError,
  RejectedError,
  TimeoutError,
  ValidationError,
} from '../index.mjs';
import { DEAD_ENDPOINT, UNKNOWN_KEY, putSchema, startServer, storedEvents } from './helpers.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

function client(options = {}) {
  return new Client({ apiKey: server.secretKey, endpoint: server.url, source: 'node-tests', ...options });
}

/** Resolves with the next 'error' event of `c`, or rejects after `ms`. */
function nextError(c, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no error event')), ms);
    c.once('error', (e) => {
      clearTimeout(timer);
      resolve(e);
    });
  });
}

describe('round trip', () => {
  test('tracked events are stored exactly as sent', async () => {
    const c = client();
    const ids = [];
    for (let i = 0; i < 25; i++)
      ids.push(
        c.track('node.round_trip', `customer-${i % 3}`, {
          i,
          model: 'm-large',
          nested: { ok: true, list: [1, 'two', null] },
        }),
      );
    assert.equal(new Set(ids).size, 25);
    await c.flush();
    const stats = c.stats();
    assert.equal(stats.enqueued, 25);
    assert.equal(stats.sent, 25);
    assert.equal(stats.queueLength, 0);
    const stored = await storedEvents(server, { type: 'node.round_trip' });
    assert.deepEqual(
      stored.map((e) => e.id),
      ids,
    );
    const first = stored[0];
    assert.equal(first.specversion, '1.0');
    assert.equal(first.source, 'node-tests');
    assert.equal(first.subject, 'customer-0');
    assert.deepEqual(first.data, { i: 0, model: 'm-large', nested: { ok: true, list: [1, 'two', null] } });
    assert.match(first.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    await c.shutdown();
  });

  test('types and subjects that JSON must escape, or that look like the call around them, arrive intact', async () => {
    // type and subject cross into Rust as strings of their own, data as JSON text.
    const c = client();
    const subjects = ['cus"tomer', 'back\\slash', '","', 'naïve ✓ 𝄞', 'ends with ,null,null]'];
    for (const subject of subjects) c.track('node.escapes', subject, { subject });
    // Control characters are not CloudEvents String characters: refused at once, not queued.
    for (const subject of ['line\nbreak', 'ctl\u0001']) {
      assert.throws(
        () => c.track('node.escapes', subject, { subject }),
        (e) => e instanceof ValidationError && e.code === 'invalid_event' && e.path === '/subject',
      );
    }
    c.track('node.esc"apes', 'plain', { n: 1 });
    assert.equal(c.track('node.escapes', 'with-id', { n: 2 }, { id: 'given-id-1' }), 'given-id-1');
    // The id comes back as given, non-ASCII too (ASCII ids take a Latin-1 fast path).
    assert.equal(c.track('node.escapes_id', 'c1', { n: 3 }, { id: 'ïd-✓-𝄞' }), 'ïd-✓-𝄞');
    await c.flush();
    const stored = await storedEvents(server, { type: 'node.escapes' });
    assert.deepEqual(
      stored.map((e) => e.subject),
      [...subjects, 'with-id'],
    );
    for (const e of stored.slice(0, subjects.length)) assert.deepEqual(e.data, { subject: e.subject });
    assert.equal(stored.at(-1).id, 'given-id-1');
    const [quoted] = await storedEvents(server, { type: 'node.esc"apes' });
    assert.deepEqual([quoted.subject, quoted.data], ['plain', { n: 1 }]);
    await c.shutdown();
  });

  test('events around and far beyond the native scratch buffer (16 KiB) arrive intact', async () => {
    // The native side copies the strings into one reused 16 KiB buffer and re-reads a string
    // that may have been cut short; 4-byte characters land on every offset near the limit.
    const c = client();
    const sent = new Map();
    const track = (subject, data) => {
      sent.set(subject, data);
      c.track('node.scratch', subject, data);
    };
    for (let pad = 16_280; pad < 16_380; pad++) track(`customer-${pad}-𝄞`, { text: 'x'.repeat(pad) + '𝄞é𝄞', pad });
    track('customer-big', { text: '𝄞'.repeat(100_000), list: Array.from({ length: 1000 }, (_, i) => `item-${i}-é`) });
    // A small event after the big one: the buffer is cut back to its usual size.
    track('customer-after', { after: true });
    await c.flush();
    // Several batches (over 1.6 MB in all) may be stored in either order: compare by subject.
    const stored = await storedEvents(server, { type: 'node.scratch' });
    assert.equal(stored.length, sent.size);
    assert.deepEqual(new Map(stored.map((e) => [e.subject, e.data])), sent);
    await c.shutdown();
  });

  test('id and time given by the caller are kept; a Date becomes RFC 3339', async () => {
    const c = client();
    assert.equal(c.track('node.ids', 'c1', { n: 1 }, { id: 'order-17', time: '2026-11-24T10:00:00.123Z' }), 'order-17');
    c.track('node.ids', 'c1', { n: 2 }, { id: 'order-18', time: new Date(Date.UTC(2026, 10, 24, 11)) });
    await c.shutdown();
    const stored = await storedEvents(server, { type: 'node.ids' });
    assert.deepEqual(
      stored.map((e) => [e.id, e.time]),
      [
        ['order-17', '2026-11-24T10:00:00.123Z'],
        ['order-18', '2026-11-24T11:00:00.000Z'],
      ],
    );
  });

  test('a resent id is stored once and counted as a duplicate', async () => {
    const c = client();
    c.track('node.dup', 'c1', { n: 1 }, { id: 'same-id' });
    await c.flush();
    c.track('node.dup', 'c1', { n: 1 }, { id: 'same-id' });
    await c.flush();
    assert.equal(c.stats().sent, 1);
    assert.equal(c.stats().duplicates, 1);
    assert.equal((await storedEvents(server, { type: 'node.dup' })).length, 1);
    await c.shutdown();
  });

  test('every compression setting delivers', async () => {
    for (const compression of ['gzip', 'zstd', 'identity']) {
      const c = client({ compression });
      c.track('node.compression', 'c1', { compression });
      await c.shutdown();
      assert.equal(c.stats().sent, 1, compression);
    }
    const stored = await storedEvents(server, { type: 'node.compression' });
    assert.deepEqual(
      stored.map((e) => e.data.compression),
      ['gzip', 'zstd', 'identity'],
    );
  });

  test('batches by flushAt without an explicit flush', async () => {
    const c = client({ flushAt: 10, flushIntervalMs: 60_000 });
    for (let i = 0; i < 30; i++) c.track('node.batches', 'c1', { i });
    const deadline = Date.now() + 10_000;
    while (c.stats().sent < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(c.stats().sent, 30);
    assert.ok(c.stats().batches >= 3);
    await c.shutdown();
  });
});

describe('background errors', () => {
  test('an event the server rejects reaches on("error") as a ValidationError', async () => {
    await putSchema(server, 'node.strict', {
      type: 'object',
      required: ['tokens'],
      properties: { tokens: { type: 'integer' } },
    });
    // fetchSchemas off: the client does not know the schema, so only the server can refuse.
    const c = client({ fetchSchemas: false });
    const error = nextError(c);
    c.track('node.strict', 'c1', { tokens: 3 }, { id: 'good' });
    c.track('node.strict', 'c1', { tokens: 'many' }, { id: 'bad' });
    await c.flush();
    const e = await error;
    assert.ok(e instanceof RejectedError, e.name);
    assert.ok(e instanceof ValidationError);
    assert.ok(e instanceof MeterlineError);
    assert.equal(e.code, 'schema_violation');
    assert.equal(e.path, '/data/tokens');
    assert.equal(e.eventId, 'bad');
    assert.equal(c.stats().rejected, 1);
    assert.equal(c.stats().sent, 1);
    await c.shutdown();
  });

  test('schemas fetched from the server validate at track()', async () => {
    await putSchema(server, 'node.fetched', {
      type: 'object',
      required: ['gb'],
      properties: { gb: { type: 'number' } },
    });
    const c = client();
    const deadline = Date.now() + 10_000;
    // The fetch runs in the background at start; wait until it is in force.
    for (;;) {
      try {
        c.track('node.fetched', 'c1', { gb: 'x' });
      } catch (e) {
        assert.ok(e instanceof ValidationError);
        assert.equal(e.path, '/data/gb');
        break;
      }
      assert.ok(Date.now() < deadline, 'schema never fetched');
      await new Promise((r) => setTimeout(r, 50));
    }
    await c.shutdown();
  });

  test('an unknown key is reported as an AuthError and the batch is dropped', async () => {
    const c = new Client({ apiKey: UNKNOWN_KEY, endpoint: server.url, fetchSchemas: false });
    const error = nextError(c);
    c.track('node.auth', 'c1', {});
    await c.flush();
    const e = await error;
    assert.ok(e instanceof AuthError, `${e.name}: ${e.message}`);
    assert.equal(e.code, 'unauthorized');
    assert.equal(c.stats().dropped, 1);
    await c.shutdown();
  });

  test('a throwing or rejecting listener is reported as a warning and the client carries on', async () => {
    const c = new Client({ apiKey: UNKNOWN_KEY, endpoint: server.url, fetchSchemas: false });
    const warnings = [];
    const onWarning = (w) => warnings.push(w);
    process.on('warning', onWarning);
    const seen = [];
    c.on('error', () => {
      throw new Error('listener bug');
    });
    c.on('error', async () => {
      throw new Error('async listener bug');
    });
    c.on('error', (e) => seen.push(e));
    c.track('node.listener', 'c1', {});
    await c.flush();
    const deadline = Date.now() + 5_000;
    while (warnings.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    process.off('warning', onWarning);
    assert.equal(seen.length, 1, 'the listener after the throwing one still ran');
    const ours = warnings.filter((w) => w.code === 'listener_failed');
    assert.equal(ours.length, 2);
    assert.deepEqual(ours.map((w) => w.cause.message).sort(), ['async listener bug', 'listener bug']);
    // Still healthy.
    assert.equal(typeof c.track('node.listener', 'c1', {}), 'string');
    await c.shutdown(100).catch(() => {});
  });

  test('with no listener a background error becomes a process warning', async () => {
    const c = new Client({ apiKey: UNKNOWN_KEY, endpoint: server.url, fetchSchemas: false });
    const warning = new Promise((resolve) => process.once('warning', resolve));
    c.track('node.nolistener', 'c1', {});
    await c.flush();
    const w = await warning;
    assert.ok(w instanceof AuthError);
    await c.shutdown(100).catch(() => {});
  });
});

describe('flush and shutdown', () => {
  test('flush rejects with a TimeoutError when the server is unreachable', async () => {
    const c = new Client({ apiKey: server.secretKey, endpoint: DEAD_ENDPOINT, fetchSchemas: false });
    const errors = [];
    c.on('error', (e) => errors.push(e));
    c.track('node.timeout', 'c1', {});
    await assert.rejects(c.flush(200), (e) => e instanceof TimeoutError && e.code === 'timeout');
    // shutdown gives up on what is left: it is counted as dropped and the call times out.
    await assert.rejects(c.shutdown(200), TimeoutError);
    assert.equal(c.stats().dropped, 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(errors.every((e) => e instanceof MeterlineError));
  });

  test('after shutdown track() throws a ClosedError, and shutdown is idempotent', async () => {
    const c = client();
    c.track('node.closed', 'c1', {});
    await c.shutdown();
    await c.shutdown();
    assert.throws(
      () => c.track('node.closed', 'c1', {}),
      (e) => e instanceof ClosedError && e.code === 'client_closed',
    );
    assert.equal(c.stats().sent, 1);
    await c.flush();
  });

  test('Symbol.asyncDispose shuts the client down', async () => {
    const c = client();
    c.track('node.dispose', 'c1', {});
    await c[Symbol.asyncDispose]();
    assert.equal(c.stats().sent, 1);
    assert.throws(() => c.track('node.dispose', 'c1', {}), ClosedError);
  });

  test('concurrent flushes from many callers all settle', async () => {
    const c = client();
    const flushes = [];
    for (let i = 0; i < 50; i++) {
      c.track('node.concurrent', 'c1', { i });
      flushes.push(c.flush());
    }
    await Promise.all(flushes);
    assert.equal(c.stats().sent, 50);
    await c.shutdown();
  });
});
