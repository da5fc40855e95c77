# Sourced by test-python.sh and lint-python.sh: the project's Python venv
# (bindings-python/.venv, never the system interpreter) with the build and test tools.
# Override the interpreter with METERLINE_PYTHON=/path/to/python3.x (3.10 or newer).

PY_VENV=bindings-python/.venv
PY_TOOLS=("maturin>=1.16,<2" "pytest>=8" "pytest-timeout>=2.3" "ruff==0.17.6" "mypy>=1.15")

ensure_python_venv() {
  local base=${METERLINE_PYTHON:-}
  if [ -z "$base" ]; then
    base=$(command -v python3.11 || command -v python3 || true)
  fi
  [ -n "$base" ] || { echo "no python3 found: install Python 3.10+ (or set METERLINE_PYTHON)" >&2; return 1; }
  if [ ! -x "$PY_VENV/bin/python" ]; then
    echo "creating $PY_VENV with $("$base" --version 2>&1) ($base)"
    "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
      || { echo "$base is older than Python 3.10" >&2; return 1; }
    "$base" -m venv "$PY_VENV"
  fi
  "$PY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
}
