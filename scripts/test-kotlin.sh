#!/usr/bin/env bash
# The Kotlin and Swift packages (bindings-swift-kotlin/): builds the uniffi library (release)
# and generates the Kotlin and Swift sources, checks the generated ClientOptions against the
# core's option table, runs the JUnit suite (mvn test) against a real meterline-server,
# installs the jar (mvn install) and runs examples/kotlin-quickstart from it as a fresh Maven
# project would, compares the generated Swift public surface with its checked-in copy, and
# runs the Swift tests where `swift` is on PATH (else says plainly that they were skipped).
# Appends "kotlin: N passed, N failed, N skipped" to the file named by $1, if any.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
summary=${1:-}
[ -z "${CARGO_TARGET_DIR:-}" ] || export CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"
pkg=bindings-swift-kotlin
logs=target/test-logs
mkdir -p "$logs"
passed=0 failed=0 skipped=0
record() {
  echo "kotlin: $passed passed, $failed failed, $skipped skipped"
  [ -z "$summary" ] || echo "kotlin: $passed passed, $failed failed, $skipped skipped" >>"$summary"
}
# One check of this script counted as a test: `check NAME COMMAND…`.
check() {
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); else echo "FAILED: $name" >&2; failed=$((failed + 1)); fi
}
# A step that stops the script (a build that fails) counts as one failure.
trap 'status=$?; if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi; record' EXIT

step "Kotlin: JDK and Maven"
scripts/kotlin-toolchain.sh || { failed=$((failed + 1)); exit 1; }

step "Kotlin: build meterline-server"
cargo build -p meterline-server --locked 2>&1 | tail -n 2

step "Kotlin: build the uniffi library (release) and generate the Kotlin and Swift sources"
scripts/uniffi-generate.sh 2>&1 | tail -n 3
check "ClientOptions is what the option table gives" python3 $pkg/scripts/gen-options.py --check

step "Kotlin: mvn test ($pkg/kotlin)"
status=0
rm -rf $pkg/kotlin/target/surefire-reports
(cd $pkg/kotlin && mvn -B -q -ntp test) || status=$?
counts=$(python3 - $pkg/kotlin/target/surefire-reports <<'PY' || echo "0 1 0"
import glob, sys
import xml.etree.ElementTree as ET

total = failed = skipped = 0
for path in glob.glob(sys.argv[1] + "/TEST-*.xml"):
    s = ET.parse(path).getroot()
    total += int(s.get("tests", 0))
    failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
    skipped += int(s.get("skipped", 0))
print(total - failed - skipped, failed, skipped)
PY
)
read -r p f s <<<"$counts"
if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # a compile error: no report
passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
echo "JUnit: $p passed, $f failed, $s skipped"

step "Kotlin: mvn install, then examples/kotlin-quickstart from the installed jar"
check "the installed jar runs the quick start" scripts/demo-kotlin.sh --installed-only

step "Swift: generated public surface vs $pkg/swift/api.golden.txt"
check "the Swift public surface matches its checked-in copy" python3 $pkg/scripts/swift-surface.py --check

step "Swift: XCTest"
swift_tests=$(cat $pkg/swift/Tests/MeterlineTests/*.swift | grep -c 'func test')
if command -v swift >/dev/null 2>&1; then
  swift_status=0
  (cd $pkg/swift && swift test 2>&1 | tee "../../$logs/swift-test.txt") || swift_status=$?
  if [ "$swift_status" -eq 0 ]; then passed=$((passed + swift_tests)); else failed=$((failed + 1)); fi
else
  echo "Swift tests skipped: no Swift toolchain (\`swift\` is not on PATH; none can be installed on these machines)."
  echo "The generated Swift API is still checked by the golden-file test above."
  skipped=$((skipped + swift_tests))
fi
[ "$failed" -eq 0 ]
