// The package as users get it: `npm pack` output installs into a fresh directory, the
// README quick start runs there against a real server, and TypeScript examples type-check
// against the packed types (ESM and CommonJS).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { packageDir, runNode, startServer, storedEvents } from './helpers.mjs';

const tsc = join(packageDir, 'node_modules', 'typescript', 'bin', 'tsc');
let server;
let fresh;

before(async () => {
  server = await startServer();
  fresh = mkdtempSync(join(tmpdir(), 'meterline-pack-'));
});
after(async () => {
  if (fresh) rmSync(fresh, { recursive: true, force: true });
  await server?.stop();
});

/** Runs tsc; a type error fails with tsc's own report. */
function typecheck(project) {
  try {
    execFileSync(process.execPath, [tsc, '--noEmit', '-p', project], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    assert.fail(`tsc -p ${project}:\n${e.stdout}${e.stderr}`);
  }
}

function npm(args, cwd) {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

test('types: tsc --noEmit on the examples in test/types', () => {
  typecheck(join(packageDir, 'test', 'types'));
});

test('npm pack output installs into a fresh directory', () => {
  const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', fresh], packageDir));
  const files = packed[0].files.map((f) => f.path).sort();
  for (const f of [
    'README.md',
    'index.d.mts',
    'index.d.ts',
    'index.js',
    'index.mjs',
    'native.d.ts',
    'native.js',
    'package.json',
  ]) {
    assert.ok(files.includes(f), `${f} missing from the package: ${files}`);
  }
  assert.ok(
    files.some((f) => /^meterline\.[a-z0-9-]+\.node$/.test(f)),
    'the addon is not in the package',
  );
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'sources leaked into the package');
  writeFileSync(join(fresh, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true, type: 'module' }));
  npm(['install', '--no-audit', '--no-fund', '--prefer-offline', join(fresh, packed[0].filename)], fresh);
  assert.deepEqual(
    readdirSync(join(fresh, 'node_modules')).filter((d) => !d.startsWith('.')),
    ['meterline'],
  );
});

test('the README quick start runs from the installed package', async () => {
  const readme = readFileSync(join(packageDir, 'README.md'), 'utf8');
  const quickStart = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)[1];
  writeFileSync(join(fresh, 'quickstart.mjs'), quickStart);
  const run = await runNode(['quickstart.mjs'], {
    cwd: fresh,
    env: { METERLINE_API_KEY: server.secretKey, METERLINE_ENDPOINT: server.url },
  });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /tracked [0-9a-f-]{36}/);
  assert.match(run.stdout, /refused: invalid_event at \/data\/tokens/);
  assert.match(run.stdout, /sent: 1/);
  const stored = await storedEvents(server, { type: 'api.call' });
  assert.equal(stored.length, 1);
  assert.deepEqual(stored[0].data, { tokens: 1234, model: 'm-large' });
  // CommonJS from the same installed package.
  writeFileSync(
    join(fresh, 'require.cjs'),
    "const m = require('meterline'); console.log(typeof m.Client, new m.ValidationError('x') instanceof m.MeterlineError);",
  );
  const cjs = await runNode(['require.cjs'], { cwd: fresh });
  assert.equal(cjs.stdout.trim(), 'function true', cjs.stderr);
});

test('examples/node-quickstart runs from the installed package', async () => {
  copyFileSync(join(packageDir, '..', 'examples', 'node-quickstart', 'index.mjs'), join(fresh, 'example.mjs'));
  const run = await runNode(['example.mjs'], {
    cwd: fresh,
    env: { METERLINE_API_KEY: server.secretKey, METERLINE_ENDPOINT: server.url, METERLINE_ADMIN_KEY: server.adminKey },
  });
  assert.equal(run.code, 0, run.stderr);
  // The README quick start's event for customer-42 already counts (usage is per period).
  const [, usage] =
    /api_calls for customer-42: hasAccess=true usage=(\d+) remaining=\d+ \(fresh\)/.exec(run.stdout) ?? [];
  assert.ok(usage !== undefined, run.stdout);
  const after = Number(usage) + 5;
  assert.match(run.stdout, new RegExp(`after 5 calls: usage=${after} remaining=${100 - after} \\(cache\\)`));
  assert.match(run.stdout, /refused as expected: invalid_event at \/data\/tokens/);
  assert.match(run.stdout, /stats: enqueued=6 sent=6 duplicates=0 rejected=0/);
  assert.match(run.stdout, /the server stored 7 events:/); // 6 + the README quick start's one
  assert.match(run.stdout, /api\.call customer-7 \{"model":"m-small","tokens":42\}/);
});

test('types: tsc --noEmit in the fresh directory, against the packed types', () => {
  for (const f of ['example.mts', 'example.cts']) copyFileSync(join(packageDir, 'test', 'types', f), join(fresh, f));
  const config = JSON.parse(readFileSync(join(packageDir, 'test', 'types', 'tsconfig.json'), 'utf8'));
  config.compilerOptions.typeRoots = [join(packageDir, 'node_modules', '@types')];
  writeFileSync(join(fresh, 'tsconfig.json'), JSON.stringify(config));
  typecheck(fresh);
});
