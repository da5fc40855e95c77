// Bad input from JavaScript: every argument of the wrong type, values JSON cannot carry,
// huge payloads. Each is a typed MeterlineError, and the process stays healthy.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import { ArgumentError, Client, ConfigError, MeterlineError, QueueFullError, ValidationError } from '../index.mjs';
import { startServer, storedEvents } from './helpers.mjs';

let server;
let client;
before(async () => {
  server = await startServer();
  client = new Client({ apiKey: server.secretKey, endpoint: server.url, fetchSchemas: false });
});
after(async () => {
  await client?.shutdown();
  await server?.stop();
});

/** The core's default `source`: $HOSTNAME, else /etc/hostname, else `meterline`. */
function defaultSource() {
  const fromFile = () => {
    try {
      return readFileSync('/etc/hostname', 'utf8').trim();
    } catch {
      return '';
    }
  };
  return process.env.HOSTNAME?.trim() || fromFile() || 'meterline';
}

function refused(fn, Class, fields) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Class, `expected ${Class.name}, got ${e?.name}: ${e?.message}`);
    assert.ok(e instanceof MeterlineError);
    assert.equal(typeof e.code, 'string');
    assert.ok(e.message.length > 0 && e.message.length < 600, e.message);
    for (const [k, v] of Object.entries(fields)) assert.equal(e[k], v, `${k} of ${e.message}`);
    return true;
  });
}

const cyclic = () => {
  const o = { a: 1 };
  o.self = o;
  return o;
};
const deepArrayCycle = () => {
  const list = [1];
  const o = { list: [{ list }] };
  list.push(o);
  return o;
};

describe('data values JSON cannot carry', () => {
  const cases = [
    ['BigInt', { n: 10n }, '/data/n'],
    ['function', { f() {} }, '/data/f'],
    ['arrow function in an array', { list: [1, () => 2] }, '/data/list/1'],
    ['symbol', { s: Symbol('x') }, '/data/s'],
    ['NaN', { tokens: NaN }, '/data/tokens'],
    ['Infinity', { nested: { x: Infinity } }, '/data/nested/x'],
    ['-Infinity', { x: -Infinity }, '/data/x'],
    ['undefined in an array', { list: [undefined] }, '/data/list/0'],
    ['cyclic object', cyclic(), '/data/self'],
    ['cycle through arrays', deepArrayCycle(), '/data/list/0/list/1'],
    ['Map', { m: new Map([[1, 2]]) }, '/data/m'],
    ['Set', { s: new Set([1]) }, '/data/s'],
    ['lone surrogate', { s: 'a\ud800b' }, '/data/s'],
    ['lone surrogate in a key', { ['k\udc00']: 1 }, '/data/k\udc00'],
    ['key needing JSON-pointer escapes', { 'a/b~c': NaN }, '/data/a~1b~0c'],
    // Objects `track()`'s flat fast path does not take: the full walk still refuses them.
    ['NaN in a null-prototype object', Object.assign(Object.create(null), { ok: 1, x: NaN }), '/data/x'],
    [
      'function in a class instance',
      new (class Usage {
        f = () => 1;
      })(),
      '/data/f',
    ],
    ['NaN after flat values', { a: 'x', b: 2, c: true, d: null, e: undefined, f: NaN }, '/data/f'],
  ];
  for (const [name, data, path] of cases) {
    test(name, () =>
      refused(() => client.track('bad.input', 'c1', data), ValidationError, { code: 'invalid_event', path }),
    );
  }

  test('nesting deeper than the JSON parser allows', () => {
    let deep = { leaf: 1 };
    for (let i = 0; i < 200; i++) deep = { deep };
    refused(() => client.track('bad.input', 'c1', deep), ValidationError, { code: 'invalid_event' });
  });

  test('an enumerable property added to Object.prototype is not sent, as JSON.stringify does', async () => {
    // The fast path's `for…in` visits it; it only sends the call down the full walk.
    Object.defineProperty(Object.prototype, 'inherited', { value: NaN, enumerable: true, configurable: true });
    try {
      client.track('bad.inherited', 'c1', { own: 1 });
    } finally {
      delete Object.prototype.inherited;
    }
    await client.flush();
    const [stored] = await storedEvents(server, { type: 'bad.inherited' });
    assert.deepEqual(stored.data, { own: 1 });
  });

  test('undefined properties are left out, as JSON.stringify does', async () => {
    client.track('bad.undefined', 'c1', { kept: 1, dropped: undefined });
    await client.flush();
    const [stored] = await storedEvents(server, { type: 'bad.undefined' });
    assert.deepEqual(stored.data, { kept: 1 });
  });

  test('objects with toJSON are serialized by it', async () => {
    client.track('bad.tojson', 'c1', { at: new Date(0), custom: { toJSON: () => 'custom' } });
    await client.flush();
    const [stored] = await storedEvents(server, { type: 'bad.tojson' });
    assert.deepEqual(stored.data, { at: '1970-01-01T00:00:00.000Z', custom: 'custom' });
  });
});

