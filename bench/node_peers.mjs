// meterline vs posthog-node and @segment/analytics-node, from Node.js: caller-side cost per
// call, end-to-end delivery throughput and peak RSS. A benchmark script, not a test.
//
//   node bench/node_peers.mjs [--events 200000] [--rounds 3]
//
// It installs posthog-node and @segment/analytics-node (pinned below) into a bench-local
// node_modules (bench/out/node-peers/), builds what is missing (the napi-rs addon in
// bindings-node/, a release meterline-server), and starts on 127.0.0.1
//
// * a real meterline-server (release) on a fresh SQLite file, which meterline delivers to;
// * a small Node HTTP sink (its own process) that accepts any POST — PostHog's `/batch/`,
//   Segment's `/v1/batch` — decompresses and parses it, and counts the events.
//
// Then it runs each SDK in its own child process, one after the other, `--rounds` times:
//
// * per call — wall time of N calls of track/capture with the same event (`api.call` for
//   `customer-42` with `{ i, model, tokens }`), divided by N;
// * end to end — N events from the first call until the receiver has them all (meterline:
//   `flush()` resolves once the server has committed every batch; peers: the sink has
//   counted N), as events per second;
// * peak RSS of the SDK's process (`process.resourceUsage().maxRSS`).
//
// Every SDK gets a queue large enough for N events (nothing is dropped) and batches of 500
// (meterline's default; the peers' defaults are 15–20, which would only slow them down).
// It prints the medians with the ratios to meterline and writes bench/out/node_peers.json.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gunzipSync, inflateSync } from 'node:zlib';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(REPO, 'bench', 'out');
const PEERS_DIR = join(OUT, 'node-peers');
const PEERS = { 'posthog-node': '5.70.0', '@segment/analytics-node': '3.1.0' };
const SDKS = ['meterline', 'posthog-node', '@segment/analytics-node'];
const MODELS = ['m-small', 'm-large'];
const BATCH = 500;

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

// --- the sink (its own process) ---------------------------------------------------------

function runSink() {
  // Counts distinct events (by PostHog's `uuid` / Segment's `messageId`): a retried request
  // must not count twice. `GET` answers the count so far.
  const seen = new Set();
  let anonymous = 0;
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      res.end(JSON.stringify({ count: seen.size + anonymous }));
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      const encoding = req.headers['content-encoding'];
      if (encoding === 'gzip') body = gunzipSync(body);
      else if (encoding === 'deflate') body = inflateSync(body);
      try {
        const doc = JSON.parse(body.toString('utf8'));
        const events = Array.isArray(doc.batch) ? doc.batch : Array.isArray(doc) ? doc : [doc];
        for (const e of events) {
          const id = e.uuid ?? e.messageId;
          if (id === undefined) anonymous++;
          else seen.add(id);
        }
      } catch {
        // Counted as nothing; the run then fails its delivery check.
      }
      res.setHeader('content-type', 'application/json');
      res.end('{"status":"Ok"}');
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => console.log(`sink listening on http://127.0.0.1:${server.address().port}`));
}

