#!/usr/bin/env bash
# `make test-browser`: meterline-web (bindings-wasm). Installs what it needs (Debian's
# rustc-web and chromium, wasm-bindgen-cli, npm dev dependencies), builds both bundles
# (scripts/build-browser.sh), builds meterline-server, and runs `node --test`:
# - test/vectors.test.mjs: the pure vectors under Node (`wasm-bindgen --target nodejs`),
#   entitlements' primed answers included;
# - test/package.test.mjs: `npm pack` installed into a fresh project, both entry points;
# - test/browser.test.mjs, test/bad_input.test.mjs: headless Chromium (playwright-core with
#   executablePath, never a browser download) on examples/browser-quickstart/ against a real
#   meterline-server on 127.0.0.1;
# - test/persist.test.mjs, test/lifecycle.test.mjs: the IndexedDB outbox (reload, server
#   restart, tabs sharing it), offline/online and pagehide/hidden beacons, each test on a
#   server of its own that it stops and starts again;
# - test/stream.test.mjs, test/identity.test.mjs: the realtime stream (admin changes, a
#   server restart), the token provider and identify()/reset(), in Chromium;
# - test/stream_hostile.test.mjs: garbage from a stream endpoint never thrown into the page;
# - test/vectors_page.test.mjs: the events/options/errors/entitlements vectors in Chromium,
#   both builds;
# - test/device.test.mjs: `persist: false` keeps nothing in IndexedDB; an IndexedDB closed
#   under the page loses no event uncounted;
# - test/schema_stream.test.mjs: `schema.updated` over the stream refreshes the full build's
#   schemas at once;
# - test/vite.test.mjs: the packed package in a fresh project, the quick start built with Vite
#   and loaded under a strict Content-Security-Policy.
# Prints and appends "browser: N passed, N failed, N skipped" to the file named by $1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

summary=${1:-/dev/null}
mkdir -p target/test-logs
log=target/test-logs/browser.txt
: >"$log"
started=$SECONDS

record_failure() {
  echo "browser: 0 passed, 1 failed, 0 skipped" >>"$summary"
  echo "$1" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || record_failure "node is required (Node.js >= 20)"

step "browser: toolchain (rustc-web, wasm-bindgen-cli, npm, chromium)"
scripts/install-browser-toolchain.sh || record_failure "the browser toolchain did not install"

step "browser: make browser (both bundles)"
scripts/build-browser.sh || record_failure "the bundles did not build"

step "browser: building meterline-server"
cargo build -p meterline-server --locked 2>&1 | tail -n 2
[ -x "$(cargo_target_dir)/debug/meterline-server" ] || record_failure "meterline-server did not build"

step "browser: node --test"
set +e
(cd bindings-wasm && node --test --test-concurrency=1 --test-reporter=tap test/*.test.mjs) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

counts=$(awk '/^# pass / { p = $3 } /^# fail / { f = $3 } /^# cancelled / { c = $3 } /^# skipped / { s = $3 }
  END { if (p == "" && f == "") exit 1; printf "browser: %d passed, %d failed, %d skipped\n", p, f + c, s }' "$log") ||
  record_failure "node --test printed no result (exit $status)"
echo "$counts" >>"$summary"
echo "$counts"
echo "browser: $((SECONDS - started)) s wall clock"
if [ "$status" -ne 0 ] || ! grep -q '^# fail 0$' "$log" || grep -qE '^# cancelled [1-9]' "$log"; then
  exit 1
fi
