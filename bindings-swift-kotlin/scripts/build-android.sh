#!/usr/bin/env bash
# TEMPLATE — NOT VERIFIED on a device or with the Android toolchain: no Android NDK, SDK or
# Android Gradle Plugin can be had on the machines this was written on (README, "Android").
#
# Builds the native library of the Android module (bindings-swift-kotlin/android/) for
# arm64-v8a, armeabi-v7a and x86_64 with cargo-ndk into android/src/main/jniLibs/<abi>/,
# strips it (the release profile keeps line tables; a device needs only the dynamic
# symbols), and generates the Kotlin sources the module compiles (scripts/uniffi-generate.sh:
# the same generated Kotlin as the JVM jar). Then: (cd bindings-swift-kotlin/android &&
# gradle assembleRelease).
#
# Needs: cargo-ndk (`cargo install cargo-ndk`), an Android NDK (r26 or newer) named by
# ANDROID_NDK_HOME (or ANDROID_NDK_ROOT), and rustup. Refuses plainly when one is missing.
# Usage: bindings-swift-kotlin/scripts/build-android.sh [--platform API level, default 24]
set -euo pipefail
cd "$(dirname "$0")/../.."
platform=24
if [ "${1:-}" = --platform ]; then platform=${2:?--platform needs an API level}; fi
abis=(arm64-v8a armeabi-v7a x86_64)
triples=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android)
out=bindings-swift-kotlin/android/src/main/jniLibs

refuse() {
  echo "build-android: $*" >&2
  echo "build-android: nothing was built (see bindings-swift-kotlin/README.md, \"Android\")." >&2
  exit 1
}
command -v cargo >/dev/null 2>&1 || refuse "cargo is not on PATH (install Rust with rustup)."
command -v rustup >/dev/null 2>&1 || refuse "rustup is not on PATH (needed to add the Android targets)."
cargo ndk --version >/dev/null 2>&1 ||
  refuse "cargo-ndk is not installed: \`cargo install cargo-ndk\` (https://github.com/bbqsrc/cargo-ndk)."
ndk=${ANDROID_NDK_HOME:-${ANDROID_NDK_ROOT:-}}
[ -n "$ndk" ] || refuse "no Android NDK: set ANDROID_NDK_HOME to the NDK's directory (r26 or newer)."
[ -d "$ndk/toolchains/llvm/prebuilt" ] ||
  refuse "ANDROID_NDK_HOME=$ndk is not an NDK (no toolchains/llvm/prebuilt in it)."
export ANDROID_NDK_HOME=$ndk
strip_tool=$(find "$ndk/toolchains/llvm/prebuilt" -maxdepth 3 -name llvm-strip -type f | head -n 1)
[ -n "$strip_tool" ] || refuse "no llvm-strip in $ndk/toolchains/llvm/prebuilt/*/bin."

rustup target add "${triples[@]}"
targets=()
for abi in "${abis[@]}"; do targets+=(-t "$abi"); done
cargo ndk "${targets[@]}" --platform "$platform" -o "$out" build --release --locked -p meterline-uniffi
for abi in "${abis[@]}"; do
  lib=$out/$abi/libmeterline_uniffi.so
  [ -f "$lib" ] || refuse "cargo-ndk wrote no $lib."
  "$strip_tool" --strip-all "$lib"
  echo "$lib: $(du -k "$lib" | cut -f1) KiB"
done

# The Kotlin sources the module compiles: generated from the host's build of the same crate.
scripts/uniffi-generate.sh >/dev/null
echo "generated Kotlin: bindings-swift-kotlin/kotlin/target/generated-sources/uniffi"
echo "next: (cd bindings-swift-kotlin/android && gradle assembleRelease)"
