#!/usr/bin/env bash
# Lints of the Kotlin/Swift package: the generated ClientOptions record (and the README's
# option table) is what the core's option table gives, the Android/iOS packaging scripts
# parse (bash -n, and shellcheck where installed), and the Kotlin compiles — the package's
# pom compiles with -Werror, so a warning in our code or in the generated code fails here.
# (The meterline-uniffi crate is in the workspace's rustfmt and clippy run.)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 bindings-swift-kotlin/scripts/gen-options.py --check
# The Android and iOS packaging scripts are templates that cannot run here (no NDK, no
# Xcode): their syntax at least is checked, and by shellcheck where it is installed.
templates=(bindings-swift-kotlin/scripts/build-android.sh bindings-swift-kotlin/scripts/build-xcframework.sh)
for script in "${templates[@]}"; do bash -n "$script"; done
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck "${templates[@]}"
else
  echo "kotlin lint: shellcheck is not installed; the packaging templates were checked by bash -n only"
fi
# Always regenerate: sources left from an older build of the library would compile against
# a stale API (the build is incremental, and `make test-kotlin` reuses it).
scripts/uniffi-generate.sh >/dev/null
scripts/kotlin-toolchain.sh >/dev/null
(cd bindings-swift-kotlin/kotlin && mvn -B -q -ntp test-compile)
echo "kotlin lint: ok"
