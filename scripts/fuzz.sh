#!/usr/bin/env bash
# `make fuzz`: builds every cargo-fuzz target and runs each for FUZZ_SECONDS (default 60),
# starting from fuzz/seeds/<target> and fuzz/regressions/<target>. Installs cargo-fuzz when
# missing. The fuzz build needs sanitizer flags that stable rustc accepts only with
# RUSTC_BOOTSTRAP=1. `make test` runs it with FUZZ_SECONDS=5 (FUZZ_PROFILE=dev: unoptimized,
# quicker to build) so every target is compiled and exercised in CI.
# A crash stops that target with its input under fuzz/artifacts/<target>/: fix it, then copy
# the input to fuzz/regressions/<target>/ — `make test` replays every file there. A target
# whose run fails without leaving an artifact (the fuzzer itself failed), or a build failure,
# fails as well. Appends "fuzz: N passed, N failed, 0 skipped" (one per target) to the file
# named by $1, if any; exit status non-zero if any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

summary=${1:-/dev/null}
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-event_batch decompress stream_frame server_config spool_record client_stream_message entitlement_answer}"
ntargets=$(wc -w <<<"$targets")
# release (-O, `make fuzz`) or dev (`make test`): built into target/fuzz-<profile>.
profile="${FUZZ_PROFILE:-release}"
case $profile in
  release) build_flag=-O ;;
  dev) build_flag=--dev ;;
  *) echo "FUZZ_PROFILE must be release or dev, not '$profile'" >&2; exit 2 ;;
esac
target_dir="$(cargo_target_dir)/fuzz-$profile"
logs=target/test-logs
mkdir -p "$logs"

fail_all() {
  echo "fuzz: 0 passed, $ntargets failed, 0 skipped" >>"$summary"
  echo "fuzz: $1" >&2
  exit 1
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  step "installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked || fail_all "cargo-fuzz did not install"
fi
export RUSTC_BOOTSTRAP=1
step "building the fuzz targets ($profile, ASan) into $target_dir"
if [ -z "${FUZZ_TARGETS:-}" ]; then
  (cd fuzz && cargo fuzz build "$build_flag" --target-dir "$target_dir") || fail_all "the fuzz targets did not build"
else
  for target in $targets; do
    (cd fuzz && cargo fuzz build "$build_flag" --target-dir "$target_dir" "$target") ||
      fail_all "the fuzz target $target did not build"
  done
fi

passed=0
failed=0
for target in $targets; do
  step "fuzzing $target for ${seconds}s"
  corpus="fuzz/corpus/$target"
  log="$logs/fuzz-$target.txt"
  mkdir -p "$corpus" "fuzz/regressions/$target"
  status=0
  (cd fuzz && cargo fuzz run "$build_flag" --target-dir "$target_dir" "$target" \
    "../$corpus" "seeds/$target" "regressions/$target" -- \
    -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -print_final_stats=1) \
    >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|Done)' "$log" || true
  if compgen -G "fuzz/artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found crashing inputs in fuzz/artifacts/$target/ (log: $log)" >&2
    failed=$((failed + 1))
  elif [ "$status" -ne 0 ]; then
    echo "fuzz: $target failed (exit $status) without an artifact; the end of $log:" >&2
    tail -n 20 "$log" >&2
    failed=$((failed + 1))
  elif ! grep -q '^stat::number_of_executed_units' "$log"; then
    echo "fuzz: $target exited 0 but printed no final stats; the end of $log:" >&2
    tail -n 20 "$log" >&2
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed, 0 skipped" >>"$summary"
echo "fuzz: $passed of $ntargets targets ran ${seconds}s without a failure"
[ "$failed" -eq 0 ]
