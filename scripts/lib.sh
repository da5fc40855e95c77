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
count_cargo() {
  awk -v name="$2" '/^test result:/ {
      for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i
      } }
    END { printf "%s: %d passed, %d failed, %d skipped\n", name, p, f, s }' "$1"
}

# Adds up every "<name>: N passed, N failed[, N skipped]" line of a summary file, prints the
# total as the run's closing line, and fails if anything failed.
total() {
  awk -F'[:,]' '{ for (i = 2; i <= NF; i++) { split($i, w, " "); n[w[2]] += w[1] } }
    END { printf "tests: %d passed, %d failed, %d skipped\n", n["passed"], n["failed"], n["skipped"]; exit (n["failed"] > 0) }' "$1"
}

# strace, for the durability test (server-ref/tests/durability.rs): installs it from Debian
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
