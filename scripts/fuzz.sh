#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target for FUZZ_SECONDS (default 60) each, starting from
# fuzz/seeds/<target> and fuzz/regressions/<target>. Installs cargo-fuzz when missing. The
# fuzz build needs sanitizer flags that stable rustc accepts only with RUSTC_BOOTSTRAP=1.
# A crash stops the run with its input under fuzz/artifacts/<target>/: fix it, then copy the
# input to fuzz/regressions/<target>/ — `make test` replays every file there.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-event_batch decompress stream_frame server_config spool_record client_stream_message entitlement_answer}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  step "installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1
step "building the fuzz targets (release, ASan)"
(cd fuzz && cargo fuzz build -O)
for target in $targets; do
  step "fuzzing $target for ${seconds}s"
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus" "fuzz/regressions/$target"
  (cd fuzz && cargo fuzz run -O "$target" "../$corpus" "seeds/$target" "regressions/$target" -- \
    -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|Done)' || true)
  if compgen -G "fuzz/artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found crashing inputs in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz: every target ran ${seconds}s without a crash"
