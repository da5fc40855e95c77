#!/usr/bin/env bash
# Benchmarks (never run by `make test`): criterion benches of the core, the server ingest and
# propagation benches, the instruction counts, and — when the bindings are present — the peer
# comparisons. Each writes its figures to bench/results/<id>.json (scripts/results.py, with
# the command, date, commit and load), and bench/RESULTS.md is rendered from them at the end.
# The load recorded is the 1-minute load average just before each bench started
# (RESULTS_LOAD): what else the machine was doing, not the bench's own work.
# BENCH_ONLY="core server postgres instructions python node kotlin" picks some of them
# (postgres: scripts/bench-postgres.sh, ingest on a throwaway PostgreSQL cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

only=${BENCH_ONLY:-core server postgres instructions python node kotlin}
wants() { [[ " $only " == *" $1 "* ]]; }
logs=target/bench-logs
mkdir -p "$logs"
results() { python3 scripts/results.py "$@"; }
# A bench's heading; the load at its start goes into the result files it records.
bench_step() {
  step "$@"
  RESULTS_LOAD=$(awk '{ print $1 }' /proc/loadavg)
  export RESULTS_LOAD
}
# The time criterion printed for bench GROUP/FUNCTION in ns, and a list of them as "min–max ns".
ns() { results criterion "$1"; }
span() {
  local v lo= hi=
  for name in "$@"; do
    v=$(ns "$name")
    lo=$(awk -v a="${lo:-$v}" -v b="$v" 'BEGIN { print (b < a ? b : a) }')
    hi=$(awk -v a="${hi:-$v}" -v b="$v" 'BEGIN { print (b > a ? b : a) }')
  done
  awk -v a="$lo" -v b="$hi" 'BEGIN { printf "%.0f–%.0f ns", a, b }'
}

if wants core; then
  cmd="cargo bench --locked -p meterline-core --bench track -- --warm-up-time 1 --measurement-time 3"
  bench_step "core: track() per event (criterion)"
  $cmd
  track=$(ns "track/5-field event, schema-validated")
  results record core-track --number --value "$track" --unit ns --target "≤ 1 µs" \
    --met "$(awk -v v="$track" 'BEGIN { print (v <= 1000 ? "yes" : "no") }')" \
    --metric "\`track()\` per call, 5-field event, schema-validated (id and time generated)" \
    --ratio "building the caller's 5-field Value alone: $(printf '%.0f' "$(ns "track/baseline: building the 5-field data value")") ns" \
    --conditions "criterion steady state: queue full (100,000, \`drop_oldest\`); the figure includes building the caller's 5-field \`serde_json::Value\`" \
    --command "$cmd"
  results record core-track-json-no-schema --number --unit ns \
    --value "$(ns "track/5-field event as JSON text (track_json), type without a schema")" \
    --metric "\`track_json()\` per call, 5-field JSON text, event type without a schema (the Node path)" \
    --conditions "criterion steady state: queue full (100,000, \`drop_oldest\`)" --command "$cmd"
  results record core-track-spool --number --unit ns \
    --value "$(ns "track_spool/5-field event, spool_fsync=interval")" \
    --metric "\`track()\` per call with the disk spool, \`spool_fsync = interval\` (default)" \
    --ratio "\`never\` $(printf '%.0f' "$(ns "track_spool/5-field event, spool_fsync=never")") ns, \`always\` $(printf '%.0f' "$(ns "track_spool/5-field event, spool_fsync=always")") ns" \
    --conditions "spool directory under target/ on this machine's disk; queue full at 100,000 with \`drop_oldest\` (each call also deletes the evicted event)" \
    --command "$cmd"

  cmd="cargo bench --locked -p meterline-core --bench codec -- --warm-up-time 1 --measurement-time 3"
  bench_step "core: batch encode + compression (criterion)"
  $cmd
  results record core-codec-gzip --number --unit ns --value "$(ns "batch_500/encode+gzip")" \
    --metric "batch encode + gzip, 500 events of 5 data fields, per batch" \
    --ratio "zstd: $(printf '%.0f' "$(ns "batch_500/encode+zstd")") ns; plain encode $(printf '%.0f' "$(ns "batch_500/encode")") ns" \
    --conditions "gzip level 6 (miniz_oxide), zstd level 3" --command "$cmd"

  cmd="cargo bench --locked -p meterline-core --bench entitlement -- --warm-up-time 1 --measurement-time 3"
  bench_step "core: entitlement() cache hit (criterion)"
  $cmd
  hot=$(span "entitlement hit/Client::entitlement, one hot subject, sso" \
    "entitlement hit/Client::entitlement, one hot subject, api_calls" \
    "entitlement hit/Client::entitlement, one hot subject, tier")
  hi=$(echo "$hot" | sed 's/.*–\([0-9]*\) ns/\1/')
  results record core-entitlement-hit-one-subject --value "$hot" --target "≤ 100 ns" \
    --met "$([ "$hi" -le 100 ] && echo yes || echo no)" \
    --metric "\`Client::entitlement()\` cache hit, one hot subject" \
    --conditions "primed client, no server; boolean / metered / config features (the range over the three)" \
    --command "$cmd"
  results record core-entitlement-hit-10k-subjects \
    --value "$(span "entitlement hit/Client::entitlement, 10k subjects in turn, sso" \
      "entitlement hit/Client::entitlement, 10k subjects in turn, api_calls" \
      "entitlement hit/Client::entitlement, 10k subjects in turn, tier")" \
    --metric "\`Client::entitlement()\` cache hit, 10,000 subjects in turn" \
    --conditions "primed client with 10,000 cached subjects, each looked up in turn (CPU cache misses dominate); boolean / metered / config features" \
    --command "$cmd"
