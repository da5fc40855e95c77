#!/usr/bin/env bash
# The fault run at full size: FAULT_EVENTS (default 1,000,000) events from the SDK through the
# fault proxy (latency, resets mid-request and mid-response, stalls, bandwidth cap, 503/429
# storms, connection cuts, kill -9 + restart) into the real server, in release mode; prints
# the summary table (server-ref/tests/it/sdk_delivery/faults.rs). `make test` runs the same
# test with 50,000 events in debug mode. Then the outage memory test
# (server-ref/tests/it/outage_memory.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
export FAULT_EVENTS=${FAULT_EVENTS:-1000000}
step "Fault run: $FAULT_EVENTS events (release)"
cargo test --release --locked -p meterline-server --test it sdk_delivery::faults:: -- --nocapture --test-threads 1
step "Memory while the server is down under constant load (release)"
cargo test --release --locked -p meterline-server --test it outage_memory:: -- --nocapture