describe('wrong argument types, for every argument', () => {
  const others = [undefined, null, 42, true, 10n, Symbol('s'), () => 1, {}, [], new Date(0)];

  for (const value of others) {
    const label =
      typeof value === 'symbol'
        ? 'symbol'
        : typeof value === 'bigint'
          ? 'bigint'
          : Array.isArray(value)
            ? 'array'
            : value === null
              ? 'null'
              : typeof value;
    test(`type = ${label}`, () => refused(() => client.track(value, 'c1', {}), ValidationError, { path: '/type' }));
    test(`subject = ${label}`, () =>
      refused(() => client.track('t', value, {}), ValidationError, { path: '/subject' }));
    if (label !== 'object') {
      test(`data = ${label}`, () => refused(() => client.track('t', 'c1', value), ValidationError, { path: '/data' }));
    }
  }
  test('data = a string', () =>
    refused(() => client.track('t', 'c1', 'tokens=5'), ValidationError, { path: '/data', code: 'invalid_event' }));

  for (const options of [42, 'x', true, [], () => 1]) {
    test(`options = ${typeof options === 'function' ? 'function' : JSON.stringify(options)}`, () =>
      refused(() => client.track('t', 'c1', {}, options), ArgumentError, {
        argument: 'options',
        code: 'invalid_argument',
      }));
  }
  test('an unknown track() option', () =>
    refused(() => client.track('t', 'c1', {}, { timestamp: 1 }), ArgumentError, { argument: 'options' }));
  for (const id of [42, {}, 10n, Symbol('id')]) {
    test(`id = ${typeof id}`, () =>
      refused(() => client.track('t', 'c1', {}, { id }), ValidationError, { path: '/id' }));
  }
  for (const time of [42, {}, new Date(NaN), 'yesterday']) {
    test(`time = ${time instanceof Date ? 'invalid Date' : typeof time === 'string' ? time : typeof time}`, () =>
      refused(() => client.track('t', 'c1', {}, { time }), ValidationError, { path: '/time' }));
  }
  for (const timeout of ['1s', -1, NaN, Infinity, 10n, null]) {
    test(`flush(${typeof timeout === 'bigint' ? '10n' : String(timeout)})`, async () => {
      await assert.rejects(client.flush(timeout), (e) => e instanceof ArgumentError && e.argument === 'timeoutMs');
    });
    test(`shutdown(${typeof timeout === 'bigint' ? '10n' : String(timeout)})`, async () => {
      await assert.rejects(client.shutdown(timeout), (e) => e instanceof ArgumentError && e.argument === 'timeoutMs');
    });
  }
});

