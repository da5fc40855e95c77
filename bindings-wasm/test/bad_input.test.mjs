// Bad input in the page: every refusal is the typed error at once, and nothing is queued.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { browserMissing, startStack } from './helpers.mjs';

const missing = browserMissing();

describe('bad input in the page', { skip: missing ?? false }, () => {
  let stack;
  let tab;
  before(async () => {
    stack = await startStack();
    tab = await stack.open();
  });
  after(async () => {
    await stack?.stop();
  });

  test('bad track() arguments throw ValidationError at once and queue nothing', async () => {
    const results = await tab.evaluate(() => {
      const { client, config } = window.meterline;
      const cycle = { a: 1 };
      cycle.self = cycle;
      const cases = {
        'string data': () => client.track('page.view', 'c1', 'x'),
        'array data': () => client.track('page.view', 'c1', [1]),
        'null data': () => client.track('page.view', 'c1', null),
        'number data': () => client.track('page.view', 'c1', 5),
        NaN: () => client.track('page.view', 'c1', { n: NaN }),
        Infinity: () => client.track('page.view', 'c1', { n: { deep: [Infinity] } }),
        cycle: () => client.track('page.view', 'c1', cycle),
        'huge string': () => client.track('page.view', 'c1', { blob: 'x'.repeat(2 * 1024 * 1024) }),
        'type not a string': () => client.track(42, 'c1', {}),
        'empty subject': () => client.track('page.view', '', {}),
        'bad time': () => client.track('page.view', 'c1', {}, { time: 'yesterday' }),
        BigInt: () => client.track('page.view', 'c1', { n: 1n }),
      };
      const before = client.stats().enqueued;
      const out = {};
      for (const [name, call] of Object.entries(cases)) {
        try {
          call();
          out[name] = 'no error';
        } catch (e) {
          out[name] = [e.constructor.name, e.code, e.path, e instanceof window.meterline.ValidationError];
        }
      }
      out.enqueued = client.stats().enqueued - before;
      out.queueLength = client.stats().queueLength;
      void config;
      return out;
    });
    const expect = {
      'string data': ['ValidationError', 'invalid_event', '/data'],
      'array data': ['ValidationError', 'invalid_event', '/data'],
      'null data': ['ValidationError', 'invalid_event', '/data'],
      'number data': ['ValidationError', 'invalid_event', '/data'],
      NaN: ['ValidationError', 'invalid_event', '/data/n'],
      Infinity: ['ValidationError', 'invalid_event', '/data/n/deep/0'],
      cycle: ['ValidationError', 'invalid_event', '/data/self'],
      'huge string': ['ValidationError', 'event_too_large', ''],
      'type not a string': ['ValidationError', 'invalid_event', '/type'],
      'empty subject': ['ValidationError', 'invalid_event', '/subject'],
      'bad time': ['ValidationError', 'invalid_event', '/time'],
      BigInt: ['ValidationError', 'invalid_event', '/data/n'],
    };
    for (const [name, [cls, code, path]] of Object.entries(expect)) {
      assert.deepEqual(results[name], [cls, code, path, true], name);
    }
    assert.equal(results.enqueued, 0);
    assert.equal(results.queueLength, 0);
  });

  test('wrong option types throw ConfigError naming the option', async () => {
    const results = await tab.evaluate(() => {
      const { Client, config } = window.meterline;
      const base = { apiKey: config.publishableKey, endpoint: config.endpoint, customerToken: 'a.b.c' };
      const cases = {
        apiKey: { ...base, apiKey: 5 },
        flushIntervalMs: { ...base, flushIntervalMs: '1s' },
        flushAt: { ...base, flushAt: 0 },
        maxQueueSize: { ...base, maxQueueSize: 1.5 },
        onError: { ...base, onError: 'log' },
        customerToken: { apiKey: config.publishableKey, endpoint: config.endpoint },
        options: 'not an object',
        nope: { ...base, nope: true },
      };
      const out = {};
      for (const [name, options] of Object.entries(cases)) {
        try {
          new Client(options);
          out[name] = 'no error';
        } catch (e) {
          out[name] = [e.constructor.name, e.code, e.option];
        }
      }
      return out;
    });
    for (const name of [
      'apiKey',
      'flushIntervalMs',
      'flushAt',
      'maxQueueSize',
      'onError',
      'customerToken',
      'options',
      'nope',
    ]) {
      assert.deepEqual(results[name], ['ConfigError', 'invalid_config', name], name);
    }
  });

  test('bad flush() and entitlement() arguments are ArgumentErrors', async () => {
    const results = await tab.evaluate(async () => {
      const { client } = window.meterline;
      const out = {};
      for (const [name, call] of Object.entries({
        flush: () => client.flush('soon'),
        negative: () => client.flush(-1),
        subject: () => client.entitlement(5, 'f'),
        feature: () => client.entitlement('c1', ''),
        'lone surrogate': () => client.entitlement('c\uD800', 'f'),
        'cached, lone surrogate': () => client.cachedEntitlement('c1', 'f\uDC00'),
      })) {
        try {
          await call();
          out[name] = 'no error';
        } catch (e) {
          out[name] = [e.constructor.name, e.code, e.argument];
        }
      }
      return out;
    });
    assert.deepEqual(results.flush, ['ArgumentError', 'invalid_argument', 'timeoutMs']);
    assert.deepEqual(results.negative, ['ArgumentError', 'invalid_argument', 'timeoutMs']);
    assert.deepEqual(results.subject, ['ArgumentError', 'invalid_argument', 'subject']);
    assert.deepEqual(results.feature, ['ArgumentError', 'invalid_argument', 'feature']);
    // Refused, as in Node, rather than reaching the core as U+FFFD (another subject).
    assert.deepEqual(results['lone surrogate'], ['ArgumentError', 'invalid_argument', 'subject']);
    assert.deepEqual(results['cached, lone surrogate'], ['ArgumentError', 'invalid_argument', 'feature']);
  });
});
