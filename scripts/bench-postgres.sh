#!/usr/bin/env bash
# The server's durable ingest on PostgreSQL (`make bench-postgres`, also part of `make bench`):
# the ingest bench (server-ref/benches/ingest.rs: 200,000 events of ~309 bytes, gzip batches of
# 500, 8 connections, no metering) on SQLite with one node, then on a throwaway PostgreSQL
# cluster (scripts/pg-cluster.sh; synchronous_commit on) with one node and with two nodes
# (the 8 connections split between the nodes, no load balancer), in this order, in one run.
# The metered runs follow in the same order (BENCH_METERED=customers: count + sum features
# and 1,000 customers on a plan with a limit, so each commit counts usage and checks
# thresholds; on PostgreSQL under the per-subject advisory locks of DR-112).
# Then the propagation bench (server-ref/benches/propagation.rs, the shared override alone):
# an entitlement change made through node A seen by 1,000 stream connections on node B,
# beside one node on PostgreSQL, one on SQLite, and the kernel floor.
# Each run's CPU seconds (server nodes, load generator, PostgreSQL's processes) and
# PostgreSQL's five most expensive statements (pg_stat_statements) go to the log, and the
# figures to bench/results/server-ingest-postgres-*.json and
# server-propagation-postgres-2-nodes.json (scripts/results.py, with the load).
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
  # The same, three on one line for the result file.
  psql_ -At -c "SELECT 'top statements: ' || string_agg(format('%s ms in %s calls: %s', round(total_exec_time),
      calls, left(regexp_replace(query, '\s+', ' ', 'g'), 60)), '; ' ORDER BY total_exec_time DESC)
    FROM (SELECT * FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 3) t" | tee -a "$logs/$name.txt"
}
# The CPU of the run logged in LOG, PostgreSQL's included when it was measured.
cpu_all() {
  local pg
  pg=$(sed -n 's/^cpu PostgreSQL : //p' "$1")
  echo "CPU: $(cpu_line "$1")${pg:+, PostgreSQL $pg}"
}
# PostgreSQL's three most expensive statements of the run logged in LOG.
top_statements() { sed -n 's/^top statements: //p' "$1"; }

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
# The machine is shared: other builds and tests run on the same 2 cores during the run.
shared="the 2 cores shared with other builds running at the same time (1-minute load in the load column)"
where="PostgreSQL $pgv, a throwaway cluster on this machine's disk (scripts/pg-cluster.sh), \`synchronous_commit = on\`, \`fsync = on\`; $shared"
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
  --conditions "$workload; \`synchronous = full\`, the SQLite file under target/ on this machine's disk; $shared; CPU: $(cpu_line "$logs/sqlite-1.txt")" \
  --command "scripts/bench-postgres.sh ($cmd)"

step "ingest, metered (BENCH_METERED=customers): SQLite, PostgreSQL one node, two nodes"
ingest sqlite-1-metered BENCH_METERED=customers
ingest postgres-1-metered BENCH_DATABASE_URL="$PG_URL" BENCH_METERED=customers
ingest postgres-2-metered BENCH_DATABASE_URL="$PG_URL" BENCH_NODES=2 BENCH_METERED=customers
mlite=$(durable "$logs/sqlite-1-metered.txt")
mone=$(durable "$logs/postgres-1-metered.txt")
mtwo=$(durable "$logs/postgres-2-metered.txt")
mworkload="${workload/no metering/metered}: a count and a sum feature on the 80% of events of type api.request, every subject a customer on a plan with a limit of 1,000 a month on the count (≈ 160 counted per customer: checked, not crossed)"
results record server-ingest-postgres-1-node-metered --number --value "$mone" --unit events/s \
  --metric "durable ingest with usage counting on PostgreSQL, one node (\`BENCH_METERED=customers\`)" \
  --ratio "$(awk -v a="$mone" -v b="$mlite" 'BEGIN { printf "%.2f", a / b }')× SQLite metered ($(printf '%.0f' "$mlite") events/s), $(awk -v a="$mone" -v b="$one" 'BEGIN { printf "%.2f", a / b }')× PostgreSQL unmetered, same run" \
  --conditions "$mworkload; $where; $(cpu_all "$logs/postgres-1-metered.txt")" \
  --note "PostgreSQL's $(top_statements "$logs/postgres-1-metered.txt")" \
  --command "scripts/bench-postgres.sh (BENCH_DATABASE_URL=… BENCH_METERED=customers $cmd)"
results record server-ingest-postgres-2-nodes-metered --number --value "$mtwo" --unit events/s \
  --metric "durable ingest with usage counting on PostgreSQL, two nodes (\`BENCH_METERED=customers\`, connections split)" \
  --ratio "$(awk -v a="$mtwo" -v b="$mone" 'BEGIN { printf "%.2f", a / b }')× one node metered, same run" \
  --conditions "$mworkload, connection i to node i mod 2; $where; both nodes, PostgreSQL and the load on the same 2 cores; $(cpu_all "$logs/postgres-2-metered.txt")" \
  --note "PostgreSQL's $(top_statements "$logs/postgres-2-metered.txt")" \
  --command "scripts/bench-postgres.sh (BENCH_DATABASE_URL=… BENCH_NODES=2 BENCH_METERED=customers $cmd)"