async function sinkCount(sink) {
  // A fresh connection each time (the sink may have closed an idle one); a few retries.
  for (let attempt = 1; ; attempt++) {
    try {
      return (await (await fetch(sink, { headers: { connection: 'close' } })).json()).count;
    } catch (e) {
      if (attempt >= 5) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

// --- one SDK run (its own process) -------------------------------------------------------

async function runChild(sdk, n, endpoint, key) {
  const event = (i) => ({ i, model: MODELS[i & 1], tokens: 1234 });
  let call;
  let drain;
  let shutdown;
  if (sdk === 'meterline') {
    const { Client } = await import(pathToFileURL(join(REPO, 'bindings-node', 'index.js')).href);
    const client = new Client({ apiKey: key, endpoint, maxQueueSize: n + 50_000, flushAt: BATCH });
    client.on('error', (e) => console.error(`meterline: ${e.code}: ${e.message}`));
    call = (i) => client.track('api.call', 'customer-42', event(i));
    drain = async () => {
      await client.flush(600_000);
      return client.stats().sent;
    };
    shutdown = () => client.shutdown();
  } else if (sdk === 'posthog-node') {
    const { PostHog } = await import(
      pathToFileURL(join(PEERS_DIR, 'node_modules', 'posthog-node', 'dist', 'entrypoints', 'index.node.mjs')).href
    );
    const posthog = new PostHog('phc_bench', {
      host: endpoint,
      flushAt: BATCH,
      maxBatchSize: BATCH,
      maxQueueSize: n + 50_000,
      flushInterval: 1000,
    });
    call = (i) => posthog.capture({ distinctId: 'customer-42', event: 'api.call', properties: event(i) });
    drain = () => posthog.flush();
    shutdown = () => posthog.shutdown();
  } else {
    const require = (await import('node:module')).createRequire(join(PEERS_DIR, 'package.json'));
    const { Analytics } = require('@segment/analytics-node');
    const analytics = new Analytics({ writeKey: 'bench', host: endpoint, flushAt: BATCH, flushInterval: 1000 });
    call = (i) => analytics.track({ userId: 'customer-42', event: 'api.call', properties: event(i) });
    drain = () => analytics.closeAndFlush({ timeout: 600_000 });
    shutdown = async () => {};
  }
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) call(i);
  const called = process.hrtime.bigint();
  const sent = await drain();
  const drained = process.hrtime.bigint();
  await shutdown();
  console.log(
    JSON.stringify({
      perCallNs: Number(called - started) / n,
      drainedSeconds: Number(drained - started) / 1e9,
      sent: typeof sent === 'number' ? sent : null,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    }),
  );
}

// --- the driver ---------------------------------------------------------------------------

/** Starts a process and resolves with the first stdout line matching `ready` (and the child). */
function start(command, args, ready, options = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-4000)));
  const lines = createInterface({ input: child.stdout });
  const seen = [];
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start: ${stderr}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`${command} exited with ${code}: ${stderr}`)));
    lines.on('line', (line) => {
      seen.push(line);
      const m = ready.exec(line);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolvePromise({ child, match: m, lines: seen });
      }
    });
  });
}

function stop(child) {
  if (child.exitCode !== null) return Promise.resolve();
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  return exited;
}

function ensurePeers() {
  const installed = Object.keys(PEERS).every((p) => existsSync(join(PEERS_DIR, 'node_modules', p, 'package.json')));
  if (installed) return;
  console.log(
    `installing ${Object.entries(PEERS)
      .map(([p, v]) => `${p}@${v}`)
      .join(', ')} into ${PEERS_DIR} ...`,
  );
  mkdirSync(PEERS_DIR, { recursive: true });
  writeFileSync(
    join(PEERS_DIR, 'package.json'),
    JSON.stringify({ name: 'meterline-bench-node-peers', private: true, dependencies: PEERS }, null, 2),
  );
  execFileSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: PEERS_DIR, stdio: 'inherit' });
}

function ensureAddon() {
  const dir = join(REPO, 'bindings-node');
  if (readdirSync(dir).some((f) => /^meterline\..*\.node$/.test(f))) return;
  console.log('building the meterline addon (napi build --release) ...');
  if (!existsSync(join(dir, 'node_modules')))
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit' });
  execFileSync(
    'npx',
    ['napi', 'build', '--platform', '--release', '--strip', '--js', 'native.js', '--dts', 'native.d.ts'],
    {
      cwd: dir,
      stdio: 'inherit',
    },
  );
}

