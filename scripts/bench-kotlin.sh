#!/usr/bin/env bash
# meterline's Kotlin SDK on the JVM beside posthog-java 1.2.0 `capture()` and Segment
# analytics-java 3.5.1 `enqueue()` (the peers come from Maven Central; the pom's `bench`
# profile builds bindings-swift-kotlin/kotlin/src/bench/kotlin), two measures:
#
# * per call (TrackBench, one JVM run): track() beside its floors (a JNA call without
#   arguments, a bare uniffi call with the same three strings, the packed lane without the
#   core, the core's own track() inside Rust) and the peers; meterline's endpoint refuses
#   connections, so nothing leaves its process; the peers send to the sink;
# * end to end and memory (EndToEndBench, one JVM per SDK and round, 3 rounds, median): N
#   events tracked until the sink has them all, events/s, heap and RSS growth.
#
# The receiver is BenchSink (its own JVM): it counts every event that arrives and answers
# meterline's `POST /v1/events` with meterline's ingest answer (202 + counts, as
# meterline-server does for a stored batch) and the peers as their services do. A sink, not
# meterline-server: the server stores every event durably in SQLite (≈ 90,000 events/s on
# these 2 cores, bench/RESULTS.md), which would measure the server, not the SDK; the peers'
# figures are against a sink too. Records bench/results/kotlin-*.json (scripts/results.py
# kotlin-peers / kotlin-e2e, with the load average of the run) and renders bench/RESULTS.md.
# Usage: scripts/bench-kotlin.sh [events per run, default 200000] [all|per-call|e2e]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
calls=${1:-200000}
what=${2:-all}
case $what in all | per-call | e2e) ;; *) echo "usage: $0 [events] [all|per-call|e2e]" >&2; exit 2 ;; esac
pkg=bindings-swift-kotlin/kotlin
logs=target/bench-logs
mkdir -p "$logs" bench/out

step "Kotlin bench: JDK and Maven, the uniffi library (release), the generated sources"
scripts/kotlin-toolchain.sh
scripts/uniffi-generate.sh 2>&1 | tail -n 1
(cd $pkg && mvn -B -q -ntp -Pbench test-compile dependency:build-classpath \
  -Dmdep.outputFile=target/bench-classpath.txt >/dev/null)

cp="target/classes:target/test-classes:$(cat $pkg/target/bench-classpath.txt)"

step "Kotlin bench: the local sink (BenchSink, its own JVM)"
sink_log=$logs/kotlin-sink.txt
(cd $pkg && exec java -cp "$cp" dev.meterline.BenchSinkKt) >"$sink_log" 2>&1 &
sink_pid=$!
trap 'kill $sink_pid 2>/dev/null; wait $sink_pid 2>/dev/null || true' EXIT
sink=
for _ in $(seq 1 300); do
  sink=$(sed -n 's/^sink listening on //p' "$sink_log")
  [ -n "$sink" ] && break
  kill -0 $sink_pid 2>/dev/null || { cat "$sink_log"; echo "the sink exited early" >&2; exit 1; }
  sleep 0.1
done
[ -n "$sink" ] || { echo "the sink did not start" >&2; exit 1; }
cmd="scripts/bench-kotlin.sh $calls"

if [ "$what" != e2e ]; then
  step "Kotlin bench: track() per call, floors and peers ($calls calls per run, median of 3)"
  (cd $pkg && java -cp "$cp" dev.meterline.TrackBenchKt --calls "$calls" --sink "$sink" \
    --json ../../bench/out/kotlin_peers.json) | tee "$logs/kotlin-peers.txt"
  python3 scripts/results.py kotlin-peers bench/out/kotlin_peers.json "$cmd"
fi

if [ "$what" != per-call ]; then
  step "Kotlin bench: end to end and memory ($calls events per SDK, one JVM each, 3 rounds)"
  e2e=bench/out/kotlin_e2e.jsonl
  : >"$e2e"
  for round in 1 2 3; do
    for sdk in meterline posthog segment; do
      echo "round $round: $sdk"
      (cd $pkg && java -cp "$cp" dev.meterline.EndToEndBenchKt --sdk $sdk --sink "$sink" --events "$calls") |
        tee -a "$logs/kotlin-e2e.txt" | grep '^{' >>"$e2e"
    done
  done
  python3 scripts/results.py kotlin-e2e "$e2e" "$cmd"
fi
python3 scripts/results.py render
