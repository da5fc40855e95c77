// Shared by the test files: a real meterline-server on 127.0.0.1 and small HTTP helpers.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const repoDir = resolve(packageDir, '..');

/** Where cargo builds: $CARGO_TARGET_DIR, else `cargo metadata`'s target_directory. */
function cargoTargetDir() {
  if (process.env.CARGO_TARGET_DIR) return resolve(repoDir, process.env.CARGO_TARGET_DIR);
  try {
    const meta = execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: repoDir });
    return JSON.parse(meta).target_directory;
  } catch {
    return join(repoDir, 'target');
  }
}

/** The server binary: $METERLINE_SERVER_BIN, or the workspace's debug build. */
export function serverBinary() {
  const bin = process.env.METERLINE_SERVER_BIN ?? join(cargoTargetDir(), 'debug', 'meterline-server');
  if (!existsSync(bin)) throw new Error(`${bin} not found: run \`cargo build -p meterline-server\` first`);
  return bin;
}

/**
 * Starts meterline-server on a free port with a fresh SQLite file. Resolves to
 * `{ url, secretKey, adminKey, stop() }` once it listens.
 */
export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'meterline-node-'));
  const child = spawn(serverBinary(), ['serve', '--bind', '127.0.0.1:0', '--database-url', `sqlite://${dir}/m.db`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const info = {};
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise((resolve, reject) => {
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
        resolve();
      }
    });
  });
  await ready;
  child.removeAllListeners('exit');
  return {
    ...info,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every event the server stored (oldest first), following the cursor. */
export async function storedEvents(server, query = {}) {
  const events = [];
  let cursor = null;
  do {
    const params = new URLSearchParams({ limit: '1000', ...query });
    if (cursor) params.set('cursor', cursor);
    const res = await fetch(`${server.url}/v1/events?${params}`, {
      headers: { authorization: `Bearer ${server.secretKey}` },
    });
    if (!res.ok) throw new Error(`GET /v1/events: ${res.status} ${await res.text()}`);
    const page = await res.json();
    events.push(...page.events);
    cursor = page.next_cursor;
  } while (cursor);
  return events;
}

/** Registers a JSON Schema for an event type on the server (admin API). */
export async function putSchema(server, type, schema) {
  const res = await fetch(`${server.url}/v1/admin/schemas/${encodeURIComponent(type)}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(schema),
  });
  if (!res.ok) throw new Error(`PUT schema: ${res.status} ${await res.text()}`);
}

/** A syntactically valid key no server knows. */
export const UNKNOWN_KEY = 'ml_sk_nobody_0123456789abcdef0123';

/** An endpoint where nothing listens (connections are refused at once). */
export const DEAD_ENDPOINT = 'http://127.0.0.1:9';

/** Runs `node <args>` and resolves to `{ code, signal, stdout, stderr, ms }`. */
export function runNode(args, { env = {}, timeoutMs = 60_000, cwd = packageDir } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${args.join(' ')} still running after ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export function fixture(name) {
  return join(packageDir, 'test', 'fixtures', name);
}

/** Calls the admin API (`/v1/admin/<path>`) with the server's admin key; resolves to the JSON body. */
export async function admin(server, method, path, body) {
  const res = await fetch(`${server.url}/v1/admin/${path}`, {
    method,
    headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} /v1/admin/${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

/**
 * A catalog for entitlement tests: features `calls` (metered on `api.call`, counted),
 * `sso` (boolean), `tier` (config); plan `pro` ({calls: limit, thresholds 0.8 and 1}, sso,
 * tier {seats: 3}); customers `subjects` on `pro`.
 */
export async function seedCatalog(server, { limit = 5, subjects = ['c1'] } = {}) {
  await admin(server, 'PUT', 'features/calls', { kind: 'metered', event_type: 'api.call' });
  await admin(server, 'PUT', 'features/sso', { kind: 'boolean' });
  await admin(server, 'PUT', 'features/tier', { kind: 'config' });
  await admin(server, 'PUT', 'plans/pro', {
    features: { calls: { limit, thresholds: [0.8, 1.0] }, sso: {}, tier: { value: { seats: 3 } } },
  });
  for (const subject of subjects) await admin(server, 'PUT', `customers/${subject}`, { plan: 'pro' });
}

/** Polls `check()` until it returns a truthy value (resolved to), or fails after `timeoutMs`. */
export async function eventually(check, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The server's count of HTTP requests to `route` (from `/metrics`). */
export async function requestCount(server, route) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('meterline_http_request_duration_seconds_count{') && line.includes(`route="${route}"`)) {
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return n;
}
