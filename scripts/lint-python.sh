#!/usr/bin/env bash
# Python lints: ruff check + ruff format --check over the package, its tests, the Python
# quick start and the benchmarks (rules in bindings-python/pyproject.toml), and
# mypy --strict over the package (with its .pyi stubs) and the quick start.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-venv.sh
ensure_python_venv
paths=(bindings-python/python bindings-python/tests examples/python-quickstart bench/python_peers.py bench/python_entitlement.py bench/before_after.py bench/before_after_summary.py scripts/results.py scripts/browser-size-breakdown.py)
ruff=("$PY_VENV/bin/ruff")
"${ruff[@]}" check --config bindings-python/pyproject.toml "${paths[@]}"
"${ruff[@]}" format --check --config bindings-python/pyproject.toml "${paths[@]}"
(cd bindings-python && .venv/bin/python -m mypy --strict python/meterline ../examples/python-quickstart/quickstart.py)
echo "lint python: ok"
