#!/usr/bin/env bash
# Formatting of the Node binding's JavaScript and TypeScript, the Node quick start and the
# Node benchmark, and meterline-web's (bindings-wasm, the browser quick start): prettier
# --check with bindings-node/.prettierrc.json. `--write` as $1 fixes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

mode=--check
[ "${1:-}" = "--write" ] && mode=--write
if [ ! -x bindings-node/node_modules/.bin/prettier ]; then
  (cd bindings-node && npm ci --no-audit --no-fund)
fi
bindings-node/node_modules/.bin/prettier "$mode" \
  --config bindings-node/.prettierrc.json --ignore-path bindings-node/.prettierignore \
  'bindings-node/*.{js,mjs,d.ts,d.mts}' 'bindings-node/lib/*.js' 'bindings-node/test/**/*.{mjs,cjs,mts,cts,json}' \
  'bindings-wasm/js/*.js' 'bindings-wasm/scripts/*.mjs' 'bindings-wasm/test/*.mjs' 'bindings-wasm/*.d.ts' 'examples/browser-quickstart/*.{js,mjs}' \
  'examples/node-quickstart/*.{mjs,json}' 'bench/node_peers.mjs' 'bench/node_entitlement.mjs' 'bench/before_after.mjs' 'bench/node_percall_idle.mjs' 'bench/browser_percall.mjs'
