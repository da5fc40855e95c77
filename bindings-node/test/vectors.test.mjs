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

/** One vector step through the core's EntitlementCache (the `_EntitlementCache` surface). */
function step(cache, payloads, s) {
  const payload = (p) => JSON.stringify(typeof p === 'string' ? payloads[p] : p);
  switch (s.op) {
    case 'lookup':
      return JSON.parse(cache.lookup(s.subject, s.feature, s.now));
    case 'begin_fetch':
      return { etag: cache.beginFetch(s.subject, s.counted_through) };
    case 'complete_fetch': {
      const r = { ...s.result };
      if (r.fetched !== undefined) r.fetched = JSON.parse(payload(r.fetched));
      return JSON.parse(cache.completeFetch(s.subject, JSON.stringify(r), s.now, s.jitter));
    }
    case 'answer':
      return { answer: JSON.parse(cache.answer(s.subject, s.feature, s.source)) };
    case 'answer_or_fallback':
      return { answer: JSON.parse(cache.answerOrFallback(s.subject, s.feature, s.reason, s.now)) };
    case 'insert':
      return JSON.parse(cache.insert(payload(s.payload), s.etag ?? null, s.now, s.counted_through));
    case 'record_event':
      return { counted: cache.recordEvent(s.type, s.subject, JSON.stringify(s.data), s.at, s.mark) };
    case 'apply':
      return JSON.parse(cache.apply(JSON.stringify(s.message), s.now, s.counted_through));
    case 'take_refetch_due':
      return { subjects: cache.takeRefetchDue() };
    case 'mark_all_for_refetch':
      cache.markAllForRefetch();
      return {};
    case 'state':
      return JSON.parse(cache.state());
    default:
      throw new Error(`unknown op ${s.op}`);
  }
}

for (const file of ['entitlements.json', 'stream.json']) {
  describe(file, () => {
    const doc = vector(file);
    for (const scenario of doc.scenarios) {
      test(scenario.name, () => {
        const cache = new _EntitlementCache(JSON.stringify(scenario.settings ?? {}));
        scenario.steps.forEach((s, i) => {
          const got = step(cache, doc.payloads ?? {}, s);
          if (s.expect !== undefined) matches(`${file}: step ${i} (${s.op})`, got, s.expect);
        });
      });
    }
  });
}
