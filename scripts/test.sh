#!/usr/bin/env bash
# Runs every test of the project: Rust unit/vector/integration tests (real server binary,
# real SQLite files), the wasm32 build of the core's I/O-free half, and each binding's
# suite. Installs what it needs. Ends with one line "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

mkdir -p target/test-logs
summary=target/test-logs/summary.txt
: >"$summary"

step "Rust: unit, conformance-vector and integration tests"
ensure_rust
# The server binary is built first so the integration tests find it ready.
cargo build -p meterline-server --locked 2>&1 | tail -n 3
cargo test --workspace --locked 2>&1 | tee target/test-logs/rust.txt
count_cargo target/test-logs/rust.txt rust >>"$summary"

step "wasm32: the core's I/O-free half builds for the browser target"
if scripts/check-wasm.sh 2>&1 | tee target/test-logs/wasm.txt; then
  echo "wasm: 1 passed, 0 failed" >>"$summary"
else
  echo "wasm: 0 passed, 1 failed" >>"$summary"
fi

for suite in bindings-python bindings-node; do
  if [ -x "scripts/test-${suite#bindings-}.sh" ]; then
    step "$suite"
    "scripts/test-${suite#bindings-}.sh" "$summary"
  fi
done

step "Summary"
cat "$summary"
total "$summary"
