#!/usr/bin/env bash
# The fault run at full size: FAULT_EVENTS (default 1,000,000) events from the SDK through the
# fault proxy (latency, resets mid-request and mid-response, stalls, bandwidth cap, 503/429
# storms, connection cuts, kill -9 + restart) into the real server, in release mode, with the
# faults active until every event is delivered; prints the summary table
# (server-ref/tests/it/sdk_delivery/faults.rs) and records it in
# bench/results/server-fault-run.json. `make test` runs the same test with 50,000 events in
# debug mode. Then the outage memory test (server-ref/tests/it/outage_memory.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
export FAULT_EVENTS=${FAULT_EVENTS:-1000000}
summary=target/bench-logs/fault-run.json
mkdir -p target/bench-logs
rm -f "$summary"
step "Fault run: $FAULT_EVENTS events (release)"
load_before=$(awk '{ print $1 }' /proc/loadavg)
FAULT_SUMMARY=$PWD/$summary cargo test --release --locked -p meterline-server --test it sdk_delivery::faults:: -- --nocapture --test-threads 1
python3 scripts/results.py faults "$summary" \
  "FAULT_EVENTS=$FAULT_EVENTS make faults" \
  "SDK → TCP fault proxy → release server on SQLite (this machine's disk), 5 subscribers following catalog changes over the stream; load $load_before at the start"
step "Memory while the server is down under constant load (release)"
cargo test --release --locked -p meterline-server --test it outage_memory:: -- --nocapture 2>&1 |
  tee target/bench-logs/outage-memory.txt
python3 scripts/results.py outage target/bench-logs/outage-memory.txt "make faults"
python3 scripts/results.py render
