// Process lifecycle in child processes against a real server: the beforeExit flush, not
// keeping an idle process alive, worker_threads, and both entry points.
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { fixture, packageDir, runNode, seedCatalog, startServer, storedEvents } from './helpers.mjs';

let server;
let env;
// The fixtures import the package by name, as an application would.
const nodeModules = join(packageDir, 'test', 'fixtures', 'node_modules');
before(async () => {
  server = await startServer();
  env = { METERLINE_API_KEY: server.secretKey, METERLINE_ENDPOINT: server.url };
  rmSync(nodeModules, { recursive: true, force: true });
  mkdirSync(nodeModules);
  symlinkSync(packageDir, join(nodeModules, 'meterline'), 'dir');
});
after(async () => {
  rmSync(nodeModules, { recursive: true, force: true });
  await server?.stop();
});

test('ESM: events tracked but never flushed are delivered before the process exits', async () => {
  const run = await runNode([fixture('exit_flush.mjs')], { env: { ...env, EVENTS: '300' } });
  assert.equal(run.code, 0, run.stderr);
  const stored = await storedEvents(server, { type: 'exit.flush', subject: 'esm' });
  assert.equal(stored.length, 300);
  assert.deepEqual(
    stored.map((e) => e.data.i),
    [...Array(300).keys()],
  );
});

test('CommonJS: the exit flush also delivers events tracked from a later beforeExit listener', async () => {
  const run = await runNode([fixture('exit_flush.cjs')], { env });
  assert.equal(run.code, 0, run.stderr);
  const stored = await storedEvents(server, { type: 'exit.flush', subject: 'cjs' });
  assert.equal(stored.length, 60);
});

test('an idle client does not keep the process alive', async () => {
  const run = await runNode([fixture('idle.mjs')], { env, timeoutMs: 20_000 });
  assert.equal(run.code, 0, run.stderr);
  assert.ok(run.ms < 5_000, `took ${run.ms} ms`);
  const shut = await runNode([fixture('idle.mjs')], { env: { ...env, SHUTDOWN: '1' }, timeoutMs: 20_000 });
  assert.equal(shut.code, 0, shut.stderr);
  assert.ok(shut.ms < 5_000, `took ${shut.ms} ms`);
});

test('the exit flush gives up after its timeout when the server is unreachable', async () => {
  const run = await runNode([fixture('exit_flush.mjs')], {
    env: { ...env, METERLINE_ENDPOINT: 'http://127.0.0.1:9', EVENTS: '5' },
    timeoutMs: 30_000,
  });
  assert.equal(run.code, 0, run.stderr);
  assert.ok(run.ms < 15_000, `took ${run.ms} ms`);
  assert.match(run.stderr, /TimeoutError/);
});

test('a client garbage-collected without shutdown() still delivers its events', async () => {
  const run = await runNode(['--expose-gc', fixture('gc_flush.mjs')], { env, timeoutMs: 30_000 });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'stored 10');
});

test('worker_threads: a client per worker, terminated and unflushed workers included', async () => {
  const run = await runNode([fixture('workers.mjs')], { env, timeoutMs: 60_000 });
  assert.equal(run.code, 0, run.stderr);
  const summary = JSON.parse(run.stdout.trim().split('\n').pop());
  assert.deepEqual(summary.codes.slice(0, 4), [0, 0, 0, 0]);
  assert.equal(summary.main, 10);
  const stored = await storedEvents(server, { type: 'workers' });
  const bySubject = {};
  for (const e of stored) bySubject[e.subject] = (bySubject[e.subject] ?? 0) + 1;
  for (const n of [0, 1, 2]) assert.equal(bySubject[`worker-${n}`], 200, `worker-${n}`);
  assert.equal(bySubject.main, 10);
  // The worker that ended without flushing: its beforeExit (or the release of its client
  // when the worker's environment is torn down) still delivers.
  assert.equal(bySubject['worker-3'], 200, JSON.stringify(bySubject));
});

test('a client with the stream open does not keep an idle process alive, nor after shutdown()', async () => {
  await seedCatalog(server, { subjects: ['idle-stream'] });
  for (const shutdown of ['', '1']) {
    const run = await runNode([fixture('entitlement_idle.mjs')], {
      env: { ...env, SUBJECT: 'idle-stream', SHUTDOWN: shutdown },
      timeoutMs: 30_000,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim()), { source: 'fresh', hasAccess: true, stream: true });
    // It exits by itself: well before the runner's 30 s kill (the stream pings every 20 s).
    assert.ok(run.ms < 10_000, `took ${run.ms} ms`);
  }
});

test('worker_threads: entitlement() in two workers and the main thread at once', async () => {
  await seedCatalog(server, { subjects: ['in-worker'] });
  const run = await runNode([fixture('entitlement_worker.mjs')], { env: { ...env, SUBJECT: 'in-worker' } });
  assert.equal(run.code, 0, run.stderr);
  const { workers, main } = JSON.parse(run.stdout.trim().split('\n').pop());
  const expected = { fresh: 'fresh', value: { seats: 3 }, cached: 'cache', sso: true, stream: true };
  assert.deepEqual(main, expected);
  for (const w of workers) assert.deepEqual(w, { code: 0, result: expected });
});
