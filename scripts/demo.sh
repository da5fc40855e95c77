#!/usr/bin/env bash
# The main job in one command: start meterline-server on its embedded SQLite, run the quick
# starts (read entitlements, track events, print what the server stored), stop.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/python-venv.sh
ensure_rust

step "Building meterline-server and the quick start"
cargo build --locked -p meterline-server -p rust-quickstart 2>&1 | tail -n 2

demo_dir=target/demo
rm -rf "$demo_dir" && mkdir -p "$demo_dir"
log="$demo_dir/server.log"

step "Starting meterline-server (SQLite file $demo_dir/meterline.db)"
# examples/quickstart.toml: the demo catalog (plans free and pro, customers customer-42 and customer-7).
target/debug/meterline-server serve --bind 127.0.0.1:0 --database-url "sqlite://$demo_dir/meterline.db" \
  --config examples/quickstart.toml >"$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q '^meterline-server listening on ' "$log" && grep -q '^secret key: ' "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log"; echo "the server exited early" >&2; exit 1; }
  sleep 0.1
done
endpoint=$(sed -n 's/^meterline-server listening on //p' "$log" | head -n 1)
secret=$(sed -n 's/^secret key: //p' "$log" | head -n 1)
[ -n "$endpoint" ] && [ -n "$secret" ] || { cat "$log"; echo "could not read the endpoint and key" >&2; exit 1; }
echo "listening on $endpoint; project 'default' with a fresh secret key"

step "Running examples/rust-quickstart"
METERLINE_API_KEY="$secret" METERLINE_ENDPOINT="$endpoint" target/debug/rust-quickstart

step "Running examples/python-quickstart (building the Python package first)"
ensure_python_venv
wheels=target/python-wheels
(cd bindings-python && VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin build --release --locked --target "$(rustc -vV | sed -n "s/^host: //p")" --out "../$wheels" 2>&1 | tail -n 1)
"$PY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/meterline-*.whl
METERLINE_API_KEY="$secret" METERLINE_ENDPOINT="$endpoint" "$PY_VENV/bin/python" examples/python-quickstart/quickstart.py

step "Done"
echo "server log: $log"
