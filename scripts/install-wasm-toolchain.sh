#!/usr/bin/env bash
# Install Debian's rustc-web toolchain (rustc/cargo 1.96 + std sources) and
# lld-22's wasm-ld, which together build for wasm32-unknown-unknown
# (rustup here cannot add that target). Idempotent: does nothing when present.
# See shared/TOOLCHAIN.md, "Browser (wasm-bindgen)".
set -euo pipefail

PKGS=(rustc-web cargo-web rust-web-src lld-22)
WASM_LD=/usr/lib/llvm-22/bin/wasm-ld
export DEBIAN_FRONTEND=noninteractive

have_toolchain() {
  [[ -x $WASM_LD && -x /usr/bin/cargo && -x /usr/bin/rustc ]] || return 1
  # rust-web-src puts the std sources into rustc's sysroot, where -Zbuild-std looks.
  local sysroot
  sysroot=$(/usr/bin/rustc --print sysroot) || return 1
  [[ -f $sysroot/lib/rustlib/src/rust/library/std/Cargo.toml ]]
}

if have_toolchain; then
  echo "install-wasm-toolchain: already present ($(/usr/bin/cargo --version), $WASM_LD); nothing to do"
  exit 0
fi

apt_update() { echo "install-wasm-toolchain: apt-get update"; apt-get update -qq; }

# Refresh the package lists only when one of the packages has no install candidate
# (fresh machine with empty lists, or lists too old to know it).
# (Capture first: `apt-cache | grep -q` trips pipefail with SIGPIPE.)
for p in "${PKGS[@]}"; do
  policy=$(apt-cache policy "$p" 2>/dev/null || true)
  if [[ $policy != *"Candidate: "[0-9]* ]]; then
    apt_update
    break
  fi
done

echo "install-wasm-toolchain: apt-get install -y ${PKGS[*]}"
# Stale lists can name .debs the mirror no longer has: update once and retry.
if ! apt-get install -y -qq "${PKGS[@]}"; then
  apt_update
  apt-get install -y -qq "${PKGS[@]}"
fi

have_toolchain || { echo "install-wasm-toolchain: toolchain still incomplete after install" >&2; exit 1; }
echo "install-wasm-toolchain: done ($(/usr/bin/cargo --version), $WASM_LD)"
