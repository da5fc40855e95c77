// The shared conformance vectors (tests/vectors/*.json) through the JavaScript API.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { Client, ValidationError, _EntitlementCache, _retryDecision } from '../index.mjs';
import { DEAD_ENDPOINT, repoDir } from './helpers.mjs';

const vector = (name) => JSON.parse(readFileSync(join(repoDir, 'tests', 'vectors', name), 'utf8'));

describe('events.json', () => {
  const doc = vector('events.json');

  for (const [cases, strictTypes] of [
    ['track', false],
    ['strict_track', true],
  ]) {
    describe(cases, () => {
      // Nothing is delivered (the endpoint is dead): these cases are about track() alone.
      const client = new Client({
        apiKey: 'ml_sk_vectors_0123456789abcdef0123',
        endpoint: DEAD_ENDPOINT,
        fetchSchemas: false,
        strictTypes,
        schemas: doc.schemas,
        flushIntervalMs: 3_600_000,
      });
      client.on('error', () => {});

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

      test(`${cases}: shut down`, async () => {
        await client.shutdown(10).catch(() => {});
      });
    });
  }
});

describe('retry.json', () => {
  const doc = vector('retry.json');
  const policy = {
    initialDelayMs: doc.policy.initial_delay_ms,
    maxDelayMs: doc.policy.max_delay_ms,
    maxRetryAfterMs: doc.policy.max_retry_after_ms,
  };
  const nowMs = Date.parse(doc.now);

  for (const c of doc.cases) {
    test(c.name, () => {
      // The two extremes of the jitter draw bound every possible delay.
      for (const jitter of [0, 0.999999]) {
        const got = _retryDecision(policy, c.outcome, c.retry, jitter, nowMs, c.retry_after ?? undefined);
        if (c.expect.done) {
          assert.equal(got.decision, 'done');
        } else if (c.expect.retry) {
          assert.equal(got.decision, 'retry');
          assert.ok(
            got.delayMs >= c.expect.min_delay_ms && got.delayMs <= c.expect.max_delay_ms,
            `delay ${got.delayMs} not in [${c.expect.min_delay_ms}, ${c.expect.max_delay_ms}]`,
          );
        } else {
          assert.equal(got.decision, 'give_up');
        }
      }
    });
  }
});

/** Every key of `want` must match in `got` (numbers numerically), as the Rust runner checks. */
function matches(ctx, got, want) {
  if (want !== null && typeof want === 'object' && !Array.isArray(want)) {
    for (const [key, w] of Object.entries(want)) matches(`${ctx}.${key}`, got?.[key], w);
  } else if (Array.isArray(want)) {
    assert.ok(Array.isArray(got) && got.length === want.length, `${ctx}: got ${JSON.stringify(got)}`);
    want.forEach((w, i) => matches(`${ctx}[${i}]`, got[i], w));
  } else {
    assert.deepEqual(got, want, ctx);
  }
}

for (const file of ['entitlements.json', 'stream.json']) {
  describe(file, () => {
    const doc = vector(file);
    for (const scenario of doc.scenarios) {
      test(scenario.name, () => {
        const cache = new _EntitlementCache(
          JSON.stringify(scenario.settings ?? {}),
          JSON.stringify(doc.payloads ?? {}),
        );
        scenario.steps.forEach((s, i) => {
          const got = JSON.parse(cache.step(JSON.stringify(s)));
          if (s.expect !== undefined) matches(`${file}: step ${i} (${s.op})`, got, s.expect);
        });
      });
    }
  });
}

test('a malformed vector step is a clear error', () => {
  const cache = new _EntitlementCache('{}');
  assert.throws(() => cache.step(JSON.stringify({ op: 'nope' })), /unknown op "nope"/);
  assert.throws(
    () => cache.step(JSON.stringify({ op: 'lookup', subject: 'c1', feature: 'x', now: 'soon' })),
    /`now` must be an integer/,
  );
  assert.throws(() => cache.step('{not json'), /bad step/);
  assert.throws(() => new _EntitlementCache('{"cache_size": 0}'), /cache_size/);
});
