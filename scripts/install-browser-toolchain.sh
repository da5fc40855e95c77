#!/usr/bin/env bash
# Everything `make browser` and `make test-browser` need, installed by this script on a bare
# machine (see shared/TOOLCHAIN.md, "Browser (wasm-bindgen)"); each step does nothing when
# its tool is present:
# - Debian's rustc-web + wasm-ld (scripts/install-wasm-toolchain.sh);
# - wasm-bindgen-cli, pinned to the crate's wasm-bindgen version, into target/tools;
# - npm packages of bindings-wasm (binaryen's wasm-opt, playwright-core, vite) with `npm ci`;
# - Debian's chromium for the browser tests (unless BROWSER_TOOLCHAIN_NO_CHROMIUM=1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

WASM_BINDGEN_VERSION=0.2.130
tools=$PWD/target/tools

scripts/install-wasm-toolchain.sh

if [[ $("$tools/bin/wasm-bindgen" --version 2>/dev/null) != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
  echo "install-browser-toolchain: cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes)"
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --root "$tools" --quiet
fi
echo "install-browser-toolchain: $("$tools/bin/wasm-bindgen" --version)"

if [[ ! -x bindings-wasm/node_modules/.bin/wasm-opt || ! -d bindings-wasm/node_modules/playwright-core ||
  ! -x bindings-wasm/node_modules/.bin/vite ]]; then
  echo "install-browser-toolchain: npm ci in bindings-wasm"
  (cd bindings-wasm && npm ci --no-audit --no-fund --loglevel=error)
fi

if [[ ${BROWSER_TOOLCHAIN_NO_CHROMIUM:-0} != 1 ]] && ! command -v chromium >/dev/null 2>&1; then
  echo "install-browser-toolchain: apt-get install -y chromium"
  export DEBIAN_FRONTEND=noninteractive
  flock /tmp/apt.lock bash -c 'apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }'
fi
command -v chromium >/dev/null 2>&1 && echo "install-browser-toolchain: $(chromium --version 2>/dev/null | head -1)"
exit 0
