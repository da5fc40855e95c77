#!/usr/bin/env bash
# Check that the I/O-free half of meterline-core builds for wasm32-unknown-unknown,
# using Debian's rustc-web toolchain (see shared/TOOLCHAIN.md, "Browser (wasm-bindgen)").
#
# Usage: scripts/check-wasm.sh [FEATURES] [--manifest-path PATH/Cargo.toml]
#   FEATURES  optional extra features (e.g. `schema`): built in addition to the
#             no-default-features build, as `--no-default-features --features FEATURES`.
#   MANIFEST_DIR=DIR  env alternative to --manifest-path (default: the repo root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
manifest_dir=${MANIFEST_DIR:-$(dirname "$here")}
features=""
while (($#)); do
  case $1 in
    --manifest-path) manifest_dir=$(dirname "$(realpath "$2")"); shift 2 ;;
    --manifest-path=*) manifest_dir=$(dirname "$(realpath "${1#*=}")"); shift ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) features=$1; shift ;;
  esac
done
manifest_dir=$(realpath "$manifest_dir")

"$here/install-wasm-toolchain.sh"

# Debian's toolchain, not rustup's: /usr/bin first, and pin rustc explicitly in case we
# are called from inside a rustup-driven cargo (which exports RUSTC / RUSTUP_TOOLCHAIN).
export PATH=/usr/bin:$PATH
unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER
export RUSTC=/usr/bin/rustc
export RUSTC_BOOTSTRAP=1   # -Zbuild-std on a stable compiler
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld

build() {
  echo "+ cargo build -p meterline-core --target wasm32-unknown-unknown $*"
  # No `--locked`: rustup's cargo may have written Cargo.lock; Debian's may need to
  # add std's own deps to its separate build-std lockfile, never to ours.
  /usr/bin/cargo build \
    --manifest-path "$manifest_dir/Cargo.toml" \
    --target-dir "$manifest_dir/target/wasm" \
    -p meterline-core --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort "$@"
}

start=$SECONDS
build --no-default-features || { echo "wasm32 check: FAILED (meterline-core, no default features)" >&2; exit 1; }
echo "wasm32 check: OK (meterline-core, no default features) [$((SECONDS - start))s]"

if [[ -n $features ]]; then
  start=$SECONDS
  build --no-default-features --features "$features" \
    || { echo "wasm32 check: FAILED (meterline-core, features: $features)" >&2; exit 1; }
  echo "wasm32 check: OK (meterline-core, features: $features) [$((SECONDS - start))s]"
fi
