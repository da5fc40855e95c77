// Shared by the browser tests: the real meterline-server (the Node package's test helpers
// start it), customer tokens, the quick-start page and headless Chromium.
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { startExample } from '../../examples/browser-quickstart/server.mjs';

import { startServer } from '../../bindings-node/test/helpers.mjs';

export { admin, eventually, startServer, storedEvents } from '../../bindings-node/test/helpers.mjs';

export const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const repoDir = resolve(packageDir, '..');

/** The Chromium binary: $CHROMIUM, else Debian's. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here, or null. */
export function browserMissing() {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
  if (!existsSync(join(packageDir, 'dist', 'default', 'meterline_wasm_bg.wasm')))
    return 'no dist/default: run make browser';
  return null;
}

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/**
 * A customer token (DESIGN §6) minted from `secretKey` here with node:crypto: HS256, `kid` the
 * key's id, signed with HMAC-SHA256(secret key, "meterline customer token v1").
 */
export function mintToken(secretKey, subject, ttlSeconds = 3600) {
  const kid = secretKey.split('_')[2];
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64url({ alg: 'HS256', typ: 'JWT', kid })}.${b64url({ sub: subject, iat: now, exp: now + ttlSeconds })}`;
  const signingKey = createHmac('sha256', secretKey).update('meterline customer token v1').digest();
  return `${input}.${createHmac('sha256', signingKey).update(input).digest('base64url')}`;
}

/** A new publishable key of the server's project. */
export async function publishableKey(server) {
  const res = await fetch(`${server.url}/v1/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'publishable' }),
  });
  if (!res.ok) throw new Error(`POST /v1/admin/keys: ${res.status} ${await res.text()}`);
  return (await res.json()).key;
}

/** The project's browser settings (`client_event_types`, `allowed_origins`). */
export async function settings(server, body) {
  const res = await fetch(`${server.url}/v1/admin/settings`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`PUT /v1/admin/settings: ${res.status} ${await res.text()}`);
}

/**
 * The whole setup: server, publishable key, the quick-start page served for `bundle`
 * (`default` or `full`), its origin allowed and `page.view` a client type, and Chromium.
 * `server`: a server already started (else a fresh one); `root`: the folder served as the
 * page (default: examples/browser-quickstart/).
 */
export async function startStack({ bundle = 'default', server: given, root } = {}) {
  const server = given ?? (await startServer());
  const pk = await publishableKey(server);
  const page = await startExample({
    endpoint: server.url,
    publishableKey: pk,
    mintToken: (subject) => mintToken(server.secretKey, subject),
    bundle: join(packageDir, 'dist', bundle),
    root,
  });
  await settings(server, { client_event_types: ['page.view'], allowed_origins: [page.url] });
  const profile = mkdtempSync(join(tmpdir(), 'meterline-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
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
  return {
    server,
    pk,
    page,
    browser,
    /** A new tab on the quick start, once its client is ready. */
    async open() {
      const tab = await browser.newPage();
      const logs = [];
      tab.on('console', (m) => logs.push(m.text()));
      tab.on('pageerror', (e) => logs.push(String(e)));
      await tab.goto(page.url);
      await tab.waitForFunction(() => window.meterline || window.meterlineFailed, null, { timeout: 30_000 });
      const failed = await tab.evaluate(() => window.meterlineFailed && String(window.meterlineFailed));
      if (failed) throw new Error(`the page failed to start: ${failed}\n${logs.join('\n')}`);
      return tab;
    },
    async stop() {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
      await page.close();
      await server.stop();
    },
  };
}
