// The shared conformance vectors that need no browser, through the public API of the wasm
// build under Node (`wasm-bindgen --target nodejs`, target/browser/node-*): events.json
// through track() (the `full_build_only` schema cases only in the full build, where they
// must hold), options.json through new Client(), errors.json against the exported classes,
// entitlements.json's `primed` answers through primeEntitlements() and the answers' reads.
// Cases Node's browser build cannot express are skipped with the reason.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { repoDir } from './helpers.mjs';

const vector = (name) => JSON.parse(readFileSync(join(repoDir, 'tests', 'vectors', name), 'utf8'));
const KEY = 'ml_sk_vectors_0123456789abcdef0123';
const DEAD_ENDPOINT = 'http://127.0.0.1:9';

for (const build of ['default', 'full']) {
  const entry = join(repoDir, 'target', 'browser', `node-${build}`, 'meterline.js');
  const missing = existsSync(entry) ? null : `${entry} not built (make browser)`;
  describe(`${build} build`, { skip: missing ?? false }, async () => {
    if (missing) return;
    const meterline = await import(entry);
    await meterline.default();
    const { Client, ConfigError, TimeoutError, ValidationError } = meterline;

    describe('events.json', () => {
      const doc = vector('events.json');
      for (const [cases, strictTypes] of [
        ['track', false],
        ['strict_track', true],
      ]) {
        const client = new Client({
          apiKey: KEY,
          endpoint: DEAD_ENDPOINT,
          fetchSchemas: false,
          strictTypes,
          schemas: doc.schemas,
          flushIntervalMs: 3_600_000,
        });
        for (const c of doc[cases]) {
          const skip =
            c.expect.full_build_only && build === 'default' ? 'schema validation is the full build’s' : false;
          test(`${cases}: ${c.name}`, { skip }, () => {
            const { type, subject, data, id, time } = c.input;
            const options = {};
            if (id !== undefined) options.id = id;
            if (time !== undefined) options.time = time;
            if (c.expect.ok) {
              const got = client.track(type, subject, data, options);
              assert.equal(typeof got, 'string');
              if (id !== undefined) assert.equal(got, id);
              else assert.match(got, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
            } else {
              assert.throws(
                () => client.track(type, subject, data, options),
                (e) => {
                  assert.ok(e instanceof ValidationError, `${e.name}: ${e.message}`);
                  assert.equal(e.code, c.expect.code);
                  assert.equal(e.path, c.expect.path);
                  return true;
                },
              );
            }
          });
        }
        test(`${cases}: what the dead endpoint could not take is given up at shutdown`, async () => {
          const accepted = doc[cases].filter((c) => c.expect.ok).length;
          assert.equal(client.stats().enqueued, accepted);
          await assert.rejects(client.shutdown(10), TimeoutError);
        });
      }
      if (build === 'default') {
        test('the default build leaves schema violations to the server', async () => {
          const client = new Client({
            apiKey: KEY,
            endpoint: DEAD_ENDPOINT,
            schemas: doc.schemas,
            flushIntervalMs: 3_600_000,
          });
          const c = doc.track.find((c) => c.expect.full_build_only);
          assert.equal(typeof client.track(c.input.type, c.input.subject, c.input.data), 'string');
          await assert.rejects(client.shutdown(10), TimeoutError);
        });
      }
    });

    describe('options.json', () => {
      const doc = vector('options.json');
      const table = new Map(doc.table.map((row) => [row.snake, row]));
      const jsOptions = (c) =>
        Object.fromEntries(Object.entries(c.options).map(([k, v]) => [table.get(k)?.js ?? k, v]));
      const why = (c, valid) => {
        if (c.env && Object.values(c.env).some((v) => v !== null)) return 'a browser has no environment variables';
        if (valid && 'spool_dir' in c.options) return 'the browser has no disk spool (spoolDir is refused)';
        return false;
      };
      for (const c of doc.valid) {
        test(`valid: ${c.name}`, { skip: why(c, true) }, async () => {
          const client = new Client(jsOptions(c));
          await client.shutdown(0);
          assert.equal(client.stats().enqueued, 0);
        });
      }
      for (const c of doc.invalid) {
        test(`invalid: ${c.name}`, { skip: why(c, false) }, () => {
          const option = c.expect.unknown ? c.expect.option : table.get(c.expect.option).js;
          assert.throws(
            () => new Client(jsOptions(c)),
            (e) => {
              assert.equal(e.constructor.name, c.expect.class, `${e.name}: ${e.message}`);
              assert.ok(e instanceof ConfigError);
              assert.equal(e.code, c.expect.code);
              assert.equal(e.option, option, e.message);
              return true;
            },
          );
        });
      }
      test('the option table is the vectors’ table', () => {
        assert.deepEqual(meterline.optionTable(), doc.table);
      });
    });

    describe('entitlements.json: primed answers', () => {
      const doc = vector('entitlements.json');
      const camel = (key) => key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
      /** Every key of `want` must be present in `got` and equal. */
      const matches = (ctx, got, want) => {
        if (want !== null && typeof want === 'object' && !Array.isArray(want)) {
          assert.ok(got !== null && typeof got === 'object', `${ctx}: got ${JSON.stringify(got)}`);
          for (const [key, w] of Object.entries(want)) {
            assert.ok(Object.hasOwn(got, key), `${ctx}: no ${key} in ${JSON.stringify(got)}`);
            matches(`${ctx}.${key}`, got[key], w);
          }
        } else {
          assert.deepEqual(got, want, ctx);
        }
      };
      for (const c of doc.primed) {
        // No WebSocket under Node 20: `stream: false`; the answers come from the cache alone.
        test(c.name, async () => {
          const client = new Client({ apiKey: KEY, endpoint: DEAD_ENDPOINT, fetchSchemas: false, stream: false });
          for (const name of c.prime) client.primeEntitlements(doc.primed_payloads[name]);
          const want = Object.fromEntries(Object.entries(c.expect).map(([k, v]) => [camel(k), v]));
          matches(c.name, client.cachedEntitlement(c.subject, c.feature), want);
          matches(c.name, await client.entitlement(c.subject, c.feature), want);
          assert.equal(client.stats().cacheMisses, 0);
          await client.shutdown(0);
        });
      }
      test('matches() refuses a missing key', () => {
        assert.throws(() => matches('self-test', { source: 'cache' }, { source: 'cache', reason: null }), /no reason/);
      });
    });

    describe('errors.json', () => {
      const doc = vector('errors.json');
      test('the exported error classes are the core list, with its hierarchy and codes', () => {
        const exported = Object.keys(meterline).filter((k) => k.endsWith('Error'));
        assert.deepEqual(exported.sort(), doc.classes.map((c) => c.name).sort());
        for (const { name, parent, default_code: code } of doc.classes) {
          const Class = meterline[name];
          const up = Object.getPrototypeOf(Class.prototype).constructor;
          assert.equal(up.name, parent ?? 'Error', name);
          assert.equal(new Class('x').code, code, name);
        }
      });
    });
  });
}