fi

if wants server; then
  cargo build --locked --release -p meterline-server
  cmd="cargo bench --locked -p meterline-server --bench ingest"
  bench_step "server: durable ingest from a loopback load vs. the bare parse ceiling"
  $cmd 2>&1 | tee "$logs/ingest.txt"
  results ingest "$logs/ingest.txt" server-ingest "durable ingest into SQLite from a loopback load" \
    "\`synchronous = full\`, 200,000 events, gzip batches of 500, 8 connections, 1,000 subjects; the SQLite file under target/ on this machine's disk" "$cmd"
  bench_step "server: durable ingest with usage counting (BENCH_METERED=features)"
  BENCH_METERED=features $cmd 2>&1 | tee "$logs/ingest-metered.txt"
  results ingest "$logs/ingest-metered.txt" server-ingest-metered \
    "durable ingest with usage counting (\`BENCH_METERED=features\`)" \
    "\`synchronous = full\`, 200,000 events, 8 connections, 1,000 subjects, SQLite under target/ on this machine's disk; count + sum features on the ingested type" "BENCH_METERED=features $cmd"

  cmd="cargo bench --locked -p meterline-server --bench propagation"
  bench_step "server: admin change -> subscribed clients (1,000 stream connections + 20 core Clients)"
  BENCH_SINGLE=20 $cmd 2>&1 | tee "$logs/propagation.txt"
  results propagation "$logs/propagation.txt" "BENCH_SINGLE=20 $cmd"

  cmd="cargo bench --locked -p meterline-server --bench recovery"
  bench_step "server: recovery after an outage (kill -9, 2,000 events queued, restart on the port)"
  $cmd 2>&1 | tee "$logs/recovery.txt"
  results recovery "$logs/recovery.txt" "$cmd"
fi

if wants postgres; then
  env -u RESULTS_LOAD scripts/bench-postgres.sh
fi

if wants instructions; then
  bench_step "core: instruction counts (callgrind)"
  RESULTS_RECORD=1 scripts/bench-instructions.sh || echo "instruction counts over the baseline: recorded as not met"
fi

if wants python && [ -x scripts/bench-python.sh ]; then
  bench_step "Python: meterline vs posthog vs segment"
  scripts/bench-python.sh
  results python-peers bench/out/python_peers.json scripts/bench-python.sh
  cmd="bindings-python/.venv/bin/python bench/python_entitlement.py --calls 200000"
  bench_step "Python: entitlement cache hit"
  $cmd | tee "$logs/python-entitlement.txt"
  results python-entitlement "$logs/python-entitlement.txt" "$cmd"
fi
if wants node && [ -f bench/node_peers.mjs ]; then
  bench_step "Node: meterline vs posthog-node vs @segment/analytics-node"
  node bench/node_peers.mjs --rounds 3
  results node-peers bench/out/node_peers.json "node bench/node_peers.mjs --rounds 3"
  cmd="node --max-old-space-size=8192 bench/node_percall_idle.mjs --rounds 3 --events 100000"
  bench_step "Node: per call with the delivery pipeline idle"
  $cmd | tee "$logs/node-idle.txt"
  results node-idle "$logs/node-idle.txt" "$cmd"
  cmd="node bench/node_entitlement.mjs --calls 200000 --rounds 5"
  bench_step "Node: entitlement cache hit"
  $cmd | tee "$logs/node-entitlement.txt"
  results node-entitlement "$logs/node-entitlement.txt" "$cmd"
fi
if wants kotlin && [ -x scripts/bench-kotlin.sh ]; then
  bench_step "Kotlin: track() per call beside its floors, posthog-java and Segment analytics-java"
  env -u RESULTS_LOAD scripts/bench-kotlin.sh
fi

step "bench/RESULTS.md"
results render
