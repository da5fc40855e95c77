// entitlement(), cachedEntitlement(), customerToken(), the stream events and the entitlement
// stats against a real meterline-server (features, plans and customers made through its
// admin API).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ArgumentError, Client, ConfigError, MeterlineError, StreamError } from '../index.mjs';
import { DEAD_ENDPOINT, admin, eventually, requestCount, seedCatalog, startServer } from './helpers.mjs';

const ENTITLEMENTS_ROUTE = '/v1/customers/{subject}/entitlements';

let server;
before(async () => {
  server = await startServer();
  await seedCatalog(server, { limit: 5, subjects: ['c1', 'c2', 'limited', 'realtime', 'stale'] });
});
after(async () => {
  await server?.stop();
});

/** A client of the test server; shut down by the caller. */
function client(options = {}) {
  const c = new Client({ apiKey: server.secretKey, endpoint: server.url, ...options });
  c.on('error', () => {});
  return c;
}

/**
 * Changes `subject`'s `tier` value through the admin API until the client's cached answer
 * shows it, and returns that answer. The client reports 'connection' before its subscribe
 * frames reach the server, and a change made before the subscription is live is only
 * picked up at the TTL: so each attempt waits up to 3 s, then changes the value again.
 */
async function changeTierUntilSeen(c, subject) {
  for (let attempt = 1; attempt <= 5; attempt++) {
    const seats = 100 + attempt;
    await admin(server, 'PUT', `customers/${subject}`, { plan: 'pro', overrides: { tier: { value: { seats } } } });
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline) {
      const a = c.cachedEntitlement(subject, 'tier');
      if (a.value?.seats === seats) return a;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`the stream never delivered a change of ${subject}`);
}

describe('round trip', () => {
  test('boolean, metered and config answers; fresh, then from the cache', async () => {
    const c = client({ stream: false });
    try {
      const calls = await c.entitlement('c1', 'calls');
      assert.deepEqual(
        { ...calls, periodEnd: typeof calls.periodEnd },
        {
          subject: 'c1',
          feature: 'calls',
          kind: 'metered',
          hasAccess: true,
          limit: 5,
          usage: 0,
          remaining: 5,
          value: null,
          periodEnd: 'string',
          version: calls.version,
          source: 'fresh',
          reason: null,
        },
      );
      assert.ok(Number.isInteger(calls.version) && calls.version >= 1, `version ${calls.version}`);
      assert.ok(!Number.isNaN(Date.parse(calls.periodEnd)), calls.periodEnd);

      const sso = await c.entitlement('c1', 'sso');
      assert.equal(sso.kind, 'boolean');
      assert.equal(sso.hasAccess, true);
      assert.equal(sso.source, 'cache');
      assert.equal(sso.limit, null);

      const tier = c.cachedEntitlement('c1', 'tier');
      assert.equal(tier.kind, 'config');
      assert.deepEqual(tier.value, { seats: 3 });
      assert.equal(tier.source, 'cache');

      const missing = await c.entitlement('c1', 'nope');
      assert.equal(missing.hasAccess, false);
      assert.equal(missing.kind, null);
      assert.equal(missing.reason, 'feature not in plan');

      const again = await c.entitlement('c1', 'calls');
      assert.equal(again.source, 'cache');
      const stats = c.stats();
      assert.equal(stats.cacheMisses, 1);
      assert.equal(stats.cacheHits, 4);
      assert.equal(stats.fallbackAnswers, 0);
      assert.equal(stats.staleAnswers, 0);
    } finally {
      await c.shutdown();
    }
  });

  test('cachedEntitlement never waits: a miss is the fallback, and the next call is cached', async () => {
    const c = client({ stream: false, fallbacks: { features: { sso: true } } });
    try {
      const first = c.cachedEntitlement('c2', 'sso');
      assert.equal(first.source, 'fallback');
      assert.equal(first.hasAccess, true);
      assert.equal(first.reason, 'not cached yet: fetching in the background');
      const cached = await eventually(() => {
        const a = c.cachedEntitlement('c2', 'sso');
        return a.source === 'cache' && a;
      }, 'the background fetch');
      assert.equal(cached.kind, 'boolean');
    } finally {
      await c.shutdown();
    }
  });

  test('primeEntitlements caches an answer obtained elsewhere', async () => {
    const c = new Client({ apiKey: server.secretKey, endpoint: DEAD_ENDPOINT, stream: false, fetchSchemas: false });
    c.on('error', () => {});
    try {
      c.primeEntitlements({
        subject: 'boot',
        version: 3,
        ttl_ms: 60_000,
        entitlements: { sso: { kind: 'boolean', has_access: true } },
      });
      const a = await c.entitlement('boot', 'sso');
      assert.deepEqual([a.source, a.hasAccess, a.version], ['cache', true, 3]);
    } finally {
      await c.shutdown(10).catch(() => {});
    }
  });
});

