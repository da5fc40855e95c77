// A meterline-server that can be stopped and started again on the same port and SQLite
// file (the stream tests restart it under a connected page).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { serverBinary } from '../../bindings-node/test/helpers.mjs';

function launch(dir, bind) {
  const child = spawn(serverBinary(), ['serve', '--bind', bind, '--database-url', `sqlite://${dir}/m.db`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const info = {};
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
        resolve({ child, info });
      }
    });
  });
}

async function halt(child) {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

/**
 * Starts meterline-server on a free port with a fresh SQLite file. Resolves to
 * `{ url, secretKey, adminKey, down(), up(), stop() }`: `down()` stops the process, `up()`
 * starts it again on the same port and file, `stop()` ends it and removes the file.
 */
export async function startRestartableServer() {
  const dir = mkdtempSync(join(tmpdir(), 'meterline-web-'));
  let { child, info } = await launch(dir, '127.0.0.1:0');
  const server = {
    ...info,
    async down() {
      await halt(child);
    },
    async up() {
      ({ child } = await launch(dir, new URL(info.url).host));
    },
    async stop() {
      await halt(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}
