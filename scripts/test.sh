#!/usr/bin/env bash
# Runs every test of the project: Rust unit/vector/integration tests (real server binary,
# real SQLite files), the wasm32 build of the core's I/O-free half, the OpenAPI check, each
# binding's suite, and every fuzz target built and run for a few seconds. Installs what it
# needs. Each suite prints its wall-clock minutes; the summary lists them with the total and
# ends with one line "tests: N passed, N failed, N skipped" (CI reads it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

mkdir -p target/test-logs
summary=target/test-logs/summary.txt
minutes=target/test-logs/minutes.txt
: >"$summary"
: >"$minutes"

# A suite that fails before it can append its own count still shows up as one failure.
run_suite() {
  local name=$1 before
  shift
  step "$name"
  suite_start "$name"
  before=$(wc -l <"$summary")
  if ! "$@" && [ "$(wc -l <"$summary")" -eq "$before" ]; then
    echo "$name: 0 passed, 1 failed" >>"$summary"
  fi
  suite_end
}

run_suite rust scripts/test-rust.sh "$summary"

wasm() { scripts/check-wasm.sh 2>&1 | tee target/test-logs/wasm.txt && echo "wasm: 1 passed, 0 failed" >>"$summary"; }
run_suite wasm wasm

run_suite openapi scripts/test-openapi.sh "$summary"

# The storage tests against a throwaway PostgreSQL cluster (installed from apt when missing).
run_suite postgres scripts/test-postgres.sh "$summary"

for lang in python node kotlin browser; do
  if [ -x "scripts/test-$lang.sh" ]; then
    run_suite "$lang" "scripts/test-$lang.sh" "$summary"
  fi
done

# Each bench's real output, from a small run, still parses (results.py --dry-run).
run_suite bench-output scripts/test-bench-output.sh "$summary"

# Instruction counts of the core's hot paths against bench/instructions.json (callgrind).
run_suite instructions scripts/bench-instructions.sh "$summary"

# Every fuzz target built and run FUZZ_SECONDS each; longer runs are `make fuzz`.
run_suite fuzz env FUZZ_SECONDS="${TEST_FUZZ_SECONDS:-5}" FUZZ_PROFILE=dev scripts/fuzz.sh "$summary"

step "Summary"
cat "$summary"
echo "minutes (wall clock):"
minutes_total "$minutes"
total "$summary"
