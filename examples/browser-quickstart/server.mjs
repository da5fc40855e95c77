// The quick start's backend: serves the page and the meterline-web bundle on 127.0.0.1, and
// mints each visitor's customer token (GET /token) with the Node package's
// `customerToken()` — the secret key never reaches the browser.
//
//   node examples/browser-quickstart/server.mjs   (METERLINE_ENDPOINT, METERLINE_SECRET_KEY,
//                                                  METERLINE_PUBLISHABLE_KEY, PORT)
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const TYPES = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

/**
 * Starts the page's server. `mintToken(subject)` returns a customer token; `bundle` is the
 * folder served as /meterline/ (a meterline-web dist folder); `root` the folder served as /
 * (default: this page; a bundler's output folder for a built copy of it). Resolves to
 * `{ url, close() }`.
 */
export async function startExample({
  endpoint,
  publishableKey,
  mintToken,
  bundle,
  root = here,
  subject = 'c1',
  port = 0,
}) {
  const roots = { '/meterline/': resolve(bundle), '/': resolve(root) };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    try {
      if (url.pathname === '/config') {
        return send(res, 200, 'application/json', JSON.stringify({ endpoint, publishableKey, subject }));
      }
      if (url.pathname === '/token') {
        const token = await mintToken(url.searchParams.get('subject') ?? subject);
        return send(res, 200, 'application/json', JSON.stringify({ token }));
      }
      const prefix = url.pathname.startsWith('/meterline/') ? '/meterline/' : '/';
      const path = normalize(join(roots[prefix], url.pathname.slice(prefix.length) || 'index.html'));
      if (!path.startsWith(roots[prefix])) return send(res, 404, 'text/plain', 'not found');
      send(res, 200, TYPES[extname(path)] ?? 'application/octet-stream', await readFile(path));
    } catch {
      send(res, 404, 'text/plain', 'not found');
    }
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { Client } = await import('meterline');
  const backend = new Client({ apiKey: process.env.METERLINE_SECRET_KEY, endpoint: process.env.METERLINE_ENDPOINT });
  const page = await startExample({
    endpoint: process.env.METERLINE_ENDPOINT,
    publishableKey: process.env.METERLINE_PUBLISHABLE_KEY,
    mintToken: (subject) => backend.customerToken(subject, 3_600_000),
    bundle: join(here, '..', '..', 'bindings-wasm', 'dist', 'default'),
    port: Number(process.env.PORT ?? 8081),
  });
  console.log(`browser quick start on ${page.url}`);
}
