#!/usr/bin/env bash
# The server against its own OpenAPI document: installs schemathesis (PyPI, pinned) into
# target/tools/schemathesis, starts meterline-server on a fresh SQLite file, and runs
# schemathesis (coverage, fuzzing and stateful phases, bounded by --max-examples) twice —
# with the secret key for the SDK-facing paths and with the admin key for /v1/admin/* —
# checking: no 5xx, documented status codes, content types, headers and response schemas.
# Appends "openapi: N passed, N failed, 0 skipped" (one per run) to the file named by $1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
summary=${1:-}
SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${OPENAPI_MAX_EXAMPLES:-25}
venv=target/tools/schemathesis
logs=target/test-logs
mkdir -p "$logs"
passed=0
failed=0
record() { [ -z "$summary" ] || echo "openapi: $passed passed, $failed failed, 0 skipped" >>"$summary"; }

step "OpenAPI: schemathesis $SCHEMATHESIS_VERSION ($venv)"
python=$(command -v python3.11 || command -v python3 || true)
[ -n "$python" ] || { echo "no python3 found: install Python 3.10+" >&2; failed=1; record; exit 1; }
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"; then
  failed=1; record; exit 1
fi

step "OpenAPI: starting meterline-server on a fresh SQLite file"
cargo build -p meterline-server --locked 2>&1 | tail -n 2
dir=$(mktemp -d)
target/debug/meterline-server serve --bind 127.0.0.1:0 --database-url "sqlite://$dir/meterline.db" >"$dir/server.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  grep -q '^meterline-server listening on ' "$dir/server.log" && break
  kill -0 $server 2>/dev/null || break
  sleep 0.1
done
url=$(sed -n 's/^meterline-server listening on //p' "$dir/server.log" | head -n 1)
secret=$(sed -n 's/^secret key: //p' "$dir/server.log" | head -n 1)
admin=$(sed -n 's/^admin key: //p' "$dir/server.log" | head -n 1)
if [ -z "$url" ] || [ -z "$secret" ] || [ -z "$admin" ]; then
  cat "$dir/server.log"; echo "the server did not start" >&2; failed=1; record; exit 1
fi

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
run() { # name, key, filter args...
  local name=$1 key=$2
  shift 2
  step "OpenAPI: schemathesis, $name"
  if "$venv/bin/st" run "$url/openapi.json" --checks "$checks" -H "Authorization: Bearer $key" \
    --max-examples "$MAX_EXAMPLES" --workers 1 --request-timeout 10 --no-color "$@" 2>&1 |
    tee "$logs/openapi-$name.txt"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
}
run sdk-paths "$secret" --exclude-path-regex '^/v1/admin'
run admin-paths "$admin" --include-path-regex '^/v1/admin'
# The server must still be up and healthy after the fuzzing.
if ! "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=5)' "$url"; then
  echo "the server is not ready after the schemathesis runs" >&2
  failed=$((failed + 1))
fi
record
[ "$failed" -eq 0 ]