describe('options of new Client()', () => {
  const base = () => ({ apiKey: server.secretKey, endpoint: server.url });
  const cases = [
    ['no options', undefined, 'options'],
    ['options not an object', 'ml_sk_x', 'options'],
    ['apiKey missing', { apiKey: undefined }, 'apiKey'],
    ['apiKey malformed', { apiKey: 'secret', endpoint: 'http://127.0.0.1:1' }, 'apiKey'],
    ['apiKey a number', { apiKey: 42, endpoint: 'http://127.0.0.1:1' }, 'apiKey'],
    ['endpoint missing', { endpoint: undefined }, 'endpoint'],
    ['endpoint not http', { endpoint: 'ftp://x' }, 'endpoint'],
    ['unknown option', { flushEvery: 5 }, 'flushEvery'],
    ['snake_case option', { flush_at: 5 }, 'flush_at'],
    ['flushAt zero', { flushAt: 0 }, 'flushAt'],
    ['flushAt fractional', { flushAt: 1.5 }, 'flushAt'],
    ['flushAt NaN', { flushAt: NaN }, 'flushAt'],
    ['flushAt a string', { flushAt: '500' }, 'flushAt'],
    ['flushAt a BigInt', { flushAt: 500n }, 'flushAt'],
    ['flushAt above the server batch limit', { flushAt: 10_001 }, 'flushAt'],
    ['flushIntervalMs zero', { flushIntervalMs: 0 }, 'flushIntervalMs'],
    ['flushIntervalMs negative', { flushIntervalMs: -5 }, 'flushIntervalMs'],
    ['maxBatchBytes too small', { maxBatchBytes: 10 }, 'maxBatchBytes'],
    ['maxQueueSize zero', { maxQueueSize: 0 }, 'maxQueueSize'],
    ['requestTimeoutMs zero', { requestTimeoutMs: 0 }, 'requestTimeoutMs'],
    ['maxInFlight too many', { maxInFlight: 1000 }, 'maxInFlight'],
    ['overflow unknown', { overflow: 'explode' }, 'overflow'],
    ['compression unknown', { compression: 'brotli' }, 'compression'],
    ['strictTypes a string', { strictTypes: 'yes' }, 'strictTypes'],
    ['fetchSchemas null', { fetchSchemas: null }, 'fetchSchemas'],
    ['source empty', { source: '' }, 'source'],
    ['source a function', { source: () => 'x' }, 'source'],
    ['schemas an array', { schemas: [] }, 'schemas'],
    ['schemas with an invalid schema', { schemas: { t: { type: 'bogus' } } }, 'schemas'],
    ['schemas with NaN', { schemas: { t: { type: 'object', maxProperties: NaN } } }, 'schemas'],
  ];
  for (const [name, patch, option] of cases) {
    test(name, () => {
      const options = patch === undefined || typeof patch !== 'object' ? patch : { ...base(), ...patch };
      refused(() => new Client(options), ConfigError, { option, code: 'invalid_config' });
    });
  }

  test('every documented option is accepted', async () => {
    const c = new Client({
      ...base(),
      source: 'options-test',
      flushAt: 100,
      maxBatchBytes: 512 * 1024,
      flushIntervalMs: 250,
      maxQueueSize: 1000,
      overflow: 'block',
      blockTimeoutMs: 50,
      compression: 'zstd',
      requestTimeoutMs: 5000,
      strictTypes: false,
      fetchSchemas: false,
      schemas: { 'opt.t': { type: 'object' } },
      maxInFlight: 1,
    }).on('error', () => {});
    c.track('opt.t', 'c1', {});
    await c.shutdown();
    assert.equal(c.stats().sent, 1);
  });

  test('an option explicitly undefined counts as not given', async () => {
    const c = new Client({ ...base(), fetchSchemas: false, flushAt: undefined, source: undefined, schemas: undefined });
    c.track('opt.undefined', 'c1', {});
    await c.shutdown();
    const [stored] = await storedEvents(server, { type: 'opt.undefined' });
    // `source: undefined` took the default (the host name), not the text "undefined".
    assert.equal(stored.source, defaultSource());
  });
});

describe('huge payloads', () => {
  test('an event over maxBatchBytes is refused with event_too_large', () => {
    refused(() => client.track('bad.huge', 'c1', { blob: 'x'.repeat(2 * 1024 * 1024) }), ValidationError, {
      code: 'event_too_large',
    });
  });

  test('a payload too large to become a string is refused, not a crash', () => {
    // ~0.5 GiB of JSON: past V8's largest string, JSON.stringify throws a RangeError.
    const chunk = 'y'.repeat(64 * 1024 * 1024);
    const data = { a: chunk, b: chunk, c: chunk, d: chunk, e: chunk, f: chunk, g: chunk, h: chunk, i: chunk };
    refused(() => client.track('bad.huge', 'c1', data), ValidationError, { code: 'event_too_large' });
  });

  test('overlong type, subject and id are refused by the core', () => {
    refused(() => client.track('t'.repeat(300), 'c1', {}), ValidationError, { path: '/type' });
    refused(() => client.track('t', 's'.repeat(300), {}), ValidationError, { path: '/subject' });
    refused(() => client.track('t', 'c1', {}, { id: 'i'.repeat(300) }), ValidationError, { path: '/id' });
  });
});

