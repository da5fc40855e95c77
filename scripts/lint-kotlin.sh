#!/usr/bin/env bash
# Lints of the Kotlin/Swift package: the generated ClientOptions record (and the README's
# option table) is what the core's option table gives, and the Kotlin compiles — the package's
# pom compiles with -Werror, so a warning in our code or in the generated code fails here.
# (The meterline-uniffi crate is in the workspace's rustfmt and clippy run.)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 bindings-swift-kotlin/scripts/gen-options.py --check
# Always regenerate: sources left from an older build of the library would compile against
# a stale API (the build is incremental, and `make test-kotlin` reuses it).
scripts/uniffi-generate.sh >/dev/null
scripts/kotlin-toolchain.sh >/dev/null
(cd bindings-swift-kotlin/kotlin && mvn -B -q -ntp test-compile)
echo "kotlin lint: ok"
