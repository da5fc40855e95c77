#!/usr/bin/env bash
# The Python package (bindings-python/): builds the abi3 wheel with maturin into the project
# venv, builds meterline-server, runs the pytest suite against it (real server, real SQLite),
# and appends "python: N passed, N failed, N skipped" to the file named by $1, if any.
# Skipped tests print their reason (pytest -rs). Exit status: pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/python-venv.sh
ensure_rust
summary=${1:-}
# Absolute, so pytest (run from bindings-python/) finds the build where cargo put it.
[ -z "${CARGO_TARGET_DIR:-}" ] || export CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"
logs=target/test-logs
wheels=target/python-wheels
mkdir -p "$logs"

record() { [ -z "$summary" ] || echo "python: $1 passed, $2 failed, $3 skipped" >>"$summary"; }

step "Python: venv and tools ($PY_VENV)"
ensure_python_venv || { record 0 1 0; exit 1; }

step "Python: build the meterline wheel (maturin, release, abi3)"
# Built for the explicit host triple, as napi does, so both bindings share one release cache.
rm -rf "$wheels"
if ! (cd bindings-python && VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin build --release --locked --target "$(rustc -vV | sed -n "s/^host: //p")" --out "../$wheels" 2>&1 | tail -n 3); then
  record 0 1 0
  exit 1
fi
"$PY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/meterline-*.whl

step "Python: build meterline-server"
cargo build -p meterline-server --locked 2>&1 | tail -n 2

step "Python: pytest (bindings-python/tests)"
status=0
# METERLINE_TEST_REQUIRE_SERVER: a missing server binary fails the tests instead of skipping them.
(cd bindings-python && METERLINE_WHEEL_DIR="$PWD/../$wheels" METERLINE_TEST_REQUIRE_SERVER=1 \
  .venv/bin/python -m pytest -rsx \
  --junitxml="../$logs/python-junit.xml" tests) || status=$?

counts=$("$PY_VENV/bin/python" - "$logs/python-junit.xml" <<'PY' || echo "0 1 0"
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = failed = skipped = 0
for s in suites:
    total += int(s.get("tests", 0))
    failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
    skipped += int(s.get("skipped", 0))
print(total - failed - skipped, failed, skipped)
PY
)
read -r passed failed skipped <<<"$counts"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # e.g. a collection error
record "$passed" "$failed" "$skipped"
echo "python: $passed passed, $failed failed, $skipped skipped"
exit "$status"
