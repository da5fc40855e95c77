#!/usr/bin/env bash
# TEMPLATE — NOT VERIFIED on a device or with Xcode: no Xcode can be had on the machines this
# was written on (README, "iOS").
#
# Builds meterline's static library for iOS devices (aarch64-apple-ios) and simulators
# (aarch64-apple-ios-sim, x86_64-apple-ios; joined into one library with lipo), generates the
# Swift sources and the C header/module map with uniffi-bindgen from the host's build of the
# same crate, bundles both libraries with the header as meterlineFFI.xcframework
# (xcodebuild -create-xcframework), and lays out a Swift package in
# bindings-swift-kotlin/ios/dist/Meterline/ (ios/Package.swift: a binaryTarget on the
# XCFramework, the generated Meterline.swift).
#
# Needs: macOS with Xcode (xcodebuild, lipo), rustup. Refuses plainly when one is missing.
# Usage: bindings-swift-kotlin/scripts/build-xcframework.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
pkg=bindings-swift-kotlin
dist=$pkg/ios/dist/Meterline

refuse() {
  echo "build-xcframework: $*" >&2
  echo "build-xcframework: nothing was built (see bindings-swift-kotlin/README.md, \"iOS\")." >&2
  exit 1
}
[ "$(uname -s)" = Darwin ] || refuse "iOS libraries are built on macOS with Xcode; this is $(uname -s)."
command -v xcodebuild >/dev/null 2>&1 ||
  refuse "xcodebuild is not on PATH: install Xcode and run \`xcode-select --install\`."
command -v lipo >/dev/null 2>&1 || refuse "lipo is not on PATH (it comes with Xcode's command line tools)."
command -v cargo >/dev/null 2>&1 || refuse "cargo is not on PATH (install Rust with rustup)."
command -v rustup >/dev/null 2>&1 || refuse "rustup is not on PATH (needed to add the iOS targets)."

device=aarch64-apple-ios
simulators=(aarch64-apple-ios-sim x86_64-apple-ios)
rustup target add "$device" "${simulators[@]}"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
for triple in "$device" "${simulators[@]}"; do
  cargo build --release --locked -p meterline-uniffi --target "$triple"
done
lib=libmeterline_uniffi.a
sim_dir=$target_dir/ios-simulator-universal/release
mkdir -p "$sim_dir"
lipo -create "$target_dir/${simulators[0]}/release/$lib" "$target_dir/${simulators[1]}/release/$lib" \
  -output "$sim_dir/$lib"

# Swift sources, header and module map from the host's library (uniffi-bindgen reads the
# interface from it; it is the same crate, so the same interface).
cargo build --release --locked -p meterline-uniffi
cargo build --locked -p meterline-uniffi-bindgen
generated=$(mktemp -d)
"$target_dir/debug/uniffi-bindgen" generate --no-format --library "$target_dir/release/libmeterline_uniffi.dylib" \
  --language swift --out-dir "$generated"
headers=$generated/headers
mkdir -p "$headers"
cp "$generated/meterlineFFI.h" "$headers/"
cp "$generated/meterlineFFI.modulemap" "$headers/module.modulemap"

rm -rf "$dist"
mkdir -p "$dist/Sources/Meterline"
xcodebuild -create-xcframework \
  -library "$target_dir/$device/release/$lib" -headers "$headers" \
  -library "$sim_dir/$lib" -headers "$headers" \
  -output "$dist/meterlineFFI.xcframework"
cp "$generated/Meterline.swift" "$dist/Sources/Meterline/"
cp "$pkg/ios/Package.swift" "$dist/"
rm -rf "$generated"
echo "Swift package: $dist (meterlineFFI.xcframework, Sources/Meterline/Meterline.swift, Package.swift)"