describe('the native tracking function called directly (internal API, hostile use)', () => {
  // `Client.track()` checks its arguments before the native call; the native function must
  // still refuse anything else with a report, never crash or queue it.
  const require = createRequire(import.meta.url);
  const native = require('../native.js');
  let nativeClient;
  let track;
  before(() => {
    nativeClient = new native.NativeClient(
      { apiKey: server.secretKey, endpoint: server.url, fetchSchemas: false },
      () => {},
      () => {},
      () => {},
    );
    track = nativeClient.tracker();
  });
  after(() => nativeClient.shutdown(5000));

  const reported = (fn, code, path) =>
    assert.throws(fn, (e) => {
      assert.equal(e.code, code, e.message);
      if (path !== undefined) assert.equal(e.path, path, e.message);
      assert.ok(e.message.length > 0 && e.message.length < 600, e.message);
      return true;
    });
  for (const [what, args, path] of [
    ['type a number', [1, 'c1', '{}'], '/type'],
    ['subject an object', ['t', {}, '{}'], '/subject'],
    ['data an object instead of its JSON', ['t', 'c1', { a: 1 }], '/data'],
  ]) {
    test(`${what} → invalid_event at ${path}`, () => reported(() => track(...args), 'invalid_event', path));
  }
  for (const data of ['', '{', '{"a":1}x', '{"a":1} {"b":2}', 'NaN', '{"a":01}', "{'a':1}"]) {
    test(`data ${JSON.stringify(data)} is not one JSON value → invalid_event at /data`, () =>
      reported(() => track('t', 'c1', data), 'invalid_event', '/data'));
  }
  for (const data of ['[1]', '"s"', '7', 'null', 'true']) {
    test(`data ${data} is JSON but not an object → invalid_event`, () =>
      reported(() => track('t', 'c1', data), 'invalid_event'));
  }
  test('too few arguments throw, too many are ignored', () => {
    assert.throws(() => track('t', 'c1'));
    assert.equal(typeof track('node.native_extra', 'c1', '{"n":1}', null, null, 'extra'), 'string');
  });
  test('a lone surrogate in type reaches the core as U+FFFD, never as invalid UTF-8', () => {
    // The JS layer refuses ill-formed strings first; N-API replaces them if one gets through.
    const id = track('node.native\uD800', 'c1', '{}');
    assert.equal(typeof id, 'string');
  });
});

describe('the process stays healthy', () => {
  test('after all of the above, valid events still go through', async () => {
    const before = client.stats();
    const ids = [];
    for (let i = 0; i < 10; i++) ids.push(client.track('bad.after', 'c1', { i }));
    await client.flush();
    assert.equal(client.stats().sent - before.sent, 10);
    const stored = await storedEvents(server, { type: 'bad.after' });
    assert.deepEqual(
      stored.map((e) => e.id),
      ids,
    );
    // Nothing from the refused calls reached the queue.
    assert.equal(client.stats().enqueued, before.enqueued + 10);
  });

  test('10,000 refused calls in a row leak nothing visible', () => {
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 10_000; i++) {
      try {
        client.track('bad.loop', 'c1', { n: i % 2 ? NaN : 1n });
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
      }
    }
    for (let i = 0; i < 2_000; i++) {
      try {
        client.track('', 'c1', {});
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
      }
    }
    assert.ok(process.memoryUsage().rss - rss < 200 * 1024 * 1024);
  });
});

