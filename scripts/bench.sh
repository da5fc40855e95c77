#!/usr/bin/env bash
# Benchmarks (never run by `make test`): criterion benches of the core, the server ingest
# bench, and — when the bindings are present — the peer comparisons. Figures and the
# commands that produced them are recorded by hand in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

step "core: track() per event (criterion)"
cargo bench --locked -p meterline-core --bench track
step "core: batch encode + compression (criterion)"
cargo bench --locked -p meterline-core --bench codec
step "server: durable ingest from a loopback load vs. the bare parse ceiling"
cargo build --locked --release -p meterline-server
cargo bench --locked -p meterline-server --bench ingest
step "server: admin change -> subscribed clients (1,000 stream connections + 20 core Clients)"
cargo bench --locked -p meterline-server --bench propagation
if [ -x scripts/bench-python.sh ]; then
  step "Python: meterline vs posthog vs segment"
  scripts/bench-python.sh
fi
if [ -f bench/node_peers.mjs ]; then
  step "Node: meterline vs posthog-node vs @segment/analytics-node"
  node bench/node_peers.mjs
fi
