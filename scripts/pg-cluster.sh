#!/usr/bin/env bash
# Sourced by scripts/test-postgres.sh and scripts/bench-postgres.sh: a throwaway PostgreSQL
# cluster. `pg_cluster_start SUMMARY LABEL` installs PostgreSQL from Debian's packages when
# missing, creates a cluster in its own temp dir (127.0.0.1 on a free port, the unix socket
# inside the dir; as the unprivileged `postgres` user when run as root, since initdb refuses
# root), starts it, and stops and removes it on exit (an EXIT trap). It sets:
#   PG_BIN     the PostgreSQL bin directory      PG_DIR   the cluster's temp dir
#   PG_PORT    its port                          PG_URL   postgres://postgres@127.0.0.1:PORT/postgres
#   PG_OPTS    the server options it started with
#   PG_AS      the command prefix running a command as the cluster's owner (an array)
# On a failure it appends "LABEL: 0 passed, 1 failed, 0 skipped (why)" to SUMMARY and exits 1.
# Extra server settings: PG_EXTRA_OPTS (e.g. "-c shared_preload_libraries=pg_stat_statements").
# synchronous_commit and fsync stay on (the defaults).

# The newest installed PostgreSQL's bin directory, if any.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# Installs Debian package(s) $1; one apt at a time, by /tmp/apt.lock, since other scripts
# may run apt too.
pg_apt_install() {
  local sudo_=()
  [ "$(id -u)" -eq 0 ] || sudo_=(sudo)
  flock /tmp/apt.lock "${sudo_[@]}" sh -c "apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $1 >/dev/null"
}

pg_cluster_fail() {
  echo "$2: 0 passed, 1 failed, 0 skipped ($3)" | tee -a "$1"
  exit 1
}

pg_cluster_stop() {
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}

pg_cluster_start() {
  local summary=$1 label=$2
  if [ -z "$(pg_bin)" ]; then
    echo "PostgreSQL is not installed: installing it from Debian's packages"
    pg_apt_install postgresql
  fi
  PG_BIN=$(pg_bin)
  [ -n "$PG_BIN" ] || pg_cluster_fail "$summary" "$label" "PostgreSQL could not be installed"
  # initdb and pg_ctl refuse root: as root, run them as the package's `postgres` user.
  PG_AS=()
  [ "$(id -u)" -ne 0 ] || PG_AS=(runuser -u postgres --)
  PG_DIR=$(mktemp -d /tmp/meterline-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  [ "$(id -u)" -ne 0 ] || chown postgres "$PG_DIR"
  trap pg_cluster_stop EXIT
  # A free port: bind port 0 and read what the kernel chose.
  PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log"; pg_cluster_fail "$summary" "$label" "initdb failed"; }
  PG_OPTS="-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PG_DIR -c max_connections=200 ${PG_EXTRA_OPTS:-}"
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -t 60 -l "$PG_DIR/server.log" -o "$PG_OPTS" start >/dev/null ||
    { cat "$PG_DIR/server.log"; pg_cluster_fail "$summary" "$label" "the cluster did not start"; }
  echo "throwaway cluster: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT, data in $PG_DIR"
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}
