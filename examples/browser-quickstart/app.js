// The quick start's page: loads meterline-web, asks the backend for this user's customer
// token (GET /token), and tracks a `page.view` per click. `window.meterline` is what the
// browser tests drive.
import init, * as meterline from '/meterline/meterline.js';

const status = document.getElementById('status');
const count = document.getElementById('count');
const button = document.getElementById('view');

async function main() {
  await init();
  const config = await (await fetch('/config')).json();
  const { token } = await (await fetch(`/token?subject=${encodeURIComponent(config.subject)}`)).json();
  const errors = [];
  const client = new meterline.Client({
    apiKey: config.publishableKey,
    endpoint: config.endpoint,
    customerToken: token,
    source: location.origin,
    fetchSchemas: false,
    onError: (e) => errors.push(e),
  });
  let tracked = 0;
  button.addEventListener('click', () => {
    client.track('page.view', config.subject, { path: location.pathname });
    count.textContent = String(++tracked);
  });
  button.disabled = false;
  status.textContent = 'ready';
  window.meterline = { ...meterline, client, config, errors, token };
}

main().catch((e) => {
  status.textContent = `failed: ${e.message}`;
  window.meterlineFailed = e;
});
