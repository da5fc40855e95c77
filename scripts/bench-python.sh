#!/usr/bin/env bash
# meterline vs posthog and segment, from Python (bench/python_peers.py): per-call cost,
# end-to-end events/s for 200,000 events and peak RSS, each SDK in its own process, all on
# 127.0.0.1. Builds the wheel into the project venv and the release server first.
# Extra arguments go to the script (e.g. --events 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/python-venv.sh
ensure_rust
ensure_python_venv
wheels=target/python-wheels
rm -rf "$wheels"
(cd bindings-python && VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin build --release --locked --target "$(rustc -vV | sed -n "s/^host: //p")" --out "../$wheels" 2>&1 | tail -n 1)
"$PY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/meterline-*.whl
cargo build --release --locked -p meterline-server 2>&1 | tail -n 1
"$PY_VENV/bin/python" bench/python_peers.py "$@"
