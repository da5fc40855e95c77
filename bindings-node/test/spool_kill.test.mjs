// The disk spool survives SIGKILL: a Node child process tracking 100,000 events with
// `spoolDir` is killed with SIGKILL at random points several times and restarted each time;
// a final run drains the spool. Counted from the server's store: every event track() accepted
// is there, none twice, none that no run tracked; at least one kill left events in the spool
// and the next run replayed them; the spool ends empty.
//
// The child (fixtures/spool_kill_child.mjs) prints `accepted <index>` after each track() that
// returned. The index it was in when killed may be spooled without being reported, so the
// next run starts two past the last reported index: each id is tracked by one run only. The
// kill points come from a seeded generator; the seed is printed, and
// METERLINE_SPOOL_SEED=<seed> reruns the same points.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';

import { Client } from '../index.mjs';
import { fixture, packageDir, startServer, storedEvents } from './helpers.mjs';

const TOTAL = 100_000;
const KILLS = 5;
const EVENT_TYPE = 'spool.kill';
/** A run that neither reaches its kill point nor finishes within this long has hung. */
const RUN_DEADLINE_MS = 120_000;

let server;
let dir;
before(async () => {
  server = await startServer();
  dir = mkdtempSync(join(tmpdir(), 'meterline-spool-kill-'));
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A small seeded generator (mulberry32): integers in [lo, hi). */
function seeded(seed) {
  let a = seed >>> 0;
  return (lo, hi) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return lo + Math.floor(r * (hi - lo));
  };
}

/**
 * Runs the child over `start..TOTAL` on `spool`; with `killAfter`, SIGKILLs it as soon as it
 * reported that many accepted events. Resolves to what it printed and how it ended.
 */
function runChild(spool, start, killAfter) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fixture('spool_kill_child.mjs')], {
      cwd: packageDir,
      env: {
        ...process.env,
        METERLINE_API_KEY: server.secretKey,
        METERLINE_ENDPOINT: server.url,
        SPOOL_DIR: spool,
        EVENT_TYPE,
        START: String(start),
        STOP: String(TOTAL),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run = { accepted: [], replayed: null, finalSpoolLength: null, code: null, signal: null, stderr: '' };
    child.stderr.on('data', (c) => (run.stderr = (run.stderr + c).slice(-2000)));
    // A hung child is killed so that the run ends; the assertions then fail.
    const watchdog = setTimeout(() => child.kill('SIGKILL'), RUN_DEADLINE_MS);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const [word, value] = line.split(' ');
      if (word === 'accepted') {
        run.accepted.push(Number(value));
        if (killAfter !== null && run.accepted.length === killAfter) child.kill('SIGKILL');
      } else if (word === 'replaying') run.replayed = Number(value);
      else if (word === 'spool_length') run.finalSpoolLength = Number(value);
    });
    let exited = null;
    const done = () => {
      clearTimeout(watchdog);
      resolve({ ...run, ...exited });
    };
    // Both the exit and the end of stdout, so that no printed line is missed.
    let pending = 2;
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      if (--pending === 0) done();
    });
    lines.on('close', () => {
      if (--pending === 0) done();
    });
  });
}

const range = (from, to) => Array.from({ length: to - from }, (_, k) => from + k);

test('a SIGKILLed client loses nothing and nothing is stored twice', { timeout: 600_000 }, async () => {
  const seed = Number(process.env.METERLINE_SPOOL_SEED ?? Math.floor(Math.random() * 2 ** 32));
  console.log(`spool kill seed: ${seed} (rerun with METERLINE_SPOOL_SEED=${seed})`);
  const rand = seeded(seed);
  const spool = join(dir, 'spool');
  const accepted = new Set();
  const attempted = new Set(); // every index some run may have tracked
  const replayed = [];
  let start = 0;
  const began = Date.now();
  for (let round = 0; round < KILLS; round++) {
    // At most 5 * 15,000 = 75,000 before the last kill: every kill lands mid-run.
    const killAfter = rand(1_000, 15_000);
    const run = await runChild(spool, start, killAfter);
    const context = `seed ${seed}, round ${round}, stderr: ${run.stderr}`;
    assert.equal(run.signal, 'SIGKILL', context);
    assert.ok(run.accepted.length >= killAfter, context);
    assert.equal(run.finalSpoolLength, null, `the child finished before the kill (${context})`);
    assert.deepEqual(run.accepted, range(start, start + run.accepted.length), context);
    assert.notEqual(run.replayed, null, context);
    replayed.push(run.replayed);
    const last = run.accepted.at(-1);
    for (const i of run.accepted) accepted.add(i);
    for (const i of range(start, last + 2)) attempted.add(i);
    console.log(`round ${round}: replayed ${run.replayed}, killed after ${run.accepted.length} (asked ${killAfter})`);
    start = last + 2;
  }

  const run = await runChild(spool, start, null);
  const context = `seed ${seed}, final run, stderr: ${run.stderr}`;
  assert.equal(run.code, 0, context);
  assert.equal(run.finalSpoolLength, 0, context);
  assert.deepEqual(run.accepted, range(start, TOTAL), context);
  replayed.push(run.replayed);
  for (const i of run.accepted) accepted.add(i);
  for (const i of range(start, TOTAL)) attempted.add(i);
  console.log(`final run: replayed ${run.replayed}; children took ${((Date.now() - began) / 1000).toFixed(1)} s`);

  // Replays happened: runs after a kill found events left in the spool by the one killed.
  // (replayed[0] is the first run's, on an empty directory.)
  assert.equal(replayed[0], 0);
  assert.ok(
    replayed.slice(1).some((n) => n > 0),
    `no kill left events in the spool (replayed at each start: ${replayed}); seed ${seed}`,
  );

  const stored = (await storedEvents(server, { type: EVENT_TYPE })).map((e) => Number(e.id.slice('spool-'.length)));
  const unique = new Set(stored);
  assert.equal(unique.size, stored.length, `an event was stored twice (seed ${seed})`);
  const lost = [...accepted].filter((i) => !unique.has(i)).slice(0, 10);
  assert.deepEqual(lost, [], `accepted events never stored (first 10, seed ${seed})`);
  const stray = [...unique].filter((i) => !attempted.has(i)).slice(0, 10);
  assert.deepEqual(stray, [], `stored events no run tracked (seed ${seed})`);
  assert.equal(accepted.size, TOTAL - KILLS); // one index skipped per kill
  console.log(`stored ${stored.length} events, ${accepted.size} accepted`);

  // A new client on the same directory finds nothing to replay.
  const client = new Client({
    apiKey: server.secretKey,
    endpoint: server.url,
    fetchSchemas: false,
    stream: false,
    spoolDir: spool,
  });
  assert.equal(client.stats().spoolLength, 0);
  await client.shutdown();
});