describe('realtime', () => {
  test('a plan change reaches the cached answer over the stream, without polling', async () => {
    const c = client({ maxTtlMs: 3_600_000 });
    const changes = [];
    c.on('connection', (change) => changes.push(change));
    try {
      const before = await c.entitlement('realtime', 'tier');
      assert.deepEqual(before.value, { seats: 3 });
      await eventually(() => changes.some((ch) => ch.connected), "a 'connection' event");
      assert.deepEqual(changes[0], { connected: true, reason: 'connected' });
      assert.equal(c.stats().streamConnected, true);

      const fetches = await requestCount(server, ENTITLEMENTS_ROUTE);
      const after = await changeTierUntilSeen(c, 'realtime');
      assert.equal(after.source, 'cache');
      assert.ok(after.version > before.version);
      // Answered from the pushed update: no second fetch.
      assert.equal(c.stats().cacheMisses, 1);
      assert.equal(await requestCount(server, ENTITLEMENTS_ROUTE), fetches);
    } finally {
      await c.shutdown();
    }
  });

  test('tracked events reach the limit: hasAccess turns false locally; usageThreshold fires', async () => {
    const c = client({ flushIntervalMs: 50 });
    const crossings = [];
    c.on('usageThreshold', (event) => crossings.push(event));
    c.on('connection', () => {});
    try {
      const fresh = await c.entitlement('limited', 'calls');
      assert.equal(fresh.hasAccess, true);
      // The subscription is live once a change of the subject comes over the stream.
      await changeTierUntilSeen(c, 'limited');
      for (let i = 0; i < 5; i++) c.track('api.call', 'limited', { i });
      // Counted locally at once, before the server has seen anything.
      const local = c.cachedEntitlement('limited', 'calls');
      assert.deepEqual([local.hasAccess, local.usage, local.remaining], [false, 5, 0]);
      await c.flush();
      await eventually(() => crossings.some((e) => e.threshold === 1), 'usageThreshold at 100 %');
      const full = crossings.find((e) => e.threshold === 1);
      assert.equal(full.subject, 'limited');
      assert.equal(full.feature, 'calls');
      assert.equal(full.limit, 5);
      assert.equal(full.usage, 5);
      assert.ok(Number.isInteger(full.seq) && full.seq > 0);
      assert.ok(crossings.some((e) => e.threshold === 0.8));
      assert.equal((await c.entitlement('limited', 'calls')).hasAccess, false);
    } finally {
      await c.shutdown();
    }
  });
});

test("a stream the server does not offer is a StreamError on 'error'; answers still come", async () => {
  const c = new Client({
    apiKey: server.secretKey,
    endpoint: server.url,
    streamEndpoint: `${server.url.replace('http', 'ws')}/v1/no-stream-here`,
  });
  const errors = [];
  c.on('error', (e) => errors.push(e));
  try {
    assert.equal((await c.entitlement('c1', 'sso')).source, 'fresh');
    const err = await eventually(() => errors.find((e) => e instanceof StreamError), 'a StreamError');
    assert.ok(err instanceof MeterlineError);
    assert.equal(err.name, 'StreamError');
    assert.equal(err.code, 'stream_unavailable');
    assert.match(err.message, /^stream: stream_unavailable: /);
    assert.equal(c.stats().streamConnected, false);
    assert.equal((await c.entitlement('c1', 'tier')).source, 'cache');
  } finally {
    await c.shutdown();
  }
});

