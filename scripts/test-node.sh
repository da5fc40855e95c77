#!/usr/bin/env bash
# The Node binding (bindings-node, npm package `meterline`): installs its dev dependencies
# from package-lock.json, builds the napi-rs addon (release), builds meterline-server, and
# runs `node --test` — the client against the real server, the shared conformance vectors,
# bad input, process lifecycle and worker_threads, and the package check (`npm pack` into a
# fresh directory, the README quick start there, `tsc --noEmit` on TypeScript examples).
# Appends "node: N passed, N failed, N skipped" to the file named by $1; fails if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

summary=${1:-/dev/null}
mkdir -p target/test-logs
log=target/test-logs/node.txt
: >"$log"

record_failure() {
  echo "node: 0 passed, 1 failed, 0 skipped" >>"$summary"
  echo "$1" >&2
  exit 1
}

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || record_failure "node and npm are required (Node.js >= 20.4)"

step "Node: npm ci in bindings-node"
(cd bindings-node && npm ci --no-audit --no-fund) || record_failure "npm ci failed"

step "Node: building the addon (napi build --release)"
(cd bindings-node && npx napi build --platform --release --strip --js native.js --dts native.d.ts) ||
  record_failure "the addon did not build"

step "Node: building meterline-server"
cargo build -p meterline-server --locked 2>&1 | tail -n 2
[ -x "$(cargo_target_dir)/debug/meterline-server" ] || record_failure "meterline-server did not build"

step "Node: node --test"
set +e
(cd bindings-node && node --test --test-concurrency=1 --test-reporter=tap test/*.test.mjs) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# node --test closes with "# pass N", "# fail N", "# cancelled N", "# skipped N". A cancelled
# test (timed out, or still pending when the event loop emptied) did not pass: it counts as
# failed.
counts=$(awk '/^# pass / { p = $3 } /^# fail / { f = $3 } /^# cancelled / { c = $3 } /^# skipped / { s = $3 }
  END { if (p == "" && f == "") exit 1; printf "node: %d passed, %d failed, %d skipped\n", p, f + c, s }' "$log") ||
  record_failure "node --test printed no result (exit $status)"
echo "$counts" >>"$summary"
echo "$counts"
if [ "$status" -ne 0 ] || ! grep -q '^# fail 0$' "$log" || grep -qE '^# cancelled [1-9]' "$log"; then
  exit 1
fi
