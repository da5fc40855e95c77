#!/usr/bin/env bash
# Builds the uniffi library (release) and uniffi-bindgen, and generates the Kotlin and Swift
# sources from the built library:
#   Kotlin → bindings-swift-kotlin/kotlin/target/generated-sources/uniffi (package dev.meterline;
#            `Client.track()` routed through the packed lane by scripts/lean-track.py),
#            and the library, stripped → bindings-swift-kotlin/kotlin/target/native/linux-x86-64/
#            (the jar's resource, where JNA finds it);
#   Swift  → bindings-swift-kotlin/swift/Sources/{Meterline,meterlineFFI}.
# Prints the library's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

# Built for the explicit host triple, as the Python and Node packages are, so all three
# share one release cache (target/<triple>/release).
triple=$(rustc -vV | sed -n "s/^host: //p")
cargo build --release --locked --target "$triple" -p meterline-uniffi >&2
# uniffi-bindgen only reads the library: a debug build is enough and faster to compile.
cargo build --locked -p meterline-uniffi-bindgen >&2
target_dir=$(cargo_target_dir)
lib="$target_dir/$triple/release/libmeterline_uniffi.so"
bindgen="$target_dir/debug/uniffi-bindgen"
pkg=bindings-swift-kotlin

kt_out=$pkg/kotlin/target/generated-sources/uniffi
rm -rf "$kt_out"
"$bindgen" generate --no-format --library "$lib" --language kotlin --out-dir "$kt_out" >&2
# Client.track() through the packed lane (one JNA call; docs/decisions.md, "Kotlin `track()`:
# one packed call"): the generated method's body is replaced, its signature kept.
python3 $pkg/scripts/lean-track.py "$kt_out/dev/meterline/meterline.kt"
# The jar carries the library stripped: the release profile keeps line tables (for the
# workspace's profiles and backtraces), 92 MB of this library; JNA needs only its dynamic
# symbols, which stripping keeps. binutils' strip, else the toolchain's rust-objcopy.
native=$pkg/kotlin/target/native/linux-x86-64
mkdir -p $native
if command -v strip >/dev/null 2>&1; then
  strip --strip-all -o "$native/libmeterline_uniffi.so" "$lib"
else
  objcopy_tool="$(rustc --print sysroot)/lib/rustlib/$triple/bin/rust-objcopy"
  [ -x "$objcopy_tool" ] || { echo "uniffi-generate: neither strip nor $objcopy_tool to strip the library" >&2; exit 1; }
  "$objcopy_tool" --strip-all "$lib" "$native/libmeterline_uniffi.so"
fi

swift_tmp=$(mktemp -d)
"$bindgen" generate --no-format --library "$lib" --language swift --out-dir "$swift_tmp" >&2
swift_src=$pkg/swift/Sources
rm -rf "$swift_src/Meterline/Meterline.swift" "$swift_src/meterlineFFI/include"
mkdir -p "$swift_src/Meterline" "$swift_src/meterlineFFI/include"
cp "$swift_tmp/Meterline.swift" "$swift_src/Meterline/"
cp "$swift_tmp/meterlineFFI.h" "$swift_src/meterlineFFI/include/"
cp "$swift_tmp/meterlineFFI.modulemap" "$swift_src/meterlineFFI/include/module.modulemap"
rm -rf "$swift_tmp"
echo "$lib"
