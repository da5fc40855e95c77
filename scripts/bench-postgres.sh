#!/usr/bin/env bash
# The server's durable ingest on PostgreSQL (`make bench-postgres`, also part of `make bench`):
# the ingest bench (server-ref/benches/ingest.rs: 200,000 events of ~309 bytes, gzip batches of
# 500, 8 connections, no metering) on SQLite with one node, then on a throwaway PostgreSQL
# cluster (scripts/pg-cluster.sh; synchronous_commit on) with one node and with two nodes
# (the 8 connections split between the nodes, no load balancer), in this order, in one run.
# The metered run (BENCH_METERED=features) follows on each backend that has the catalog.
# Then the propagation bench (server-ref/benches/propagation.rs, BENCH_CHANGE=schema): a
# change made through node A seen by 1,000 stream connections on node B, beside one node on
# PostgreSQL, one on SQLite, and the kernel floor.
# Each run's CPU seconds (server nodes, load generator, PostgreSQL's processes) and
# PostgreSQL's five most expensive statements (pg_stat_statements) go to the log, and the
# figures to bench/results/server-ingest-postgres-*.json (scripts/results.py, with the load).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
source scripts/pg-cluster.sh
logs=target/bench-logs
mkdir -p "$logs"
results() { python3 scripts/results.py "$@"; }
# The events/s the ingest bench printed in LOG.
durable() { sed -n 's/^durable ingest *: *\([0-9.]*\) events\/s.*/\1/p' "$1"; }
# The ingest bench's CPU line in LOG.
cpu_line() { sed -n 's/^cpu *: *//p' "$1"; }

step "PostgreSQL bench: a throwaway cluster with pg_stat_statements"
PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
pg_cluster_start /dev/null bench-postgres
psql_() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG_URL" "$@"; }
psql_ -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
# User + system CPU seconds of PostgreSQL so far: the postmaster, its live children, and the
# children it has reaped (cutime/cstime), from /proc (100 ticks a second).
pg_cpu() {
  local pm
  pm=$(head -n 1 "$PG_DIR/data/postmaster.pid")
  { sed 's/.*) //' "/proc/$pm/stat" | awk '{ print $12 + $13 + $14 + $15 }'
    for c in $(ps --ppid "$pm" -o pid=); do
      sed 's/.*) //' "/proc/$c/stat" 2>/dev/null | awk '{ print $12 + $13 }'
    done; } | awk '{ s += $1 } END { printf "%.1f", s / 100 }'
}
# Runs the ingest bench with the environment given (VAR=value …), logging to $logs/NAME.txt;
# on PostgreSQL also PostgreSQL's CPU and its top statements. Fails if the bench did.
ingest() {
  local name=$1 before
  shift
  psql_ -c "SELECT pg_stat_statements_reset()" >/dev/null
  before=$(pg_cpu)
  env "$@" cargo bench --locked -p meterline-server --bench ingest 2>&1 | tee "$logs/$name.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  [[ " $* " == *" BENCH_DATABASE_URL="* ]] || return 0
  echo "cpu PostgreSQL : $(awk -v a="$before" -v b="$(pg_cpu)" 'BEGIN { printf "%.1f", b - a }') s" | tee -a "$logs/$name.txt"
  psql_ -c "SELECT calls, round(total_exec_time) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
      left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS query
    FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 5" | tee -a "$logs/$name.txt"
}

cmd="cargo bench --locked -p meterline-server --bench ingest"
workload="200,000 events (~309 bytes), gzip batches of 500, 8 connections, 1,000 subjects, no metering"
step "ingest: SQLite, one node"
ingest sqlite-1
step "ingest: PostgreSQL, one node"
ingest postgres-1 BENCH_DATABASE_URL="$PG_URL"
step "ingest: PostgreSQL, two nodes (connections split between them)"
ingest postgres-2 BENCH_DATABASE_URL="$PG_URL" BENCH_NODES=2
sqlite=$(durable "$logs/sqlite-1.txt")
one=$(durable "$logs/postgres-1.txt")
two=$(durable "$logs/postgres-2.txt")
pgv=$("$PG_BIN/postgres" --version | awk '{print $3}')
where="PostgreSQL $pgv, a throwaway cluster on this machine's disk (scripts/pg-cluster.sh), \`synchronous_commit = on\`, \`fsync = on\`"
results record server-ingest-postgres-1-node --number --value "$one" --unit events/s \
  --target "≥ 50,000 events/s" --met "$(awk -v v="$one" 'BEGIN { print (v >= 50000 ? "yes" : "no") }')" \
  --metric "durable ingest on PostgreSQL, one node" \
  --ratio "$(awk -v a="$one" -v b="$sqlite" 'BEGIN { printf "%.2f", a / b }')× SQLite on one node in the same run ($(printf '%.0f' "$sqlite") events/s)" \
  --conditions "$workload; $where; CPU: $(cpu_line "$logs/postgres-1.txt"), PostgreSQL $(sed -n 's/^cpu PostgreSQL : //p' "$logs/postgres-1.txt")" \
  --command "scripts/bench-postgres.sh (BENCH_DATABASE_URL=… $cmd)"
