// track() per call in headless Chromium: meterline-web (default build) beside posthog-js
// capture(), in the same page and run. Each side tracks N events of the same shape into a
// client whose sends go nowhere that answers (meterline: flushIntervalMs 1 h; posthog: a dead
// api_host, batching on), after a warm-up; median of 5 rounds.
//   node bench/browser_percall.mjs   (after `make browser`; needs Debian's chromium)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { packageDir, startStack } from '../bindings-wasm/test/helpers.mjs';

const N = Number(process.env.N ?? 100_000);
const stack = await startStack();
try {
  const tab = await stack.open();
  // The page's CSP refuses inline scripts; evaluation through the DevTools protocol is not subject to it.
  await tab.evaluate(readFileSync(join(packageDir, 'node_modules', 'posthog-js', 'dist', 'array.js'), 'utf8'));
  const result = await tab.evaluate(async (n) => {
    const { Client, config } = window.meterline;
    const client = new Client({
      apiKey: config.publishableKey,
      endpoint: 'http://127.0.0.1:9',
      customerToken: window.meterline.token,
      flushIntervalMs: 3_600_000,
      flushAt: 10_000,
      maxQueueSize: 10_000_000,
    });
    const ph = window.posthog;
    ph.init('phc_bench', {
      api_host: 'http://127.0.0.1:9',
      autocapture: false,
      capture_pageview: false,
      disable_session_recording: true,
      persistence: 'memory',
    });
    const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const round = (fn) => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) fn(i);
      return ((performance.now() - t0) * 1000) / n; // µs per call
    };
    const ml = (i) => client.track('page.view', 'c1', { path: '/pricing', i, plan: 'pro' });
    const pc = (i) => ph.capture('page.view', { path: '/pricing', i, plan: 'pro' });
    round(ml);
    round(pc);
    const a = [];
    const b = [];
    for (let r = 0; r < 5; r++) {
      a.push(round(ml));
      b.push(round(pc));
    }
    return { meterline: median(a), posthog: median(b), rounds: { meterline: a, posthog: b } };
  }, N);
  console.log(`N = ${N} per round, median of 5`);
  console.log(`meterline-web track(): ${result.meterline.toFixed(2)} µs/call`);
  console.log(`posthog-js capture():  ${result.posthog.toFixed(2)} µs/call`);
  console.log(`ratio (posthog / meterline): ${(result.posthog / result.meterline).toFixed(1)}×`);
} finally {
  await stack.stop();
}
