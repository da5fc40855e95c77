#!/usr/bin/env bash
# The PostgreSQL suites: the storage tests of the server (tests/it/storage.rs,
# storage_admin.rs, storage_catalog.rs) against both backends, SQLite and a real PostgreSQL, and the server
# binary on PostgreSQL (tests/it/pg_nodes.rs: start-up refusals, two nodes on one database;
# pg_limits.rs: a key's rate limit held across two nodes; pg_races.rs: feature changes racing
# metered ingest;
# pg_failover.rs: the SDK behind HAProxy through a node killed and a database restart).
# Installs PostgreSQL and HAProxy from Debian's packages when missing, starts a throwaway
# cluster (scripts/pg-cluster.sh: its own temp dir, 127.0.0.1 on a free port, the unix socket
# inside the dir; as the unprivileged `postgres` user when run as root), runs the tests
# with METERLINE_TEST_DATABASE_URL pointing at it, and stops and removes the cluster on every
# exit. Appends "postgres: N passed, N failed, N skipped" to the file named by $1, if any.
# Exit status: non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
summary=${1:-/dev/null}
log=target/test-logs/postgres.txt
mkdir -p target/test-logs

source scripts/pg-cluster.sh

step "PostgreSQL: storage tests against SQLite and PostgreSQL, two server nodes"
# HAProxy (the load balancer of the failover cases), from Debian's packages.
if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
  echo "HAProxy is not installed: installing it from Debian's packages"
  pg_apt_install haproxy
fi
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$haproxy_bin" ] || pg_cluster_fail "$summary" postgres "HAProxy could not be installed"
export METERLINE_TEST_HAPROXY="$haproxy_bin"
pg_cluster_start "$summary" postgres
bin=$PG_BIN
dir=$PG_DIR
pg_opts=$PG_OPTS
as_pg=("${PG_AS[@]}")

export METERLINE_TEST_DATABASE_URL="$PG_URL"
# The restart cases stop and start this cluster; they run alone, one after the other, after
# the others.
restart_case=storage::acknowledged_writes_survive_a_database_restart
node_restart_case=pg_nodes::a_node_recovers_from_a_database_restart
sdk_restart_case=pg_failover::the_sdk_carries_on_through_a_database_restart
export METERLINE_TEST_PG_STOP="${as_pg[*]} $bin/pg_ctl -D $dir/data -m fast -w -t 60 stop >/dev/null"
export METERLINE_TEST_PG_START="${as_pg[*]} $bin/pg_ctl -D $dir/data -w -t 60 -l $dir/server.log -o '$pg_opts' start >/dev/null"
status=0
# The PostgreSQL cases are #[ignore]d in plain `cargo test` (no database there): run them too.
cargo test -p meterline-server --locked --test it -- storage:: storage_admin:: storage_catalog:: pg_nodes:: pg_limits:: pg_races:: pg_failover:: \
  --include-ignored --skip "$restart_case" --skip "$node_restart_case" --skip "$sdk_restart_case" 2>&1 |
  tee "$log" || status=$?
cargo test -p meterline-server --locked --test it -- "$restart_case" "$node_restart_case" "$sdk_restart_case" \
  --include-ignored --exact --test-threads=1 2>&1 |
  tee -a "$log" || status=$?
counts=$(count_cargo "$log" postgres)
echo "$counts" | tee -a "$summary"
case $counts in *" 0 failed,"*) ;; *) status=1 ;; esac
exit "$status"
