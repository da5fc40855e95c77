// The id track() returns, under Node (the wasm build `--target nodejs`): a generated id is
// read from the WebAssembly memory's id buffer, a caller's id too when it is short ASCII, else
// through takeId() — each must come back exactly as the core answered it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { repoDir } from './helpers.mjs';

const KEY = 'ml_sk_vectors_0123456789abcdef0123';
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

for (const build of ['default', 'full']) {
  const entry = join(repoDir, 'target', 'browser', `node-${build}`, 'meterline.js');
  const missing = existsSync(entry) ? null : `${entry} not built (make browser)`;
  describe(`track() ids, ${build} build`, { skip: missing ?? false }, async () => {
    if (missing) return;
    const meterline = await import(entry);
    await meterline.default();
    const client = new meterline.Client({
      apiKey: KEY,
      endpoint: 'http://127.0.0.1:9',
      fetchSchemas: false,
      flushIntervalMs: 3_600_000,
      maxQueueSize: 100_000,
    });

    test('generated ids are UUIDv7 and differ, also after the memory grew', () => {
      const ids = new Set();
      for (let i = 0; i < 5_000; i++) {
        // A large event now and then makes the WebAssembly memory grow (a new buffer).
        const data = i % 500 === 0 ? { i, blob: 'x'.repeat(200_000) } : { i };
        const id = client.track('api.call', 'c1', data);
        assert.match(id, UUID_V7);
        ids.add(id);
      }
      assert.equal(ids.size, 5_000);
    });

    test("a caller's id comes back as given: short, long, not ASCII", () => {
      for (const id of ['e-1', 'x'.repeat(36), 'y'.repeat(64), 'z'.repeat(65), 'é-1', `long-${'é'.repeat(100)}`]) {
        assert.equal(client.track('api.call', 'c1', { n: 1 }, { id }), id);
      }
      // After an id went the long way, a generated one is read from the buffer again.
      assert.match(client.track('api.call', 'c1', {}), UUID_V7);
    });

    test('an event the overflow policy drops gives null', async () => {
      const small = new meterline.Client({
        apiKey: KEY,
        endpoint: 'http://127.0.0.1:9',
        fetchSchemas: false,
        flushIntervalMs: 3_600_000,
        maxQueueSize: 1,
        flushAt: 1000,
      });
      assert.match(small.track('api.call', 'c1', {}), UUID_V7);
      assert.equal(small.track('api.call', 'c1', {}), null);
      await small.shutdown(0).catch(() => {});
      await client.shutdown(0).catch(() => {});
    });
  });
}
