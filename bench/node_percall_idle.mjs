// Caller-side cost of one track()/capture() with the delivery pipeline idle: every SDK
// points at a closed port on 127.0.0.1 with batching thresholds above N, so nothing is
// compressed or sent while the calls run (in bench/node_peers.mjs the sender and the server
// share the two cores with the calling thread). Same event for every SDK. A benchmark
// script, not a test; run bench/node_peers.mjs first (it installs the peers into
// bench/out/node-peers/ and builds the addon).
//
//   node bench/node_percall_idle.mjs [--events 200000] [--rounds 5]

import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PEERS_DIR = join(REPO, 'bench', 'out', 'node-peers');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('events', 200_000);
const ROUNDS = arg('rounds', 5);
const MODELS = ['m-large', 'm-small'];
const event = (i) => ({ i, model: MODELS[i & 1], tokens: 1234 });

async function closedPort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return `http://127.0.0.1:${port}`;
}

async function sdks(endpoint) {
  const { Client } = await import(pathToFileURL(join(REPO, 'bindings-node', 'index.js')).href);
  const { PostHog } = await import(
    pathToFileURL(join(PEERS_DIR, 'node_modules', 'posthog-node', 'dist', 'entrypoints', 'index.node.mjs')).href
  );
  const { Analytics } = createRequire(join(PEERS_DIR, 'package.json'))('@segment/analytics-node');
  return {
    meterline: () => {
      const c = new Client({
        apiKey: 'ml_sk_bench_0123456789abcdef0123',
        endpoint,
        fetchSchemas: false,
        flushAt: 10_000,
        flushIntervalMs: 3_600_000,
        maxQueueSize: N * ROUNDS + 50_000,
      });
      c.on('error', () => {});
      return {
        call: (i) => c.track('api.call', 'customer-42', event(i)),
        close: () => c.shutdown(1).catch(() => {}),
      };
    },
    'posthog-node': () => {
      const p = new PostHog('phc_bench', {
        host: endpoint,
        flushAt: 1e9,
        maxQueueSize: 1e9,
        flushInterval: 3_600_000,
      });
      return {
        call: (i) =>
          p.capture({
            distinctId: 'customer-42',
            event: 'api.call',
            properties: event(i),
          }),
        close: () => Promise.resolve(p.shutdown(1)).catch(() => {}),
      };
    },
    '@segment/analytics-node': () => {
      const a = new Analytics({
        writeKey: 'bench',
        host: endpoint,
        flushAt: 1e9,
        flushInterval: 3_600_000,
      });
      return {
        call: (i) =>
          a.track({
            userId: 'customer-42',
            event: 'api.call',
            properties: event(i),
          }),
        close: () => a.closeAndFlush({ timeout: 1 }).catch(() => {}),
      };
    },
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const made = await sdks(await closedPort());
const results = {};
for (const [name, make] of Object.entries(made)) {
  const sdk = make();
  for (let i = 0; i < 20_000; i++) sdk.call(i); // warm up
  const runs = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sdk.call(i);
    runs.push(Number(process.hrtime.bigint() - t0) / N);
    await new Promise((ok) => setTimeout(ok, 50));
  }
  results[name] = median(runs);
  console.log(
    `${name.padEnd(26)} ${results[name].toFixed(0).padStart(7)} ns/call (median of ${ROUNDS} × ${N}; runs ${runs.map((x) => x.toFixed(0)).join(', ')})`,
  );
  await sdk.close();
}
const best = Math.min(results['posthog-node'], results['@segment/analytics-node']);
console.log(`meterline vs the best peer, pipeline idle: ${(best / results.meterline).toFixed(2)}× lower per-call cost`);
process.exit(0);
