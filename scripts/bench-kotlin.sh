#!/usr/bin/env bash
# meterline's Kotlin track() per call on the JVM beside its floors (a JNA call without
# arguments, a bare uniffi call with the same three strings, the packed lane without the core)
# and beside posthog-java 1.2.0 `capture()` and Segment analytics-java 3.5.1 `enqueue()`, all
# in one JVM run (bindings-swift-kotlin/kotlin/src/bench/kotlin/dev/meterline/TrackBench.kt,
# built with the pom's `bench` profile; the peers come from Maven Central). The peers send to
# a local sink (bench/python_peers.py --sink); meterline's endpoint refuses connections, so
# nothing leaves its process. Records bench/results/kotlin-*.json (scripts/results.py
# kotlin-peers, with the load average of the run) and renders bench/RESULTS.md.
# Usage: scripts/bench-kotlin.sh [calls per run, default 200000]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
calls=${1:-200000}
pkg=bindings-swift-kotlin/kotlin
logs=target/bench-logs
mkdir -p "$logs" bench/out

step "Kotlin bench: JDK and Maven, the uniffi library (release), the generated sources"
scripts/kotlin-toolchain.sh
scripts/uniffi-generate.sh 2>&1 | tail -n 1
(cd $pkg && mvn -B -q -ntp -Pbench test-compile dependency:build-classpath \
  -Dmdep.outputFile=target/bench-classpath.txt >/dev/null)

step "Kotlin bench: a local sink for the peers"
sink_log=$logs/kotlin-sink.txt
python3 bench/python_peers.py --sink >"$sink_log" 2>&1 &
sink_pid=$!
trap 'kill $sink_pid 2>/dev/null; wait $sink_pid 2>/dev/null || true' EXIT
sink=
for _ in $(seq 1 100); do
  sink=$(sed -n 's/^sink listening on //p' "$sink_log")
  [ -n "$sink" ] && break
  kill -0 $sink_pid 2>/dev/null || { cat "$sink_log"; echo "the sink exited early" >&2; exit 1; }
  sleep 0.1
done
[ -n "$sink" ] || { echo "the sink did not start" >&2; exit 1; }

step "Kotlin bench: track() per call, floors and peers ($calls calls per run, median of 3)"
cmd="scripts/bench-kotlin.sh $calls"
(cd $pkg && java -cp "target/classes:target/test-classes:$(cat target/bench-classpath.txt)" \
  dev.meterline.TrackBenchKt --calls "$calls" --sink "$sink" --json ../../bench/out/kotlin_peers.json) |
  tee "$logs/kotlin-peers.txt"
python3 scripts/results.py kotlin-peers bench/out/kotlin_peers.json "$cmd"
python3 scripts/results.py render