describe('server down', () => {
  test('nothing cached: the configured fallbacks, with the reason', async () => {
    const c = new Client({
      apiKey: server.secretKey,
      endpoint: DEAD_ENDPOINT,
      fetchSchemas: false,
      fallbacks: {
        features: { sso: true, calls: { limit: 10 }, tier: { value: { seats: 1 } } },
        default: false,
      },
    });
    const errors = [];
    c.on('error', (e) => errors.push(e));
    try {
      const sso = await c.entitlement('c1', 'sso');
      assert.deepEqual([sso.source, sso.hasAccess, sso.kind], ['fallback', true, 'boolean']);
      assert.match(sso.reason, /^server unreachable: /);
      const calls = await c.entitlement('c1', 'calls');
      assert.deepEqual([calls.kind, calls.hasAccess, calls.limit, calls.usage], ['metered', true, 10, null]);
      const tier = c.cachedEntitlement('c1', 'tier');
      assert.deepEqual([tier.kind, tier.value], ['config', { seats: 1 }]);
      const other = await c.entitlement('c1', 'other');
      assert.deepEqual([other.source, other.hasAccess, other.kind], ['fallback', false, 'boolean']);
      assert.equal(c.stats().fallbackAnswers, 4);
      await eventually(() => errors.length > 0, "an 'error' event");
      assert.equal(errors[0].code, 'network_error');
      assert.equal(errors[0].name, 'NetworkError');
    } finally {
      await c.shutdown(10).catch(() => {});
    }
  });

  test('cached and past its TTL: stale, with why; the stream reports the lost connection', async () => {
    const own = await startServer();
    await seedCatalog(own, { subjects: ['s1'] });
    const c = new Client({ apiKey: own.secretKey, endpoint: own.url, maxTtlMs: 300 });
    c.on('error', () => {});
    const changes = [];
    c.on('connection', (change) => changes.push(change));
    try {
      assert.equal((await c.entitlement('s1', 'sso')).source, 'fresh');
      await eventually(() => changes.some((ch) => ch.connected), 'the stream');
      await own.stop();
      await eventually(() => changes.some((ch) => !ch.connected), "a 'connection' event for the loss");
      assert.equal(typeof changes.find((ch) => !ch.connected).reason, 'string');
      const stale = await eventually(async () => {
        const a = await c.entitlement('s1', 'sso');
        return a.source === 'stale' && a.reason?.startsWith('server unreachable') && a;
      }, 'a stale answer naming the failure');
      assert.equal(stale.hasAccess, true);
      assert.ok(c.stats().staleAnswers > 0);
    } finally {
      await c.shutdown(10).catch(() => {});
      await own.stop();
    }
  });
});

test('10,000 concurrent entitlement() calls over 5 subjects all resolve; one request per subject', async () => {
  const before = await requestCount(server, ENTITLEMENTS_ROUTE);
  const c = client({ stream: false });
  try {
    const subjects = ['c1', 'c2', 'limited', 'realtime', 'nobody'];
    const pending = [];
    for (let i = 0; i < 10_000; i++) pending.push(c.entitlement(subjects[i % 5], i % 2 ? 'sso' : 'tier'));
    const answers = await Promise.all(pending);
    assert.equal(answers.length, 10_000);
    for (const [i, a] of answers.entries()) {
      assert.equal(a.subject, subjects[i % 5]);
      assert.ok(a.source === 'fresh' || a.source === 'cache', `${i}: ${a.source} ${a.reason}`);
    }
    assert.equal(answers[1].hasAccess, true);
    assert.equal(answers[4].reason, 'feature not in plan', 'an unknown customer has no features');
    const stats = c.stats();
    assert.equal(stats.cacheHits + stats.cacheMisses, 10_000);
    assert.equal(stats.fallbackAnswers, 0);
    // Concurrent misses of one subject share one request (single flight).
    assert.equal((await requestCount(server, ENTITLEMENTS_ROUTE)) - before, 5);
  } finally {
    await c.shutdown();
  }
});

