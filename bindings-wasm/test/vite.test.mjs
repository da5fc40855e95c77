// meterline-web under a bundler and a strict Content-Security-Policy: `npm pack` installed
// into a fresh project, the quick start's page written against the package name and built
// with Vite (bindings-wasm's pinned devDependency), then loaded in headless Chromium next to a
// real meterline-server. The page's policy allows scripts from 'self' plus
// 'wasm-unsafe-eval' and nothing else; its events must be stored.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { browserMissing, packageDir, repoDir, startStack, storedEvents } from './helpers.mjs';

const vite = join(packageDir, 'node_modules', '.bin', 'vite');
const missing = browserMissing() ?? (existsSync(vite) ? null : 'no vite in bindings-wasm/node_modules (npm ci)');
if (missing) console.log(`# vite tests skipped: ${missing}`);

/** The page's policy: WebAssembly needs 'wasm-unsafe-eval', the stream ws: too. */
const CSP =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' http://127.0.0.1:* ws://127.0.0.1:*";

describe('meterline-web built with Vite, under a strict CSP', { skip: missing ?? false }, () => {
  const project = mkdtempSync(join(tmpdir(), 'meterline-web-vite-'));
  let stack;
  before(() => {
    const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', project], { cwd: packageDir })
      .toString()
      .trim()
      .split('\n')
      .pop();
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'vite-app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(project, tarball)], { cwd: project });
    // The quick start's page and script, importing the package by name.
    const html = readFileSync(join(repoDir, 'examples', 'browser-quickstart', 'index.html'), 'utf8')
      .replace(/content="default-src[^"]*"/, `content="${CSP}"`)
      .replace('./app.js', './main.js');
    assert.ok(html.includes(CSP) && html.includes('./main.js'), 'the page was rewritten');
    writeFileSync(join(project, 'index.html'), html);
    const app = readFileSync(join(repoDir, 'examples', 'browser-quickstart', 'app.js'), 'utf8');
    writeFileSync(join(project, 'main.js'), app.replace("'/meterline/meterline.js'", "'meterline-web'"));
    execFileSync(vite, ['build', '--logLevel', 'warn'], { cwd: project, stdio: ['ignore', 'inherit', 'inherit'] });
  });
  after(async () => {
    await stack?.stop();
    rmSync(project, { recursive: true, force: true });
  });

  test('the built page loads the wasm, tracks, and its events are stored once', async () => {
    stack = await startStack({ root: join(project, 'dist') });
    const violations = [];
    const tab = await stack.browser.newPage();
    tab.on('console', (m) => /Content Security Policy|Refused to/.test(m.text()) && violations.push(m.text()));
    await tab.goto(stack.page.url);
    await tab.waitForFunction(() => window.meterline || window.meterlineFailed, null, { timeout: 30_000 });
    const failed = await tab.evaluate(() => window.meterlineFailed && String(window.meterlineFailed));
    assert.equal(failed, undefined, `the built page failed: ${failed} ${violations.join(' ')}`);
    // Vite emitted the .wasm as an asset of its own, loaded from 'self'.
    const scripts = await tab.evaluate(() => [...document.scripts].map((s) => s.src));
    assert.ok(
      scripts.some((s) => /\/assets\/.*\.js$/.test(s)),
      JSON.stringify(scripts),
    );
    // Minified, the classes keep their names: what an application tests for.
    const refused = await tab.evaluate(() => {
      try {
        window.meterline.client.track('', 'c1', {});
      } catch (e) {
        return { name: e.name, code: e.code, isClass: e instanceof window.meterline.ValidationError };
      }
    });
    assert.deepEqual(refused, { name: 'ValidationError', code: 'invalid_event', isClass: true });
    const ids = await tab.evaluate(async () => {
      const { client, config } = window.meterline;
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(client.track('page.view', config.subject, { path: '/vite', i }));
      await client.flush(10_000);
      return ids;
    });
    const stored = await storedEvents(stack.server, { type: 'page.view' });
    for (const id of ids) assert.equal(stored.filter((e) => e.id === id).length, 1, `event ${id}`);
    assert.deepEqual(violations, []);
  });
});