describe('entitlement options of new Client()', () => {
  const base = () => ({ apiKey: server.secretKey, endpoint: server.url });
  const longKey = 'f'.repeat(300);
  const cases = [
    ['cacheSize zero', { cacheSize: 0 }, 'cacheSize'],
    ['cacheSize negative', { cacheSize: -1 }, 'cacheSize'],
    ['cacheSize fractional', { cacheSize: 1.5 }, 'cacheSize'],
    ['cacheSize a string', { cacheSize: '10' }, 'cacheSize'],
    ['cacheSize a BigInt', { cacheSize: 10n }, 'cacheSize'],
    ['cacheSize too large', { cacheSize: 2_000_000 }, 'cacheSize'],
    ['entitlementTimeoutMs zero', { entitlementTimeoutMs: 0 }, 'entitlementTimeoutMs'],
    ['entitlementTimeoutMs over a minute', { entitlementTimeoutMs: 61_000 }, 'entitlementTimeoutMs'],
    ['entitlementTimeoutMs NaN', { entitlementTimeoutMs: NaN }, 'entitlementTimeoutMs'],
    ['entitlementTimeoutMs Infinity', { entitlementTimeoutMs: Infinity }, 'entitlementTimeoutMs'],
    ['maxStaleMs negative', { maxStaleMs: -1 }, 'maxStaleMs'],
    ['maxStaleMs over a year', { maxStaleMs: 366 * 24 * 3600 * 1000 }, 'maxStaleMs'],
    ['maxStaleMs a symbol', { maxStaleMs: Symbol('x') }, 'maxStaleMs'],
    ['maxTtlMs zero', { maxTtlMs: 0 }, 'maxTtlMs'],
    ['maxTtlMs a boolean', { maxTtlMs: true }, 'maxTtlMs'],
    ['stream a string', { stream: 'yes' }, 'stream'],
    ['stream a number', { stream: 1 }, 'stream'],
    ['streamEndpoint a number', { streamEndpoint: 5 }, 'streamEndpoint'],
    ['streamEndpoint not a websocket URL', { streamEndpoint: 'ftp://x' }, 'streamEndpoint'],
    ['customerToken a function', { customerToken: () => 'x' }, 'customerToken'],
    ['customerToken with a secret key', { customerToken: 'a.b.c' }, 'customerToken'],
    ['fallbacks a string', { fallbacks: 'deny' }, 'fallbacks'],
    ['fallbacks an array', { fallbacks: [true] }, 'fallbacks'],
    ['fallbacks an unknown key', { fallbacks: { feature: {} } }, 'fallbacks'],
    ['fallbacks.features an array', { fallbacks: { features: [] } }, 'fallbacks'],
    ['fallback a string', { fallbacks: { features: { sso: 'yes' } } }, 'fallbacks'],
    ['fallback a bare number', { fallbacks: { features: { calls: 10 } } }, 'fallbacks'],
    ['fallback limit negative', { fallbacks: { features: { calls: { limit: -1 } } } }, 'fallbacks'],
    ['fallback limit a string', { fallbacks: { features: { calls: { limit: '10' } } } }, 'fallbacks'],
    ['fallback limit NaN', { fallbacks: { features: { calls: { limit: NaN } } } }, 'fallbacks'],
    ['fallback limit a BigInt', { fallbacks: { features: { calls: { limit: 10n } } } }, 'fallbacks'],
    ['fallback a function', { fallbacks: { features: { sso: () => true } } }, 'fallbacks'],
    ['fallback value a symbol', { fallbacks: { features: { tier: { value: Symbol('x') } } } }, 'fallbacks'],
    ['fallback with two keys', { fallbacks: { features: { tier: { value: 1, limit: 2 } } } }, 'fallbacks'],
    ['fallback default malformed', { fallbacks: { default: { limit: Infinity } } }, 'fallbacks'],
    ['fallback feature key too long', { fallbacks: { features: { [longKey]: true } } }, 'fallbacks'],
    ['fallback feature key empty', { fallbacks: { features: { '': true } } }, 'fallbacks'],
    ['fallbacks cyclic', { fallbacks: cyclic() }, 'fallbacks'],
  ];
  for (const [name, patch, option] of cases) {
    test(name, () =>
      refused(() => new Client({ ...base(), ...patch }), ConfigError, { option, code: 'invalid_config' }),
    );
  }

  test('a fallback error names the path inside the option', () => {
    assert.throws(
      () => new Client({ ...base(), fallbacks: { features: { calls: { limit: 10n } } } }),
      /`fallbacks\.features\.calls\.limit`: a BigInt/,
    );
    assert.throws(() => new Client({ ...base(), fallbacks: { features: { sso: 'yes' } } }), /feature "sso"/);
  });

  test('every entitlement option is accepted', async () => {
    const c = new Client({
      ...base(),
      fetchSchemas: false,
      cacheSize: 100,
      entitlementTimeoutMs: 2_000,
      maxStaleMs: 60_000,
      maxTtlMs: 30_000,
      stream: false,
      streamEndpoint: server.url.replace('http', 'ws') + '/v1/stream',
      fallbacks: {
        features: { sso: true, calls: { limit: 10 }, tier: { value: { seats: 1, at: new Date(0) } }, off: undefined },
        default: false,
      },
    });
    const a = await c.entitlement('nobody', 'sso');
    assert.equal(a.source, 'fresh');
    await c.shutdown();
  });
});

