#!/usr/bin/env bash
# Shared helpers for the scripts in this folder (sourced, not run).

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Rust comes from rustup on these machines; fail clearly if it is missing.
ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "cargo not found: install Rust (https://rustup.rs) and rerun" >&2
      exit 1
    fi
  fi
}

# Sums cargo's "test result:" lines of a log into "<name>: N passed, N failed, N skipped".
# Each test binary cargo ran ("Running …", "Doc-tests …") that printed no "test result:" line
# (it aborted, segfaulted, overflowed its stack, was killed) counts as one failure, and so
# does one whose result shows no failure but that cargo still reports as failed ("error: test
# failed, to rerun pass …", e.g. a crash after the last test): either way its tests' outcome
# is not known to be a pass.
count_cargo() {
  awk -v name="$2" '
    function close_binary() {
      if (open && (!result || (error && !result_failed))) { f += 1; lost = lost " " binary }
      open = 0
    }
    /^ *(Running|Doc-tests) / {
      close_binary(); open = 1; result = 0; result_failed = 0; error = 0
      binary = $0; sub(/^ *(Running|Doc-tests) /, "", binary); sub(/ \(.*$/, "", binary)
    }
    /^test result:/ {
      result = 1
      for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i
        if ($(i+1) ~ /^failed/) { f += $i; result_failed += $i }
        if ($(i+1) ~ /^ignored/) s += $i
      } }
    /^error: test failed, to rerun pass/ { error = 1 }
    END {
      close_binary()
      if (lost != "") printf "test binaries that ended without a result (counted failed):%s\n", lost > "/dev/stderr"
      printf "%s: %d passed, %d failed, %d skipped\n", name, p, f, s
    }' "$1"
}

# The target directory cargo builds into (CARGO_TARGET_DIR, build.target-dir, else target/).
cargo_target_dir() {
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    realpath -m "$CARGO_TARGET_DIR"
  else
    cargo metadata --format-version 1 --no-deps 2>/dev/null |
      sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' | grep . || echo "$PWD/target"
  fi
}

# Wall-clock minutes per suite: `suite_start NAME` … `suite_end` prints "NAME: M.M min" and
# appends it to $minutes (when set); `minutes_total` prints the file and its total.
suite_start() {
  suite_name=$1
  suite_t0=$EPOCHREALTIME
}
suite_end() {
  local line
  line=$(awk -v n="$suite_name" -v a="$suite_t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%s: %.1f min", n, (b - a) / 60 }')
  echo "$line"
  [ -z "${minutes:-}" ] || echo "$line" >>"$minutes"
}
minutes_total() {
  awk '{ print "  " $0; t += $(NF-1) } END { printf "  total: %.1f min\n", t }' "$1"
}

# Adds up every "<name>: N passed, N failed[, N skipped]" line of a summary file, prints the
# total as the run's closing line, and fails if anything failed.
total() {
  awk -F'[:,]' '{ for (i = 2; i <= NF; i++) { split($i, w, " "); n[w[2]] += w[1] } }
    END { printf "tests: %d passed, %d failed, %d skipped\n", n["passed"], n["failed"], n["skipped"]; exit (n["failed"] > 0) }' "$1"
}

# strace, for the durability test (server-ref/tests/it/durability.rs): installs it from Debian
# when missing and checks it may trace here. Prints the reason and fails when it cannot.
ensure_strace() {
  if ! command -v strace >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      { apt-get update -qq && apt-get install -y -qq strace; } >/dev/null 2>&1 || true
    fi
  fi
  if ! command -v strace >/dev/null 2>&1; then
    echo "strace is not installed and apt-get could not install it"
    return 1
  fi
  if ! strace -f -o /dev/null true 2>/dev/null; then
    echo "strace cannot trace on this machine (ptrace not permitted)"
    return 1
  fi
}
