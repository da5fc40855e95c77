// Helpers of the persisted-outbox and page-lifecycle tests: a meterline-server that can be
// stopped and started again on the same port and SQLite file, a Chromium context on the
// quick-start page, and a look into the page's IndexedDB.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { chromium } from 'playwright-core';

import { startExample } from '../../examples/browser-quickstart/server.mjs';

import { serverBinary } from '../../bindings-node/test/helpers.mjs';
import { CHROMIUM, mintToken, packageDir, publishableKey, settings } from './helpers.mjs';

/** meterline-server on `bind` with the SQLite file in `dir`; resolves once it listens. */
function spawnServer(dir, bind, info) {
  const child = spawn(serverBinary(), ['serve', '--bind', bind, '--database-url', `sqlite://${dir}/m.db`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within 30 s: ${stderr}`)), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${stderr}`));
    });
    lines.on('line', (line) => {
      let m;
      if ((m = /secret key: (\S+)/.exec(line))) info.secretKey = m[1];
      else if ((m = /admin key: (\S+)/.exec(line))) info.adminKey = m[1];
      else if ((m = /listening on (http:\/\/\S+)/.exec(line))) {
        info.url = m[1];
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve(child);
      }
    });
  });
}

/**
 * A server that `stop()`s (SIGTERM, the process gone) and `start()`s again on the same port
 * and database; `close()` stops it and removes its files.
 */
export async function restartableServer() {
  const dir = mkdtempSync(join(tmpdir(), 'meterline-web-life-'));
  const server = {};
  let child = await spawnServer(dir, '127.0.0.1:0', server);
  const bind = new URL(server.url).host;
  server.stop = async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    child = null;
  };
  server.start = async () => {
    child = await spawnServer(dir, bind, server);
  };
  server.close = async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return server;
}

/**
 * The restartable server, a publishable key, the quick-start page and a Chromium context
 * (one profile: its tabs share IndexedDB and Web Locks, as tabs of one origin do).
 */
export async function lifeStack() {
  const server = await restartableServer();
  const pk = await publishableKey(server);
  const page = await startExample({
    endpoint: server.url,
    publishableKey: pk,
    mintToken: (subject) => mintToken(server.secretKey, subject),
    bundle: join(packageDir, 'dist', 'default'),
  });
  await settings(server, { client_event_types: ['page.view'], allowed_origins: [page.url] });
  const profile = mkdtempSync(join(tmpdir(), 'meterline-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const database = `meterline.outbox.${pk.split('_')[2]}`;
  return {
    server,
    pk,
    page,
    context,
    /** A new tab on the quick start, once its client is ready. */
    async open() {
      const tab = await context.newPage();
      tab.logs = [];
      tab.on('console', (m) => tab.logs.push(m.text()));
      tab.on('pageerror', (e) => tab.logs.push(String(e)));
      await tab.goto(page.url);
      await ready(tab);
      return tab;
    },
    /** The events persisted in the origin's outbox: `[{session, seq, id}]`. */
    async persisted(tab) {
      return tab.evaluate(async (name) => {
        const known = (await indexedDB.databases()).some((d) => d.name === name);
        if (!known) return [];
        const db = await new Promise((resolve, reject) => {
          const open = indexedDB.open(name);
          open.onsuccess = () => resolve(open.result);
          open.onerror = () => reject(open.error);
        });
        try {
          if (!db.objectStoreNames.contains('events')) return [];
          const store = db.transaction('events').objectStore('events');
          const [keys, values] = await Promise.all(
            [store.getAllKeys(), store.getAll()].map(
              (r) =>
                new Promise((resolve, reject) => {
                  r.onsuccess = () => resolve(r.result);
                  r.onerror = () => reject(r.error);
                }),
            ),
          );
          return keys.map(([session, seq], i) => ({ session, seq, id: JSON.parse(values[i]).id }));
        } finally {
          db.close();
        }
      }, database);
    },
    /** Fails every request of the context to `route` (`/v1/events`, `/v1/beacon`) until `unblock()`. */
    async block(route) {
      const pattern = `${server.url}${route}`;
      const handler = (r) => r.abort('connectionrefused');
      await context.route(pattern, handler);
      return () => context.unroute(pattern, handler);
    },
    async stop() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      await page.close();
      await server.close();
    },
  };
}

/** Waits until the quick start's client is ready (after a load or a reload). */
export async function ready(tab) {
  await tab.waitForFunction(() => window.meterline || window.meterlineFailed, null, { timeout: 30_000 });
  const failed = await tab.evaluate(() => window.meterlineFailed && String(window.meterlineFailed));
  if (failed) throw new Error(`the page failed to start: ${failed}\n${tab.logs?.join('\n')}`);
}

/** Tracks `n` page views in the tab; resolves to their ids. */
export function trackViews(tab, n, { prefix = '/v', pad = 0 } = {}) {
  return tab.evaluate(
    ({ n, prefix, pad }) => {
      const { client, config } = window.meterline;
      const ids = [];
      for (let i = 0; i < n; i++)
        ids.push(client.track('page.view', config.subject, { path: `${prefix}/${i}`, pad: 'x'.repeat(pad) }));
      return ids;
    },
    { n, prefix, pad },
  );
}

/** How many times each of `ids` is among `stored` (`[id, count]` of those not exactly once). */
export function notOnce(ids, stored) {
  const counts = new Map();
  for (const e of stored) counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
  return ids.map((id) => [id, counts.get(id) ?? 0]).filter(([, n]) => n !== 1);
}
