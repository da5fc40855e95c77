// The disk spool through the JS API: events accepted while the server is unreachable survive
// the client (a process that exits, or a shutdown that times out) and go out from the next
// client on the same directory; bad options are typed errors naming the option.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Client, ConfigError, TimeoutError } from '../index.mjs';
import { DEAD_ENDPOINT, fixture, runNode, startServer, storedEvents } from './helpers.mjs';

let server;
let dir;
before(async () => {
  server = await startServer();
  dir = mkdtempSync(join(tmpdir(), 'meterline-spool-'));
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A new client on `spoolDir` sends what is spooled there: exactly `ids` reach the server. */
async function replaysExactly(spoolDir, subject, ids) {
  const up = new Client({ apiKey: server.secretKey, endpoint: server.url, source: 'node-spool', spoolDir });
  await up.flush(10_000);
  assert.equal(up.stats().spoolLength, 0);
  await up.shutdown();
  const stored = (await storedEvents(server, { subject })).map((e) => e.id);
  assert.deepEqual(stored.sort(), [...ids].sort());
}

describe('spool', () => {
  test('events spooled by a process that exited while the server was down are sent by the next client', async () => {
    const spoolDir = join(dir, 'replay');
    const subject = `spool-${Date.now()}`;
    const run = await runNode([fixture('spool_down.mjs')], {
      env: {
        METERLINE_API_KEY: server.secretKey,
        METERLINE_ENDPOINT: DEAD_ENDPOINT,
        SPOOL_DIR: spoolDir,
        SUBJECT: subject,
        EVENTS: '20',
      },
    });
    assert.equal(run.code, 0, run.stderr);
    const { ids, spoolLength } = JSON.parse(run.stdout);
    assert.equal(ids.length, 20);
    assert.equal(spoolLength, 20);
    assert.deepEqual(await storedEvents(server, { subject }), []);

    await replaysExactly(spoolDir, subject, ids);
  });

  test('shutdown leaves undelivered events spooled (not dropped) and releases the directory at once', async () => {
    const spoolDir = join(dir, 'released');
    const subject = `spool-released-${Date.now()}`;
    const down = new Client({ apiKey: server.secretKey, endpoint: DEAD_ENDPOINT, spoolDir, fetchSchemas: false });
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push(down.track('api.call', subject, { tokens: i }));
    await assert.rejects(down.shutdown(200), (e) => e instanceof TimeoutError);
    const { dropped, spoolLength } = down.stats();
    assert.deepEqual({ dropped, spoolLength }, { dropped: 0, spoolLength: 20 });

    // `down` is still referenced: shutdown alone released the directory.
    await replaysExactly(spoolDir, subject, ids);
    assert.equal(down.stats().spoolLength, 20);
  });

  test('one client per spool directory', async () => {
    const spoolDir = join(dir, 'locked');
    const first = new Client({ apiKey: server.secretKey, endpoint: server.url, spoolDir });
    assert.throws(
      () => new Client({ apiKey: server.secretKey, endpoint: server.url, spoolDir }),
      (e) => e instanceof ConfigError && e.message.includes('spoolDir'),
    );
    await first.shutdown();
  });

  for (const [options, name] of [
    [{ spoolDir: 42 }, 'spoolDir'],
    [{ spoolDir: '' }, 'spoolDir'],
    [{ spoolFsync: 'sometimes' }, 'spoolFsync'],
    [{ spoolFsync: true }, 'spoolFsync'],
  ]) {
    test(`bad ${JSON.stringify(options)} names ${name}`, () => {
      assert.throws(
        () => new Client({ apiKey: server.secretKey, endpoint: server.url, ...options }),
        (e) => e instanceof ConfigError && e.message.includes(name),
      );
    });
  }
});
