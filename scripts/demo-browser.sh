#!/usr/bin/env bash
# The browser quick start in one command: builds meterline-web (scripts/build-browser.sh),
# the Node package's addon (the page's backend mints customer tokens with it) and
# meterline-server; starts the server on embedded SQLite with examples/quickstart.toml, and
# runs examples/browser-quickstart/demo.mjs, which makes a publishable key, allows the page's
# origin and serves the page with its token route. Without a display (or with --headless) it
# drives the page once in headless Chromium and prints what was stored and the entitlement
# read; with one it prints the URL and serves until Ctrl-C. `make demo` stays the lean start.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

headless=
if [ "${1:-}" = "--headless" ] || [ -z "${DISPLAY:-}" ]; then headless=--headless; fi

step "meterline-web: toolchain and bundles"
scripts/install-browser-toolchain.sh >/dev/null
scripts/build-browser.sh 2>&1 | grep -E '^meterline-web ' || true
[ -f bindings-wasm/dist/default/meterline_wasm_bg.wasm ] || { echo "meterline-web did not build" >&2; exit 1; }

if ! ls bindings-node/*.node >/dev/null 2>&1; then
  step "the Node package's addon (napi build --release)"
  (cd bindings-node && npm ci --no-audit --no-fund >/dev/null &&
    npx napi build --platform --release --strip --js native.js --dts native.d.ts 2>&1 | tail -n 1)
fi

step "Starting meterline-server (embedded SQLite, examples/quickstart.toml)"
cargo build --locked -p meterline-server 2>&1 | tail -n 1
demo_dir=target/demo-browser
rm -rf "$demo_dir" && mkdir -p "$demo_dir"
log="$demo_dir/server.log"
: >"$log"
"$(cargo_target_dir)/debug/meterline-server" serve --bind 127.0.0.1:0 \
  --database-url "sqlite://$demo_dir/meterline.db" --config examples/quickstart.toml >"$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q '^meterline-server listening on ' "$log" && grep -q '^admin key: ' "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log"; echo "the server exited early" >&2; exit 1; }
  sleep 0.1
done
endpoint=$(sed -n 's/^meterline-server listening on //p' "$log" | head -n 1)
secret=$(sed -n 's/^secret key: //p' "$log" | head -n 1)
admin=$(sed -n 's/^admin key: //p' "$log" | head -n 1)
[ -n "$endpoint" ] && [ -n "$secret" ] && [ -n "$admin" ] ||
  { cat "$log"; echo "could not read the endpoint and keys" >&2; exit 1; }

step "examples/browser-quickstart (page + token route)"
METERLINE_ENDPOINT="$endpoint" METERLINE_SECRET_KEY="$secret" METERLINE_ADMIN_KEY="$admin" \
  node examples/browser-quickstart/demo.mjs $headless
