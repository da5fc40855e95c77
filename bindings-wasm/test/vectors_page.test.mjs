// The shared conformance vectors in headless Chromium, through the public API of each wasm
// build as a page loads it (the same cases test/vectors.test.mjs runs under Node):
// events.json through track() (`full_build_only` schema cases only in the full build, where
// they must hold), options.json through new Client(), errors.json against the exported
// classes, entitlements.json's `primed` answers through primeEntitlements() and
// cachedEntitlement()/entitlement(). Each case is one subtest; the page runs them all in one go and says how each went.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { browserMissing, repoDir, startStack } from './helpers.mjs';

const missing = browserMissing();
if (missing) console.log(`# page vector tests skipped: ${missing}`);

const vector = (name) => JSON.parse(readFileSync(join(repoDir, 'tests', 'vectors', name), 'utf8'));

/** Runs in the page: every case, as `{ name, skip }` or `{ name, error }` (none: it held). */
async function runVectors({ docs, build }) {
  const meterline = window.meterline;
  const { Client, ConfigError, TimeoutError, ValidationError } = meterline;
  const KEY = 'ml_sk_vectors_0123456789abcdef0123';
  const DEAD_ENDPOINT = 'http://127.0.0.1:9';
  const out = [];
  const check = (cond, what) => {
    if (!cond) throw new Error(what);
  };
  const run = async (name, skip, f) => {
    if (skip) return out.push({ name, skip });
    try {
      await f();
      out.push({ name });
    } catch (e) {
      out.push({ name, error: String(e?.message ?? e) });
    }
  };
  const throwsLike = (f, verify) => {
    try {
      f();
    } catch (e) {
      verify(e);
      return;
    }
    throw new Error('did not throw');
  };

  const events = docs.events;
  for (const [cases, strictTypes] of [
    ['track', false],
    ['strict_track', true],
  ]) {
    const client = new Client({
      apiKey: KEY,
      endpoint: DEAD_ENDPOINT,
      fetchSchemas: false,
      stream: false,
      strictTypes,
      schemas: events.schemas,
      flushIntervalMs: 3_600_000,
    });
    for (const c of events[cases]) {
      const skip = c.expect.full_build_only && build === 'default' ? 'schema validation is the full build’s' : false;
      await run(`events.json ${cases}: ${c.name}`, skip, () => {
        const { type, subject, data, id, time } = c.input;
        const options = {};
        if (id !== undefined) options.id = id;
        if (time !== undefined) options.time = time;
        if (c.expect.ok) {
          const got = client.track(type, subject, data, options);
          check(typeof got === 'string', `returned ${got}`);
          if (id !== undefined) check(got === id, `id ${got}, not ${id}`);
          else check(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(got), `id ${got}`);
        } else {
          throwsLike(
            () => client.track(type, subject, data, options),
            (e) => {
              check(e instanceof ValidationError, `${e.name}: ${e.message}`);
              check(e.code === c.expect.code, `code ${e.code}, not ${c.expect.code}`);
              check(e.path === c.expect.path, `path ${e.path}, not ${c.expect.path}`);
            },
          );
        }
      });
    }
    await run(
      `events.json ${cases}: what the dead endpoint could not take is given up at shutdown`,
      false,
      async () => {
        const accepted = events[cases].filter((c) => c.expect.ok).length;
        check(client.stats().enqueued === accepted, `enqueued ${client.stats().enqueued}, not ${accepted}`);
        let err = null;
        await client.shutdown(10).catch((e) => (err = e));
        check(err instanceof TimeoutError, `shutdown: ${err}`);
      },
    );
  }

  const options = docs.options;
  const table = new Map(options.table.map((row) => [row.snake, row]));
  const jsOptions = (c) => Object.fromEntries(Object.entries(c.options).map(([k, v]) => [table.get(k)?.js ?? k, v]));
  const why = (c, valid) => {
    if (c.env && Object.values(c.env).some((v) => v !== null)) return 'a browser has no environment variables';
    if (valid && 'spool_dir' in c.options) return 'the browser has no disk spool (spoolDir is refused)';
    return false;
  };
  for (const c of options.valid) {
    await run(`options.json valid: ${c.name}`, why(c, true), async () => {
      const client = new Client(jsOptions(c));
      await client.shutdown(0);
      check(client.stats().enqueued === 0, 'enqueued');
    });
  }
  for (const c of options.invalid) {
    await run(`options.json invalid: ${c.name}`, why(c, false), () => {
      const option = c.expect.unknown ? c.expect.option : table.get(c.expect.option).js;
      throwsLike(
        () => new Client(jsOptions(c)),
        (e) => {
          check(e.constructor.name === c.expect.class, `${e.name}: ${e.message}`);
          check(e instanceof ConfigError, 'not a ConfigError');
          check(e.code === c.expect.code, `code ${e.code}`);
          check(e.option === option, `option ${e.option}, not ${option}: ${e.message}`);
        },
      );
    });
  }
  await run('options.json: the option table is the vectors’ table', false, () => {
    check(JSON.stringify(meterline.optionTable()) === JSON.stringify(options.table), 'the tables differ');
  });

  // entitlements.json `primed`: answers right after primeEntitlements(), through
  // cachedEntitlement() and entitlement() (a cache hit: no request to the dead endpoint).
  const camel = (key) => key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
  const matches = (ctx, got, want) => {
    if (want !== null && typeof want === 'object' && !Array.isArray(want)) {
      check(got !== null && typeof got === 'object', `${ctx}: got ${JSON.stringify(got)}`);
      for (const [key, w] of Object.entries(want)) {
        check(Object.hasOwn(got, key), `${ctx}: no ${key} in ${JSON.stringify(got)}`);
        matches(`${ctx}.${key}`, got[key], w);
      }
    } else if (Array.isArray(want)) {
      check(Array.isArray(got) && got.length === want.length, `${ctx}: got ${JSON.stringify(got)}`);
      want.forEach((w, i) => matches(`${ctx}[${i}]`, got[i], w));
    } else {
      check(got === want, `${ctx}: got ${JSON.stringify(got)}, not ${JSON.stringify(want)}`);
    }
  };
  const ents = docs.entitlements;
  for (const c of ents.primed) {
    await run(`entitlements.json primed: ${c.name}`, false, async () => {
      const client = new Client({ apiKey: KEY, endpoint: DEAD_ENDPOINT, fetchSchemas: false, stream: false });
      try {
        for (const name of c.prime) client.primeEntitlements(ents.primed_payloads[name]);
        const want = Object.fromEntries(Object.entries(c.expect).map(([k, v]) => [camel(k), v]));
        matches('cachedEntitlement', client.cachedEntitlement(c.subject, c.feature), want);
        matches('entitlement', await client.entitlement(c.subject, c.feature), want);
        check(client.stats().cacheMisses === 0, `cacheMisses ${client.stats().cacheMisses}`);
      } finally {
        await client.shutdown(0);
      }
    });
  }
  await run('entitlements.json: matches() refuses a missing key', false, () => {
    throwsLike(
      () => matches('self-test', { source: 'cache' }, { source: 'cache', reason: null }),
      (e) => check(/no reason/.test(e.message), e.message),
    );
  });
  await run('entitlements.json: primeEntitlements() refuses what is not an answer', false, () => {
    const client = new Client({ apiKey: KEY, endpoint: DEAD_ENDPOINT, fetchSchemas: false, stream: false });
    throwsLike(
      () => client.primeEntitlements({ subject: 'c1', version: 1 }),
      (e) => {
        check(e instanceof meterline.ArgumentError, `${e.name}: ${e.message}`);
        check(e.code === 'invalid_argument' && e.argument === 'payload', `${e.code} ${e.argument}: ${e.message}`);
      },
    );
  });

  await run('errors.json: the exported error classes are the core list, with its hierarchy and codes', false, () => {
    const exported = Object.keys(meterline)
      .filter((k) => k.endsWith('Error'))
      .sort();
    const listed = docs.errors.classes.map((c) => c.name).sort();
    check(JSON.stringify(exported) === JSON.stringify(listed), `exported ${exported}`);
    for (const { name, parent, default_code: code } of docs.errors.classes) {
      const Class = meterline[name];
      const up = Object.getPrototypeOf(Class.prototype).constructor;
      check(up.name === (parent ?? 'Error'), `${name}'s parent is ${up.name}`);
      check(new Class('x').code === code, `${name}'s code`);
    }
  });
  return out;
}

for (const build of ['default', 'full']) {
  describe(`${build} build in Chromium`, { skip: missing ?? false }, () => {
    test('events, options, errors and entitlements vectors through the page’s public API', async (t) => {
      const stack = await startStack({ bundle: build });
      let results;
      try {
        const tab = await stack.open();
        const docs = {
          events: vector('events.json'),
          options: vector('options.json'),
          errors: vector('errors.json'),
          entitlements: vector('entitlements.json'),
        };
        results = await tab.evaluate(runVectors, { docs, build });
      } finally {
        await stack.stop();
      }
      assert.ok(results.length > 50, `only ${results.length} cases ran`);
      for (const r of results) {
        await t.test(r.name, { skip: r.skip ?? false }, () => {
          if (r.error) assert.fail(r.error);
        });
      }
    });
  });
}