results record server-ingest-postgres-2-nodes --number --value "$two" --unit events/s \
  --target "≥ 0.8× one node" --met "$(awk -v a="$two" -v b="$one" 'BEGIN { print (a >= 0.8 * b ? "yes" : "no") }')" \
  --metric "durable ingest on PostgreSQL, two nodes (connections split between them, no balancer)" \
  --ratio "$(awk -v a="$two" -v b="$one" 'BEGIN { printf "%.2f", a / b }')× one node in the same run" \
  --conditions "$workload, connection i to node i mod 2; $where; both nodes, PostgreSQL and the load on the same 2 cores; CPU: $(cpu_line "$logs/postgres-2.txt"), PostgreSQL $(sed -n 's/^cpu PostgreSQL : //p' "$logs/postgres-2.txt")" \
  --command "scripts/bench-postgres.sh (BENCH_DATABASE_URL=… BENCH_NODES=2 $cmd)"
results record server-ingest-postgres-sqlite-1-node --number --value "$sqlite" --unit events/s \
  --metric "durable ingest on SQLite, one node, in the PostgreSQL bench's run" \
  --conditions "$workload; \`synchronous = full\`, the SQLite file under target/ on this machine's disk" \
  --command "scripts/bench-postgres.sh ($cmd)"

step "ingest, metered (BENCH_METERED=features)"
ingest sqlite-1-metered BENCH_METERED=features
if ingest postgres-1-metered BENCH_DATABASE_URL="$PG_URL" BENCH_METERED=features; then
  m=$(durable "$logs/postgres-1-metered.txt")
  results record server-ingest-postgres-1-node-metered --number --value "$m" --unit events/s \
    --metric "durable ingest with usage counting on PostgreSQL, one node (\`BENCH_METERED=features\`)" \
    --ratio "SQLite metered in the same run: $(printf '%.0f' "$(durable "$logs/sqlite-1-metered.txt")") events/s" \
    --conditions "$workload but count + sum features on the ingested type; $where" \
    --command "scripts/bench-postgres.sh (BENCH_DATABASE_URL=… BENCH_METERED=features $cmd)"
else
  echo "metered ingest on PostgreSQL: not measured (the server refused the bench's [catalog]; see above)"
  results record server-ingest-postgres-sqlite-1-node-metered --number \
    --value "$(durable "$logs/sqlite-1-metered.txt")" --unit events/s \
    --metric "durable ingest with usage counting on SQLite, one node, in the PostgreSQL bench's run" \
    --conditions "$workload but count + sum features on the ingested type; \`synchronous = full\`" \
    --note "not measured on PostgreSQL: the entitlement catalog (metered features) is not on PostgreSQL yet" \
    --command "scripts/bench-postgres.sh (BENCH_METERED=features $cmd)"
fi

# "P50 / P99" of the first report line starting with LABEL in LOG.
p50_p99() { grep -m 1 "^ *$2" "$1" | sed -n 's/.*p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms.*/\1 \/ \2/p'; }
step "propagation: a schema change to 1,000 stream connections (SQLite; PostgreSQL one node; two nodes)"
pcmd="cargo bench --locked -p meterline-server --bench propagation"
penv=(BENCH_CHANGE=schema BENCH_RAW=1000 BENCH_ROUNDS=30)
env "${penv[@]}" $pcmd 2>&1 | tee "$logs/propagation-sqlite-1.txt"
env "${penv[@]}" BENCH_DATABASE_URL="$PG_URL" $pcmd 2>&1 | tee "$logs/propagation-postgres-1.txt"
env "${penv[@]}" BENCH_DATABASE_URL="$PG_URL" BENCH_NODES=2 $pcmd 2>&1 | tee "$logs/propagation-postgres-2.txt"
two=$(p50_p99 "$logs/propagation-postgres-2.txt" "schema change")
one=$(p50_p99 "$logs/propagation-postgres-1.txt" "schema change")
lite=$(p50_p99 "$logs/propagation-sqlite-1.txt" "schema change")
floor=$(p50_p99 "$logs/propagation-postgres-2.txt" "Kernel floor")
results record server-propagation-postgres-2-nodes --value "$two ms" \
  --metric "propagation of a change made through node A to 1,000 stream connections on node B, PostgreSQL (p50 / p99)" \
  --ratio "one node on PostgreSQL $one ms; SQLite one node $lite ms; kernel floor $floor ms (same run)" \
  --conditions "a schema \`PUT\` through node A, its \`schema.updated\` frame timed at each of 1,000 raw stream connections on node B (stream log, NOTIFY, B's follower); 30 rounds; $where" \
  --note "a schema change, not the entitlement change of server-propagation-fanout: the catalog is not on PostgreSQL yet" \
  --command "scripts/bench-postgres.sh (${penv[*]} BENCH_DATABASE_URL=… BENCH_NODES=2 $pcmd)"

step "bench/RESULTS.md"
results render