results record server-ingest-postgres-sqlite-1-node-metered --number --value "$mlite" --unit events/s \
  --metric "durable ingest with usage counting on SQLite, one node, in the PostgreSQL bench's run (\`BENCH_METERED=customers\`)" \
  --conditions "$mworkload; \`synchronous = full\`; $shared; $(cpu_all "$logs/sqlite-1-metered.txt")" \
  --command "scripts/bench-postgres.sh (BENCH_METERED=customers $cmd)"

# Where the metered time goes: the per-subject advisory lock (DR-112) is held to commit, and
# each batch of this workload (500 consecutive events over 1,000 subjects) holds 500
# subjects, the same as every other second batch, so batches in flight wait for each other.
# The same metered features once with 1,000 subjects and once with 200,000 (no two batches
# of the run share a subject: nothing waits for a lock), PostgreSQL one node.
step "ingest, metered features: 1,000 subjects vs 200,000 (no shared subjects), PostgreSQL one node"
ingest postgres-1-features BENCH_DATABASE_URL="$PG_URL" BENCH_METERED=features
ingest postgres-1-features-disjoint BENCH_DATABASE_URL="$PG_URL" BENCH_METERED=features BENCH_SUBJECTS=200000
fshared=$(durable "$logs/postgres-1-features.txt")
fdisjoint=$(durable "$logs/postgres-1-features-disjoint.txt")
results record server-ingest-postgres-1-node-metered-disjoint --number --value "$fdisjoint" --unit events/s \
  --metric "durable ingest with usage counting on PostgreSQL, one node, no two batches sharing a subject (\`BENCH_METERED=features BENCH_SUBJECTS=200000\`)" \
  --ratio "$(awk -v a="$fdisjoint" -v b="$fshared" 'BEGIN { printf "%.2f", a / b }')× the same features over 1,000 subjects ($(printf '%.0f' "$fshared") events/s, each batch sharing its subjects with every other second batch), same run" \
  --conditions "${workload/1,000 subjects, no metering/200,000 subjects (each event its own), metered}: a count and a sum feature on api.request, no customers; $where; $(cpu_all "$logs/postgres-1-features-disjoint.txt")" \
  --note "1,000 subjects: $(top_statements "$logs/postgres-1-features.txt"). 200,000 subjects: $(top_statements "$logs/postgres-1-features-disjoint.txt")" \
  --command "scripts/bench-postgres.sh (BENCH_DATABASE_URL=… BENCH_METERED=features BENCH_SUBJECTS=200000 $cmd)"

# "P50 / P99" of the first report line starting with LABEL in LOG.
p50_p99() { grep -m 1 "^ *$2" "$1" | sed -n 's/.*p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms.*/\1 \/ \2/p'; }
step "propagation: an entitlement change to 1,000 stream connections (SQLite; PostgreSQL one node; two nodes)"
pcmd="cargo bench --locked -p meterline-server --bench propagation"
# The shared override alone: 1,000 raw connections each holding customer-i and the 10
# shared customers; 30 rounds each override one shared customer (one update to every one).
penv=(BENCH_RAW=1000 BENCH_CLIENTS=0 BENCH_ROUNDS=0 BENCH_SINGLE=0 BENCH_SHARED_PLAN_ROUNDS=0 BENCH_SHARED_ROUNDS=30)
env "${penv[@]}" $pcmd 2>&1 | tee "$logs/propagation-sqlite-1.txt"
env "${penv[@]}" BENCH_DATABASE_URL="$PG_URL" $pcmd 2>&1 | tee "$logs/propagation-postgres-1.txt"
env "${penv[@]}" BENCH_DATABASE_URL="$PG_URL" BENCH_NODES=2 $pcmd 2>&1 | tee "$logs/propagation-postgres-2.txt"
label="shared override, raw stream connections"
two=$(p50_p99 "$logs/propagation-postgres-2.txt" "$label")
one=$(p50_p99 "$logs/propagation-postgres-1.txt" "$label")
lite=$(p50_p99 "$logs/propagation-sqlite-1.txt" "$label")
floor=$(p50_p99 "$logs/propagation-postgres-2.txt" "Kernel floor")
results record server-propagation-postgres-2-nodes --value "$two ms" \
  --metric "propagation of an entitlement change made through node A to 1,000 stream connections on node B, PostgreSQL (p50 / p99)" \
  --ratio "one node on PostgreSQL $one ms; SQLite one node $lite ms; kernel floor $floor ms (same run)" \
  --conditions "an override \`PUT\` on a customer every connection holds, through node A; its \`entitlements.updated\` frame timed at each of 1,000 raw stream connections on node B (catalog change, stream log, NOTIFY, B's follower); 30 rounds, 5 ms apart; $where" \
  --command "scripts/bench-postgres.sh (${penv[*]} BENCH_DATABASE_URL=… BENCH_NODES=2 $pcmd)"

step "bench/RESULTS.md"
results render