function ensureServer() {
  const bin = join(REPO, 'target', 'release', 'meterline-server');
  if (!existsSync(bin)) {
    console.log('building meterline-server (release) ...');
    execFileSync('cargo', ['build', '--release', '--locked', '-p', 'meterline-server'], {
      cwd: REPO,
      stdio: 'inherit',
    });
  }
  return bin;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function waitForSink(sink, target, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const count = await sinkCount(sink);
    if (count >= target || Date.now() > deadline) return count;
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main() {
  const n = Number(arg('events', 200_000));
  const rounds = Number(arg('rounds', 3));
  ensurePeers();
  ensureAddon();
  const serverBin = ensureServer();
  mkdirSync(OUT, { recursive: true });
  const dbDir = mkdtempSync(join(tmpdir(), 'meterline-bench-'));
  const server = await start(
    serverBin,
    ['serve', '--bind', '127.0.0.1:0', '--database-url', `sqlite://${dbDir}/m.db`],
    /listening on (http:\S+)/,
    {
      env: { ...process.env, RUST_LOG: 'warn' },
    },
  );
  const serverUrl = server.match[1];
  const key = server.lines.map((l) => /secret key: (\S+)/.exec(l)).find(Boolean)[1];
  const sinkProc = await start(
    process.execPath,
    [fileURLToPath(import.meta.url), '--sink'],
    /sink listening on (http:\S+)/,
  );
  const sink = sinkProc.match[1];

  const results = Object.fromEntries(SDKS.map((s) => [s, []]));
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const sdk of SDKS) {
        console.log(`round ${round}/${rounds}: ${sdk} (${n} events) ...`);
        const endpoint = sdk === 'meterline' ? serverUrl : sink;
        const before = sdk === 'meterline' ? 0 : await sinkCount(sink);
        const out = execFileSync(
          process.execPath,
          [fileURLToPath(import.meta.url), '--child', sdk, '--events', String(n), '--endpoint', endpoint, '--key', key],
          {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'inherit'],
            maxBuffer: 1 << 24,
          },
        );
        const run = JSON.parse(out.trim().split('\n').pop());
        // meterline's flush() resolves once the server committed every batch (`sent` counts
        // the stored events); the peers' flush resolves when their requests were answered,
        // and the sink counts before it answers — its count is their proof of delivery.
        const delivered = sdk === 'meterline' ? run.sent : (await waitForSink(sink, before + n, 10_000)) - before;
        const seconds = run.drainedSeconds;
        results[sdk].push({ ...run, delivered, eventsPerSecond: delivered === n ? n / seconds : 0 });
        console.log(
          `  ${run.perCallNs.toFixed(0)} ns/call, ${(n / seconds).toFixed(0)} events/s end to end, ${run.maxRssMiB.toFixed(0)} MiB peak RSS, ${delivered}/${n} delivered`,
        );
      }
    }
  } finally {
    await stop(sinkProc.child);
    await stop(server.child);
    rmSync(dbDir, { recursive: true, force: true });
  }

  const summary = {};
  for (const sdk of SDKS) {
    const runs = results[sdk];
    summary[sdk] = {
      perCallNs: median(runs.map((r) => r.perCallNs)),
      eventsPerSecond: median(runs.map((r) => r.eventsPerSecond)),
      maxRssMiB: median(runs.map((r) => r.maxRssMiB)),
      delivered: Math.min(...runs.map((r) => r.delivered ?? 0)),
    };
  }
  const me = summary.meterline;
  const peers = SDKS.filter((s) => s !== 'meterline');
  const bestPerCall = Math.min(...peers.map((p) => summary[p].perCallNs));
  const bestThroughput = Math.max(...peers.map((p) => summary[p].eventsPerSecond));

  console.log(`\n${n} events per SDK, median of ${rounds} rounds; Node ${process.version}; ${cpus().length} CPUs`);
  const header = `${'SDK'.padEnd(26)}${'ns/call'.padStart(10)}${'÷ meterline'.padStart(13)}${'events/s'.padStart(12)}${'meterline ×'.padStart(13)}${'peak RSS'.padStart(11)}${'delivered'.padStart(11)}`;
  console.log(header);
  console.log('-'.repeat(header.length));
  for (const sdk of SDKS) {
    const s = summary[sdk];
    console.log(
      `${sdk.padEnd(26)}${s.perCallNs.toFixed(0).padStart(10)}${(s.perCallNs / me.perCallNs).toFixed(2).padStart(13)}${s.eventsPerSecond.toFixed(0).padStart(12)}${(me.eventsPerSecond / s.eventsPerSecond).toFixed(2).padStart(13)}${`${s.maxRssMiB.toFixed(0)} MiB`.padStart(11)}${String(s.delivered).padStart(11)}`,
    );
  }
  const perCallRatio = bestPerCall / me.perCallNs;
  const throughputRatio = me.eventsPerSecond / bestThroughput;
  console.log(
    `\nmeterline vs the best peer: ${perCallRatio.toFixed(2)}× lower per-call cost (target 5×), ${throughputRatio.toFixed(2)}× higher end-to-end throughput (target 5×)`,
  );
  writeFileSync(
    join(OUT, 'node_peers.json'),
    JSON.stringify(
      {
        events: n,
        rounds,
        node: process.version,
        versions: PEERS,
        summary,
        runs: results,
        perCallRatio,
        throughputRatio,
      },
      null,
      2,
    ),
  );
  console.log(`written to ${join(OUT, 'node_peers.json')}`);
}

if (process.argv.includes('--sink')) runSink();
else if (process.argv.includes('--child'))
  await runChild(arg('child'), Number(arg('events')), arg('endpoint'), arg('key'));
else await main();
