#!/usr/bin/env bash
# The Kotlin quick start in one command: installs the Kotlin package into the local Maven
# repository (mvn install in bindings-swift-kotlin/kotlin: the jar with the native library)
# and runs examples/kotlin-quickstart — a separate Maven project depending on the installed
# jar — against the server named by METERLINE_ENDPOINT and METERLINE_API_KEY when both are
# set, else on a meterline-server it starts as `make demo` does.
# `--installed-only` (scripts/test-kotlin.sh): skip building and generating (done already)
# and the install's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
scripts/kotlin-toolchain.sh >/dev/null

if [ "${1:-}" != "--installed-only" ]; then
  step "Building the uniffi library and generating the Kotlin sources"
  scripts/uniffi-generate.sh 2>&1 | tail -n 1
fi

step "mvn install (bindings-swift-kotlin/kotlin → ~/.m2: dev.meterline:meterline:0.1.0)"
(cd bindings-swift-kotlin/kotlin && mvn -B -q -ntp install -DskipTests)

server=
if [ -n "${METERLINE_ENDPOINT:-}" ] && [ -n "${METERLINE_API_KEY:-}" ]; then
  endpoint=$METERLINE_ENDPOINT secret=$METERLINE_API_KEY
  echo "using the server at $endpoint"
else
  step "Starting meterline-server (embedded SQLite)"
  cargo build --locked -p meterline-server 2>&1 | tail -n 1
  demo_dir=target/demo-kotlin
  rm -rf "$demo_dir" && mkdir -p "$demo_dir"
  log="$demo_dir/server.log"
  : >"$log"
  "$(cargo_target_dir)/debug/meterline-server" serve --bind 127.0.0.1:0 \
    --database-url "sqlite://$demo_dir/meterline.db" --config examples/quickstart.toml >"$log" 2>&1 &
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
fi

step "Running examples/kotlin-quickstart (a fresh Maven project using the installed jar)"
(cd examples/kotlin-quickstart && METERLINE_API_KEY="$secret" METERLINE_ENDPOINT="$endpoint" \
  mvn -B -q -ntp compile exec:java)
