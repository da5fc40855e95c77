// The token provider, consent (optOut/optIn) and the SDK's User-Agent (issue 20) against a
// real meterline-server: an expired customer token refreshed by an async tokenProvider with
// every event stored once, a throwing provider reported and never thrown, an opted-out client
// sending no batch.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { AuthError, Client } from '../index.mjs';
import { admin, eventually, requestCount, startServer, storedEvents } from './helpers.mjs';

let server;
before(async () => {
  server = await startServer();
  await admin(server, 'PUT', 'settings', { client_event_types: ['page.view'] });
});
after(async () => {
  await server?.stop();
});

const b64 = (data) => Buffer.from(data).toString('base64url');

/** A customer token as customerToken() mints it, but with any ttl (negative: expired). */
function mint(secretKey, subject, ttlSecs) {
  const signingKey = createHmac('sha256', secretKey).update('meterline customer token v1').digest();
  const now = Math.floor(Date.now() / 1000);
  const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: secretKey.split('_')[2] }));
  const claims = b64(JSON.stringify({ sub: subject, iat: now, exp: now + ttlSecs }));
  const signature = createHmac('sha256', signingKey).update(`${head}.${claims}`).digest('base64url');
  return `${head}.${claims}.${signature}`;
}

async function publishableKey() {
  return (await admin(server, 'POST', 'keys', { kind: 'publishable' })).key;
}

test('an async tokenProvider refreshes an expired token and every event is stored once', async () => {
  let calls = 0;
  const tokenProvider = async () => {
    calls += 1;
    return mint(server.secretKey, 'node-c1', calls === 1 ? -3600 : 600);
  };
  const client = new Client({
    apiKey: await publishableKey(),
    endpoint: server.url,
    tokenProvider,
    fetchSchemas: false,
    flushAt: 5,
    maxInFlight: 4,
  });
  const ids = Array.from({ length: 20 }, (_, i) => `node-pv-${i}`);
  for (const id of ids) assert.equal(client.track('page.view', 'node-c1', { path: '/' }, { id }), id);
  await client.flush(10_000);
  const stats = client.stats();
  await client.shutdown(5_000);
  assert.deepEqual([stats.sent, stats.duplicates, stats.dropped], [20, 0, 0], JSON.stringify(stats));
  assert.equal(calls, 2, 'one call for the first token, one for every batch refused with it');
  const stored = (await storedEvents(server, { subject: 'node-c1' })).map((e) => e.id).sort();
  assert.deepEqual(stored, [...ids].sort());
});

test('a throwing tokenProvider is reported and never thrown', async () => {
  const client = new Client({
    apiKey: await publishableKey(),
    endpoint: server.url,
    tokenProvider: () => {
      throw new Error('the identity backend is down');
    },
    fetchSchemas: false,
    flushIntervalMs: 50,
  });
  const reported = new Promise((resolve) => client.once('error', resolve));
  assert.ok(client.track('page.view', 'node-c2', { path: '/' }), 'track() keeps the event');
  const err = await reported;
  assert.ok(err instanceof AuthError, String(err));
  assert.match(err.message, /threw Error: the identity backend is down/);
  assert.ok(client.stats().tokenProviderFailures >= 1);
  await assert.rejects(client.shutdown(200));
});

test('an opted-out client sends nothing and the choice outlives the client', async () => {
  const spoolDir = mkdtempSync(join(tmpdir(), 'meterline-consent-'));
  try {
    const options = { apiKey: server.secretKey, endpoint: server.url, fetchSchemas: false, spoolDir };
    const before = await requestCount(server, '/v1/events');
    let client = new Client({ ...options, flushIntervalMs: 3_600_000 });
    for (let i = 0; i < 3; i++) client.track('api.call', 'node-c3', {});
    client.optOut();
    assert.equal(client.optedOut, true);
    assert.equal(client.track('api.call', 'node-c3', {}), null);
    await client.flush(5_000);
    assert.equal(client.stats().optedOut, 4);
    await client.shutdown(5_000);
    assert.equal(await requestCount(server, '/v1/events'), before, 'an opted-out client sent a batch');

    client = new Client(options);
    assert.equal(client.optedOut, true);
    client.optIn();
    const kept = client.track('api.call', 'node-c3', {});
    await client.flush(5_000);
    await client.shutdown(5_000);
    const stored = await eventually(async () => {
      const events = await storedEvents(server, { subject: 'node-c3' });
      return events.length ? events : null;
    }, 'the event tracked after optIn');
    assert.deepEqual(
      stored.map((e) => e.id),
      [kept],
    );
  } finally {
    rmSync(spoolDir, { recursive: true, force: true });
  }
});

test('identify switches users: each user sends under its own token and no cached answer leaks', async () => {
  const client = new Client({
    apiKey: await publishableKey(),
    endpoint: server.url,
    customerToken: mint(server.secretKey, 'node-u1', 600),
    fetchSchemas: false,
    stream: false,
    flushIntervalMs: 3_600_000,
  });
  client.primeEntitlements({
    subject: 'node-u1',
    version: 1,
    ttl_ms: 600_000,
    entitlements: { export: { kind: 'boolean', has_access: true } },
  });
  assert.equal(client.cachedEntitlement('node-u1', 'export').hasAccess, true);
  for (let i = 0; i < 3; i++) client.track('page.view', 'node-u1', {}, { id: `node-u1-${i}` });
  assert.throws(() => client.identify('node-u2', mint(server.secretKey, 'node-u3', 600)), { code: 'invalid_argument' });
  client.identify('node-u2', mint(server.secretKey, 'node-u2', 600));
  assert.equal(client.cachedEntitlement('node-u1', 'export').source, 'fallback');
  for (let i = 0; i < 3; i++) client.track('page.view', 'node-u2', {}, { id: `node-u2-${i}` });
  await client.flush(10_000);
  const stats = client.stats();
  assert.deepEqual([stats.sent, stats.rejected, stats.dropped], [6, 0, 0], JSON.stringify(stats));
  client.reset();
  assert.throws(() => client.track('page.view', 'node-u2', {}), { code: 'forbidden' });
  await client.shutdown(5_000);
  const stored = [
    ...(await storedEvents(server, { subject: 'node-u1' })),
    ...(await storedEvents(server, { subject: 'node-u2' })),
  ].map((e) => e.id);
  assert.deepEqual(stored.sort(), ['node-u1-0', 'node-u1-1', 'node-u1-2', 'node-u2-0', 'node-u2-1', 'node-u2-2']);
});
