#!/usr/bin/env bash
# Formatting and lints: rustfmt, clippy -D warnings (all targets), and the bindings' formatters.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
step "cargo fmt --check"
cargo fmt --all -- --check
# The fuzz crate is its own workspace (excluded from the root one); rustfmt reads .rustfmt.toml.
rustfmt --check --edition 2024 fuzz/fuzz_targets/*.rs
step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "bench/RESULTS.md is the rendering of bench/results/*.json"
python3 scripts/results.py check
for lang in python node kotlin; do
  if [ -x "scripts/lint-$lang.sh" ]; then
    step "lint $lang"
    "scripts/lint-$lang.sh"
  fi
done
echo "lint: ok"
