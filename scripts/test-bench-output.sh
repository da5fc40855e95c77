#!/usr/bin/env bash
# Each bench whose output `make bench` parses (scripts/results.py) is run once in a small
# configuration and its real output parsed with `results.py --dry-run`, which writes nothing:
# a bench whose output no longer parses fails here, not at the next `make bench`. The server
# benches run in debug against target/debug/meterline-server; the Node and Python benches run
# when their bindings are built (`make test` builds them first) and are reported skipped
# otherwise. The Python peer comparison installs its pinned peers (posthog,
# segment-analytics-python) into the project venv on its first run (pip does nothing after)
# and runs 2,000 events per SDK against the debug server. Appends "bench-output: N passed,
# N failed, N skipped" to the file named by $1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
summary=${1:-/dev/null}
logs=target/test-logs/bench-output
mkdir -p "$logs"
passed=0 failed=0 skipped=0
parse() { python3 scripts/results.py --dry-run "$@"; }
# check NAME COMMAND...: runs the bench and its parser (a function), counts the outcome. (In
# an `if`, `set -e` does not stop a function: each step is chained with `&&`, and pipefail
# makes a bench that failed after printing its figures fail the pipe into `tee`.)
check() {
  local name=$1
  shift
  step "bench output: $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "bench output: $name FAILED (log: $logs/$name.txt)"
    failed=$((failed + 1))
  fi
}
skip() {
  echo "bench output: $1 skipped: $2"
  skipped=$((skipped + 1))
}

cargo build --locked -p meterline-server 2>&1 | tail -n 1
ingest() {
  BENCH_EVENTS=4000 BENCH_CONNECTIONS=2 BENCH_SUBJECTS=10 \
    cargo test --locked -p meterline-server --bench ingest 2>&1 | tee "$logs/ingest.txt" &&
    parse ingest "$logs/ingest.txt" server-ingest "ingest" "small run" "cargo bench --bench ingest"
}
check ingest ingest
propagation() {
  BENCH_RAW=20 BENCH_CLIENTS=2 BENCH_ROUNDS=2 BENCH_SINGLE=4 BENCH_SHARED=2 BENCH_SHARED_ROUNDS=2 \
    BENCH_FLOOR_ROUNDS=3 cargo test --locked -p meterline-server --bench propagation 2>&1 |
    tee "$logs/propagation.txt" &&
    parse propagation "$logs/propagation.txt" "cargo bench --bench propagation"
}
check propagation propagation
recovery() {
  BENCH_EVENTS=200 BENCH_RUNS=1 RECOVERY_OUTAGE_SECS=2 \
    cargo test --locked -p meterline-server --bench recovery 2>&1 | tee "$logs/recovery.txt" &&
    parse recovery "$logs/recovery.txt" "cargo bench --bench recovery"
}
check recovery recovery

if [ -f bindings-node/index.js ] && ls bindings-node/*.node >/dev/null 2>&1; then
  node_entitlement() {
    node bench/node_entitlement.mjs --calls 20000 --rounds 1 | tee "$logs/node-entitlement.txt" &&
      parse node-entitlement "$logs/node-entitlement.txt" "node bench/node_entitlement.mjs"
  }
  check node-entitlement node_entitlement
else
  skip node-entitlement "the Node addon is not built (scripts/test-node.sh builds it)"
fi
if [ -x bindings-python/.venv/bin/python ] && bindings-python/.venv/bin/python -c 'import meterline' 2>/dev/null; then
  python_entitlement() {
    bindings-python/.venv/bin/python bench/python_entitlement.py --calls 20000 |
      tee "$logs/python-entitlement.txt" &&
      parse python-entitlement "$logs/python-entitlement.txt" "bench/python_entitlement.py"
  }
  check python-entitlement python_entitlement
  python_peers() {
    bindings-python/.venv/bin/python bench/python_peers.py --events 2000 \
      --server "$(cargo_target_dir)/debug/meterline-server" --out "$logs/python_peers.json" |
      tee "$logs/python-peers.txt" &&
      parse python-peers "$logs/python_peers.json" "scripts/bench-python.sh"
  }
  check python-peers python_peers
else
  skip python-entitlement "meterline is not installed in bindings-python/.venv (scripts/test-python.sh installs it)"
  skip python-peers "meterline is not installed in bindings-python/.venv (scripts/test-python.sh installs it)"
fi

echo "bench-output: $passed passed, $failed failed, $skipped skipped" | tee -a "$summary"
[ "$failed" -eq 0 ]
