// The shared conformance vectors (tests/vectors/*.json) through the public JavaScript API:
// events.json through track(), options.json through new Client(), errors.json against the
// exported classes and the errors public calls throw, and entitlements.json's `primed`
// answers through primeEntitlements() + cachedEntitlement()/entitlement(). The decisions no
// public call exposes (retry.json, the cache's clock-driven steps, stream.json) are the
// core's to run (core/tests); this package's end-to-end tests against the real server cover
// them here.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import * as meterline from '../index.mjs';
import { ClosedError, Client, ConfigError, MeterlineError, TimeoutError, ValidationError } from '../index.mjs';
import { DEAD_ENDPOINT, repoDir } from './helpers.mjs';

const vector = (name) => JSON.parse(readFileSync(join(repoDir, 'tests', 'vectors', name), 'utf8'));
const KEY = 'ml_sk_vectors_0123456789abcdef0123';

describe('events.json', () => {
  const doc = vector('events.json');

  for (const [cases, strictTypes] of [
    ['track', false],
    ['strict_track', true],
  ]) {
    describe(cases, () => {
      // Nothing is delivered (the endpoint is dead): these cases are about track() alone.
      const client = new Client({
        apiKey: KEY,
        endpoint: DEAD_ENDPOINT,
        fetchSchemas: false,
        strictTypes,
        schemas: doc.schemas,
        flushIntervalMs: 3_600_000,
      });
      const background = [];
      client.on('error', (e) => background.push(e));

      for (const c of doc[cases]) {
        test(c.name, () => {
          const { type, subject, data, id, time } = c.input;
          const options = {};
          if (id !== undefined) options.id = id;
          if (time !== undefined) options.time = time;
          if (c.expect.ok) {
            const got = client.track(type, subject, data, options);
            assert.equal(typeof got, 'string');
            if (id !== undefined) assert.equal(got, id);
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

      test(`${cases}: shutting down gives up what the dead endpoint could not take`, async () => {
        const accepted = doc[cases].filter((c) => c.expect.ok).length;
        assert.equal(client.stats().enqueued, accepted);
        await assert.rejects(client.shutdown(10), TimeoutError);
        assert.throws(() => client.track('api.call', 'c1', {}), ClosedError);
        assert.deepEqual(
          background.filter((e) => !(e instanceof MeterlineError)),
          [],
        );
      });
    });
  }
});

// ---------------------------------------------------------------------------------------
// options.json

describe('options.json', () => {
  const doc = vector('options.json');
  const table = new Map(doc.table.map((row) => [row.snake, row]));
  /** The case's neutral options as JavaScript takes them: camelCase, durations in ms. */
  const jsOptions = (c) => Object.fromEntries(Object.entries(c.options).map(([k, v]) => [table.get(k)?.js ?? k, v]));
  const saved = process.env.METERLINE_ENDPOINT;
  const withEnv = (c, fn) => {
    delete process.env.METERLINE_ENDPOINT;
    for (const [k, v] of Object.entries(c.env ?? {})) {
      if (v === null) delete process.env[k];
      else process.env[k] = v;
    }
    try {
      return fn();
    } finally {
      if (saved === undefined) delete process.env.METERLINE_ENDPOINT;
      else process.env.METERLINE_ENDPOINT = saved;
    }
  };

  for (const c of doc.valid) {
    test(`valid: ${c.name}`, async () => {
      const client = withEnv(c, () => new Client(jsOptions(c)));
      assert.ok(client instanceof Client);
      await client.shutdown(0);
      assert.equal(client.stats().enqueued, 0);
    });
  }

  for (const c of doc.invalid) {
    test(`invalid: ${c.name}`, () => {
      const option = c.expect.unknown ? c.expect.option : table.get(c.expect.option).js;
      assert.throws(
        () => withEnv(c, () => new Client(jsOptions(c))),
        (e) => {
          assert.equal(e.constructor.name, c.expect.class, `${e.name}: ${e.message}`);
          assert.ok(e instanceof ConfigError);
          assert.equal(e.code, c.expect.code);
          assert.equal(e.option, option, e.message);
          assert.ok(e.message.includes(option), e.message);
          return true;
        },
      );
    });
  }

  test('the ClientOptions of index.d.ts are what the core table gives', () => {
    // scripts/gen-option-docs.py writes them from the table; --check fails on any difference.
    execFileSync('python3', [join(repoDir, 'scripts', 'gen-option-docs.py'), '--check'], { stdio: 'pipe' });
    const dts = readFileSync(join(repoDir, 'bindings-node', 'index.d.ts'), 'utf8');
    for (const row of doc.table) assert.match(dts, new RegExp(`\\n  ${row.js}\\??: `), row.js);
  });
});

// ---------------------------------------------------------------------------------------
// errors.json

describe('errors.json', () => {
  const doc = vector('errors.json');
  const byName = new Map(doc.classes.map((c) => [c.name, c.parent]));
  const defaultCode = new Map(doc.classes.map((c) => [c.name, c.default_code]));

  test('the exported error classes are the core list, with its hierarchy', () => {
    const exported = Object.keys(meterline).filter((k) => k.endsWith('Error'));
    assert.deepEqual(exported.sort(), [...byName.keys()].sort());
    for (const [name, parent] of byName) {
      const Class = meterline[name];
      assert.ok(Class.prototype instanceof Error, name);
      const up = Object.getPrototypeOf(Class.prototype).constructor;
      assert.equal(up.name, parent ?? 'Error', name);
      assert.equal(new Class('built by hand').code, defaultCode.get(name), name);
    }
  });

  for (const c of doc.cases) {
    test(`${c.source}: ${c.code} is a ${c.class}`, () => {
      const error = new meterline[c.class]('from the vector', { code: c.code });
      assert.ok(error instanceof MeterlineError);
      assert.equal(error.code, c.code);
      assert.equal(error.name, c.class);
    });
  }

  test('public calls throw the class errors.json names for their code', async () => {
    const classOf = new Map(doc.cases.map((c) => [`${c.source}:${c.code}`, c.class]));
    const client = new Client({
      apiKey: KEY,
      endpoint: DEAD_ENDPOINT,
      fetchSchemas: false,
      flushIntervalMs: 3_600_000,
    });
    client.on('error', () => {});
    const thrown = (fn) => {
      try {
        fn();
      } catch (e) {
        return e;
      }
      assert.fail('nothing thrown');
    };
    const rejected = (promise) =>
      promise.then(
        () => assert.fail('resolved'),
        (e) => e,
      );
    client.track('api.call', 'c1', { n: 1 });
    const got = {
      'config:invalid_config': thrown(() => new Client({ apiKey: KEY, endpoint: DEAD_ENDPOINT, flushAt: 0 })),
      'validation:invalid_event': thrown(() => client.track('api.call', 'c1', [])),
      'validation:invalid_argument': thrown(() => client.cachedEntitlement('', 'sso')),
      'timeout:timeout': await rejected(client.flush(10)),
    };
    await rejected(client.shutdown(10));
    got['closed:client_closed'] = thrown(() => client.track('api.call', 'c1', {}));
    for (const [key, error] of Object.entries(got)) {
      assert.equal(`${error.constructor.name}:${error.code}`, `${classOf.get(key)}:${key.split(':')[1]}`, key);
    }
  });
});

// ---------------------------------------------------------------------------------------
// entitlements.json: answers after primeEntitlements()

/** snake_case key of the vector → the camelCase of JavaScript's answers. */
const camel = (key) => key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

/** Every key of `want` must be present in `got` and match (numbers numerically). */
function matches(ctx, got, want) {
  if (want !== null && typeof want === 'object' && !Array.isArray(want)) {
    assert.ok(got !== null && typeof got === 'object', `${ctx}: got ${JSON.stringify(got)}`);
    for (const [key, w] of Object.entries(want)) {
      assert.ok(Object.hasOwn(got, key), `${ctx}: no ${key} in ${JSON.stringify(got)}`);
      matches(`${ctx}.${key}`, got[key], w);
    }
  } else if (Array.isArray(want)) {
    assert.ok(Array.isArray(got) && got.length === want.length, `${ctx}: got ${JSON.stringify(got)}`);
    want.forEach((w, i) => matches(`${ctx}[${i}]`, got[i], w));
  } else {
    assert.deepEqual(got, want, ctx);
  }
}

describe('entitlements.json: primed answers', () => {
  const doc = vector('entitlements.json');
  const clients = [];
  after(() => Promise.all(clients.map((c) => c.shutdown(0))));

  for (const c of doc.primed) {
    test(c.name, async () => {
      const client = new Client({ apiKey: KEY, endpoint: DEAD_ENDPOINT, fetchSchemas: false, stream: false });
      clients.push(client);
      for (const name of c.prime) client.primeEntitlements(doc.primed_payloads[name]);
      // Top-level keys are camelCase in JavaScript; values (a config's JSON) are as sent.
      const want = Object.fromEntries(Object.entries(c.expect).map(([k, v]) => [camel(k), v]));
      matches(c.name, client.cachedEntitlement(c.subject, c.feature), want);
      matches(c.name, await client.entitlement(c.subject, c.feature), want);
    });
  }

  test('matches() refuses a missing key', () => {
    assert.throws(() => matches('self-test', { source: 'cache' }, { source: 'cache', reason: null }), /no reason/);
  });
});
