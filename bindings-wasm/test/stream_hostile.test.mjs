// Hostile stream messages in headless Chromium: a WebSocket endpoint (a few lines over
// node:http, no dependency) that answers the upgrade and sends garbage — not JSON, unknown
// types, missing fields, 200 KB strings, nesting deeper than any parser allows, an `error`
// message. The page must throw nothing, report typed StreamErrors to onError (rate-limited
// per kind), keep its cached answers and its connection.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';

import { seedCatalog } from '../../bindings-node/test/helpers.mjs';
import { browserMissing, eventually, startStack } from './helpers.mjs';

const missing = browserMissing();
if (missing) console.log(`# hostile stream tests skipped: ${missing}`);

const HOSTILE = [
  'not json at all',
  '{"type":"entitlements.updated"}',
  '{"type":"no.such.type","seq":1}',
  '{"type":"subscribed","seq":-1,"subjects":[]}',
  `{"type":"entitlements.updated","seq":5,"subject":"c1","data":{"subject":"c1","features":"${'x'.repeat(200_000)}"}}`,
  '['.repeat(5000) + ']'.repeat(5000),
  '{"type":"usage.threshold","seq":6,"subject":"c1","data":{"feature":7}}',
  '{"type":"error","code":"too_many_subjects","message":"a server says no"}',
];

/** One text frame, server → client (unmasked). */
function frame(text) {
  const payload = Buffer.from(text);
  let head;
  if (payload.length < 126) head = Buffer.from([0x81, payload.length]);
  else if (payload.length < 65_536) {
    head = Buffer.from([0x81, 126, 0, 0]);
    head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x81;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([head, payload]);
}

/** A WebSocket endpoint that sends `messages` once a client's first frame arrived. */
async function hostileEndpoint(messages) {
  const server = createServer();
  const state = { upgrades: 0, sent: 0, sockets: new Set() };
  server.on('upgrade', (req, socket) => {
    state.upgrades += 1;
    state.sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => state.sockets.delete(socket));
    const accept = createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.once('data', () => {
      for (const m of messages) socket.write(frame(m));
      state.sent += messages.length;
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${server.address().port}/v1/stream`,
    state,
    close: () => {
      for (const s of state.sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

describe('hostile stream messages in Chromium', { skip: missing ?? false }, () => {
  let stack;
  let endpoint;
  before(async () => {
    stack = await startStack();
    await seedCatalog(stack.server, { subjects: ['c1'] });
    endpoint = await hostileEndpoint(HOSTILE);
  });
  after(async () => {
    await endpoint?.close();
    await stack?.stop();
  });

  test('nothing is thrown into the page; typed errors reach onError; the cache and connection stay', async () => {
    const tab = await stack.open();
    const pageErrors = [];
    tab.on('pageerror', (e) => pageErrors.push(String(e)));
    const first = await tab.evaluate((streamEndpoint) => {
      const { Client, config, token, MeterlineError } = window.meterline;
      const s = { errors: [], changes: [] };
      s.client = new Client({
        apiKey: config.publishableKey,
        endpoint: config.endpoint,
        customerToken: token,
        fetchSchemas: false,
        streamEndpoint,
        onConnectionChange: (connected) => s.changes.push(connected),
        onError: (e) =>
          s.errors.push({ typed: e instanceof MeterlineError, name: e.name, code: e.code, message: e.message }),
      });
      window.hostile = s;
      return s.client.entitlement('c1', 'tier');
    }, endpoint.url);
    assert.deepEqual(first.value, { seats: 3 });
    await eventually(
      () => endpoint.state.sent === HOSTILE.length,
      `the hostile frames sent (${endpoint.state.upgrades} upgrades)`,
    );
    const seen = await eventually(async () => {
      const s = await tab.evaluate(() => ({ errors: window.hostile.errors, changes: window.hostile.changes }));
      return s.errors.length >= 2 && s;
    }, 'the reports');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(pageErrors, []);
    const errors = await tab.evaluate(() => window.hostile.errors);
    for (const e of errors) assert.ok(e.typed && e.name === 'StreamError', JSON.stringify(e));
    const bad = errors.filter((e) => e.code === 'bad_message');
    assert.equal(bad.length, 1, 'one report per kind per minute');
    assert.match(bad[0].message, /unreadable stream message/);
    assert.ok(bad[0].message.length < 1000, 'the report does not echo a 200 KB frame');
    assert.ok(
      errors.some((e) => e.code === 'too_many_subjects' && /a server says no/.test(e.message)),
      JSON.stringify(errors),
    );
    assert.deepEqual(seen.changes, [true]);
    const after = await tab.evaluate(() => ({
      tier: window.hostile.client.cachedEntitlement('c1', 'tier'),
      connected: window.hostile.client.stats().streamConnected,
    }));
    assert.deepEqual(after.tier.value, { seats: 3 });
    assert.equal(after.connected, true);
    assert.equal(endpoint.state.upgrades, 1, 'garbage is not a reason to reconnect');
    await tab.evaluate(() => window.hostile.client.shutdown(500).catch(() => {}));
  });
});