describe('entitlement arguments', () => {
  const wrong = [
    ['a BigInt', 1n],
    ['a function', () => 'c1'],
    ['a symbol', Symbol('c1')],
    ['a number', 42],
    ['null', null],
    ['undefined', undefined],
    ['an object', { toString: () => 'c1' }],
    ['a lone surrogate', 'c\uD800'],
    ['empty', ''],
    ['over 256 characters', 'x'.repeat(257)],
  ];
  for (const [what, value] of wrong) {
    for (const argument of ['subject', 'feature']) {
      const args = argument === 'subject' ? [value, 'sso'] : ['c1', value];
      test(`${argument} ${what}`, async () => {
        const fields = { argument, code: 'invalid_argument', path: `/${argument}` };
        refused(() => client.cachedEntitlement(...args), ArgumentError, fields);
        await assert.rejects(client.entitlement(...args), (e) => {
          assert.ok(e instanceof ArgumentError, `${e.name}: ${e.message}`);
          for (const [k, v] of Object.entries(fields)) assert.equal(e[k], v);
          return true;
        });
        if (argument === 'subject') refused(() => client.customerToken(value, 60_000), ArgumentError, fields);
      });
    }
  }

  test('256 characters are fine', async () => {
    const a = await client.entitlement('s'.repeat(256), 'f'.repeat(256));
    assert.equal(a.subject.length, 256);
  });

  const ttls = [
    ['zero', 0],
    ['negative', -1_000],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['over 30 days', 30 * 24 * 3600 * 1000 + 1],
    ['a string', '60000'],
    ['a BigInt', 60_000n],
    ['missing', undefined],
  ];
  for (const [what, ttl] of ttls) {
    test(`customerToken ttlMs ${what}`, () =>
      refused(() => client.customerToken('c1', ttl), ArgumentError, { argument: 'ttlMs', code: 'invalid_argument' }));
  }

  test('customerToken ttlMs of exactly 30 days is fine', () => {
    assert.match(client.customerToken('c1', 30 * 24 * 3600 * 1000), /^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  const payloads = [
    ['null', null],
    ['a string', '{"subject":"c1"}'],
    ['an array', []],
    ['missing fields', { subject: 'c1' }],
    ['a wrong-typed version', { subject: 'c1', version: 'one', ttl_ms: 1, entitlements: {} }],
    ['a negative ttl_ms', { subject: 'c1', version: 1, ttl_ms: -1, entitlements: {} }],
    ['an unknown kind', { subject: 'c1', version: 1, ttl_ms: 1, entitlements: { x: { kind: 'magic' } } }],
    ['a BigInt inside', { subject: 'c1', version: 1n, ttl_ms: 1, entitlements: {} }],
    ['a function inside', { subject: 'c1', version: 1, ttl_ms: 1, entitlements: { f: () => 1 } }],
    ['a cycle', cyclic()],
    ['an empty subject', { subject: '', version: 1, ttl_ms: 1, entitlements: {} }],
  ];
  for (const [what, payload] of payloads) {
    test(`primeEntitlements payload ${what}`, () =>
      refused(() => client.primeEntitlements(payload), ArgumentError, {
        argument: 'payload',
        code: 'invalid_argument',
      }));
  }
});

describe('a full queue', () => {
  const small = (options) =>
    new Client({
      apiKey: server.secretKey,
      endpoint: 'http://127.0.0.1:9',
      fetchSchemas: false,
      maxQueueSize: 2,
      flushIntervalMs: 3_600_000,
      ...options,
    });

  test('drops the event without throwing by default, counts and reports it', async () => {
    const c = small();
    const errors = [];
    c.on('error', (e) => errors.push(e));
    assert.equal(typeof c.track('api.call', 'c1', {}), 'string');
    assert.equal(typeof c.track('api.call', 'c1', {}), 'string');
    assert.equal(c.track('api.call', 'c1', {}), null);
    assert.equal(c.track('api.call', 'c1', {}), null);
    assert.equal(c.stats().dropped, 2);
    for (let i = 0; i < 500 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(errors.length, 1, 'one report per window');
    assert.ok(errors[0] instanceof QueueFullError, `${errors[0]?.name}`);
    await c.shutdown(10).catch(() => {});
  });

  test('throws QueueFullError under reject', async () => {
    const c = small({ overflow: 'reject' });
    c.track('api.call', 'c1', {});
    c.track('api.call', 'c1', {});
    refused(() => c.track('api.call', 'c1', {}), QueueFullError, { code: 'queue_full' });
    assert.equal(c.stats().dropped, 1);
    await c.shutdown(10).catch(() => {});
  });
});
