// The npm package as a user gets it: `npm pack` of bindings-wasm installed into a fresh
// project, then both entry points (`meterline-web`, `meterline-web/full`) imported by name,
// initialised from the packed .wasm and used.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { packageDir } from './helpers.mjs';

const missing = existsSync(join(packageDir, 'dist', 'full', 'meterline_wasm_bg.wasm'))
  ? false
  : 'run make browser first';

describe('the packed package in a fresh project', { skip: missing }, () => {
  const project = mkdtempSync(join(tmpdir(), 'meterline-web-pack-'));
  after(() => rmSync(project, { recursive: true, force: true }));

  test('installs from its tarball and both builds load, validate and refuse', () => {
    const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', project], { cwd: packageDir })
      .toString()
      .trim()
      .split('\n')
      .pop();
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'fresh', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(project, tarball)], { cwd: project });
    writeFileSync(
      join(project, 'check.mjs'),
      `
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const out = {};
for (const name of ['meterline-web', 'meterline-web/full']) {
  const m = await import(name);
  const wasm = require.resolve(name).replace(/meterline\\.js$/, 'meterline_wasm_bg.wasm');
  await m.default(readFileSync(wasm));
  const client = new m.Client({ apiKey: 'ml_sk_pack_0123456789abcdef0123', endpoint: 'http://127.0.0.1:9', flushIntervalMs: 3600000,
    schemas: { 'api.call': { type: 'object', properties: { n: { type: 'integer' } } } } });
  const id = client.track('api.call', 'c1', { n: 1 });
  let schema = 'accepted';
  try { client.track('api.call', 'c1', { n: 'x' }); } catch (e) { schema = e.code; }
  let bad = null;
  try { client.track('api.call', 'c1', { n: NaN }); } catch (e) { bad = [e.name, e.code, e instanceof m.ValidationError]; }
  await client.shutdown(10).catch((e) => e.code);
  out[name] = { id: typeof id, schema, bad };
}
console.log(JSON.stringify(out));
`,
    );
    const out = JSON.parse(execFileSync('node', ['check.mjs'], { cwd: project }).toString());
    assert.deepEqual(out['meterline-web'], {
      id: 'string',
      schema: 'accepted',
      bad: ['ValidationError', 'invalid_event', true],
    });
    assert.deepEqual(out['meterline-web/full'], {
      id: 'string',
      schema: 'schema_violation',
      bad: ['ValidationError', 'invalid_event', true],
    });
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'meterline-web', 'package.json'), 'utf8'));
    assert.equal(manifest.name, 'meterline-web');
  });
});
