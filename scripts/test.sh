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
# The durability test traces the server with strace; without it the test is reported skipped.
skip_durability=()
if ! why=$(ensure_strace); then
  echo "durability: 0 passed, 0 failed, 1 skipped ($why)" >>"$summary"
  skip_durability=(-- --skip every_202_leaves_after_a_sync_of_the_wal_that_holds_its_batch)
fi
cargo test --workspace --locked --no-fail-fast "${skip_durability[@]}" 2>&1 | tee target/test-logs/rust.txt || true
count_cargo target/test-logs/rust.txt rust >>"$summary"
# A build failure prints no "test result" line: count it as a failure.
# (cargo's own "error: test failed" / "error: N targets failed" lines are test failures, counted above.)
grep '^error' target/test-logs/rust.txt | grep -qvE '^error: (test failed|[0-9]+ targets? failed)' &&
  echo "rust-build: 0 passed, 1 failed" >>"$summary"

step "wasm32: the core's I/O-free half builds for the browser target"
if scripts/check-wasm.sh 2>&1 | tee target/test-logs/wasm.txt; then
  echo "wasm: 1 passed, 0 failed" >>"$summary"
else
  echo "wasm: 0 passed, 1 failed" >>"$summary"
fi

step "OpenAPI: the server's answers against /openapi.json (schemathesis)"
before=$(wc -l <"$summary")
if ! scripts/test-openapi.sh "$summary" && [ "$(wc -l <"$summary")" -eq "$before" ]; then
  echo "openapi: 0 passed, 1 failed" >>"$summary"
fi

# Each binding suite appends its own summary line; a suite that fails before it can count
# still shows up as a failure.
for lang in python node; do
  if [ -x "scripts/test-$lang.sh" ]; then
    step "bindings-$lang"
    before=$(wc -l <"$summary")
    if ! "scripts/test-$lang.sh" "$summary" && [ "$(wc -l <"$summary")" -eq "$before" ]; then
      echo "$lang: 0 passed, 1 failed" >>"$summary"
    fi
  fi
done

step "Summary"
cat "$summary"
total "$summary"
