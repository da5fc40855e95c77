#!/usr/bin/env bash
# The PostgreSQL suites: the storage tests of the server (tests/it/storage.rs,
# storage_admin.rs, storage_catalog.rs) against both backends, SQLite and a real PostgreSQL, and the server
# binary on PostgreSQL (tests/it/pg_nodes.rs: start-up refusals, two nodes on one database;
# pg_failover.rs: the SDK behind HAProxy through a node killed and a database restart).
# Installs PostgreSQL and HAProxy from Debian's packages when missing, starts a throwaway
# cluster (its own temp dir, 127.0.0.1 on a free port, the unix socket inside the dir; as the
# unprivileged `postgres` user when run as root, since initdb refuses root), runs the tests
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

# The newest installed PostgreSQL's bin directory, if any.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

step "PostgreSQL: storage tests against SQLite and PostgreSQL, two server nodes"
if [ -z "$(pg_bin)" ]; then
  echo "PostgreSQL is not installed: installing it from Debian's packages"
  sudo_=()
  [ "$(id -u)" -eq 0 ] || sudo_=(sudo)
  # Other scripts may run apt at the same time: one apt at a time, by /tmp/apt.lock.
  flock /tmp/apt.lock "${sudo_[@]}" sh -c 'apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null'
fi
# HAProxy (the load balancer of the failover cases), from Debian's packages too.
if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
  echo "HAProxy is not installed: installing it from Debian's packages"
  sudo_=()
  [ "$(id -u)" -eq 0 ] || sudo_=(sudo)
  flock /tmp/apt.lock "${sudo_[@]}" sh -c 'apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null'
fi
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$haproxy_bin" ] || { echo "postgres: 0 passed, 1 failed, 0 skipped (HAProxy could not be installed)" | tee -a "$summary"; exit 1; }
export METERLINE_TEST_HAPROXY="$haproxy_bin"
bin=$(pg_bin)
[ -n "$bin" ] || { echo "postgres: 0 passed, 1 failed, 0 skipped (PostgreSQL could not be installed)" | tee -a "$summary"; exit 1; }

# initdb and pg_ctl refuse root: as root, run them as the package's `postgres` user.
as_pg=()
[ "$(id -u)" -ne 0 ] || as_pg=(runuser -u postgres --)

dir=$(mktemp -d /tmp/meterline-pg.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" -ne 0 ] || chown postgres "$dir"
stop_cluster() {
  "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop_cluster EXIT

# A free port: bind port 0 and read what the kernel chose.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log"; echo "postgres: 0 passed, 1 failed, 0 skipped (initdb failed)" | tee -a "$summary"; exit 1; }
# synchronous_commit and fsync stay on (the defaults): the tests see the durability the
# server runs with.
pg_opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=200"
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -w -t 60 -l "$dir/server.log" -o "$pg_opts" start >/dev/null ||
  { cat "$dir/server.log"; echo "postgres: 0 passed, 1 failed, 0 skipped (the cluster did not start)" | tee -a "$summary"; exit 1; }
echo "throwaway cluster: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $dir"

export METERLINE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
# The restart cases restart (or stop and start) this cluster; they run alone, one after the
# other, after the others.
restart_case=storage::acknowledged_writes_survive_a_database_restart
node_restart_case=pg_nodes::a_node_recovers_from_a_database_restart
sdk_restart_case=pg_failover::the_sdk_carries_on_through_a_database_restart
export METERLINE_TEST_PG_RESTART="${as_pg[*]} $bin/pg_ctl -D $dir/data -m fast -w -t 60 restart >/dev/null"
export METERLINE_TEST_PG_STOP="${as_pg[*]} $bin/pg_ctl -D $dir/data -m fast -w -t 60 stop >/dev/null"
export METERLINE_TEST_PG_START="${as_pg[*]} $bin/pg_ctl -D $dir/data -w -t 60 -l $dir/server.log -o '$pg_opts' start >/dev/null"
status=0
# The PostgreSQL cases are #[ignore]d in plain `cargo test` (no database there): run them too.
cargo test -p meterline-server --locked --test it -- storage:: storage_admin:: storage_catalog:: pg_nodes:: pg_failover:: \
  --include-ignored --skip "$restart_case" --skip "$node_restart_case" --skip "$sdk_restart_case" 2>&1 |
  tee "$log" || status=$?
cargo test -p meterline-server --locked --test it -- "$restart_case" "$node_restart_case" "$sdk_restart_case" \
  --include-ignored --exact --test-threads=1 2>&1 |
  tee -a "$log" || status=$?
counts=$(count_cargo "$log" postgres)
echo "$counts" | tee -a "$summary"
case $counts in *" 0 failed,"*) ;; *) status=1 ;; esac
exit "$status"