describe('customer tokens', () => {
  test('a publishable key with a customer token reads only its own subject', async () => {
    const { key: publishable } = await admin(server, 'POST', 'keys', { kind: 'publishable' });
    const backend = client({ stream: false });
    const token = backend.customerToken('c1', 60_000);
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    await backend.shutdown();
    const browser = new Client({ apiKey: publishable, endpoint: server.url, customerToken: token, stream: false });
    browser.on('error', () => {});
    try {
      const own = await browser.entitlement('c1', 'sso');
      assert.deepEqual([own.source, own.hasAccess], ['fresh', true]);
      const other = await browser.entitlement('c2', 'sso');
      assert.equal(other.source, 'fallback');
      assert.equal(other.hasAccess, false);
      assert.match(other.reason, /^forbidden/);
    } finally {
      await browser.shutdown();
    }
  });

  test('customerToken() needs a secret key (ConfigError naming apiKey)', async () => {
    const { key: publishable } = await admin(server, 'POST', 'keys', { kind: 'publishable' });
    const backend = client({ stream: false });
    const token = backend.customerToken('c1', 1_000);
    await backend.shutdown();
    const browser = new Client({ apiKey: publishable, endpoint: server.url, customerToken: token, stream: false });
    try {
      assert.throws(
        () => browser.customerToken('c1', 60_000),
        (e) => e instanceof ConfigError && e.code === 'invalid_config' && e.option === 'apiKey',
      );
    } finally {
      await browser.shutdown();
    }
  });
});

describe('listeners', () => {
  test('a throwing listener becomes a process warning; the client stays healthy', async () => {
    const warnings = [];
    const onWarning = (w) => warnings.push(w);
    process.on('warning', onWarning);
    const c = client({ maxTtlMs: 3_600_000 });
    const good = [];
    c.on('connection', () => {
      throw new Error('boom');
    });
    c.on('connection', async () => {
      throw new Error('async boom');
    });
    c.on('connection', (change) => good.push(change));
    try {
      await c.entitlement('c1', 'sso');
      const failed = () => warnings.filter((w) => w.code === 'listener_failed');
      await eventually(() => failed().length === 2, 'two listener_failed warnings');
      const [w, rejected] = failed();
      assert.match(w.message, /'connection' listener threw: boom/);
      assert.equal(w.cause.message, 'boom');
      assert.match(rejected.message, /'connection' listener threw: async boom/);
      assert.equal(good.length, 1, 'the other listener still ran');
      assert.equal((await c.entitlement('c1', 'tier')).source, 'cache');
      assert.equal(c.stats().streamConnected, true);
    } finally {
      process.off('warning', onWarning);
      await c.shutdown();
    }
  });
});

describe('after shutdown', () => {
  test('entitlement() rejects and cachedEntitlement() throws ClosedError', async () => {
    const c = client({ stream: false });
    await c.shutdown();
    await assert.rejects(c.entitlement('c1', 'sso'), (e) => e.name === 'ClosedError' && e.code === 'client_closed');
    assert.throws(
      () => c.cachedEntitlement('c1', 'sso'),
      (e) => e.code === 'client_closed',
    );
    assert.throws(() => c.primeEntitlements({ subject: 'c1', version: 1, ttl_ms: 1, entitlements: {} }), {
      code: 'client_closed',
    });
  });
});

test('ArgumentError is exported and carries the argument', () => {
  const c = new Client({ apiKey: server.secretKey, endpoint: DEAD_ENDPOINT, fetchSchemas: false });
  try {
    assert.throws(
      () => c.cachedEntitlement('', 'sso'),
      (e) => e instanceof ArgumentError && e.argument === 'subject' && e.path === '/subject',
    );
  } finally {
    c.shutdown(10).catch(() => {});
  }
});
