#!/usr/bin/env bash
# `make browser`: builds meterline-web's two bundles — default (envelope checks only) into
# bindings-wasm/dist/default/ and full (client-side JSON Schema validation) into
# bindings-wasm/dist/full/ — each an ES module `meterline.js` (default export: async init())
# beside the wasm-bindgen glue and the .wasm (opt-level z, LTO, then wasm-opt -Oz from npm's
# binaryen). Also writes the `--target nodejs` builds the Node tests load
# (target/browser/node-{default,full}/). Prints each bundle's size, raw and gzipped.
# Installs what it needs (scripts/install-browser-toolchain.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
root=$PWD

BROWSER_TOOLCHAIN_NO_CHROMIUM=1 scripts/install-browser-toolchain.sh

# Debian's toolchain (see scripts/check-wasm.sh), in its own target directory.
export PATH=/usr/bin:$PATH
unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld

bindgen=$root/target/tools/bin/wasm-bindgen
wasm_opt=$root/bindings-wasm/node_modules/.bin/wasm-opt
# What rustc's wasm32 target emits by default; wasm-opt must accept (and may use) them.
opt_features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-reference-types --enable-multivalue --enable-mutable-globals --enable-simd)
# Smaller bundles (docs/decisions.md, "Bundle size" in bindings-wasm/README.md): a panic
# traps at once (`unreachable`, as `panic = "abort"` ended on wasm32 too, where the panic
# message had nowhere to go), so no panic formatting or source locations (−16 KB gzipped);
# std's `optimize_for_size` algorithms (−2.5 KB). Set here, not in Cargo.toml, because only
# this nightly-flag build (RUSTC_BOOTSTRAP) understands them.
size_flags=(-Zpanic-immediate-abort --config 'profile.wasm-release.panic="immediate-abort"'
  -Zbuild-std-features=optimize_for_size)
# No source paths and lines for panics nobody sees (they trap at once): −1.1 KB.
export RUSTFLAGS="${RUSTFLAGS:-} -Zlocation-detail=none"
built=$root/target/wasm/wasm32-unknown-unknown/wasm-release/meterline_wasm.wasm
sizes=$root/target/browser/sizes.txt
mkdir -p "$root/target/browser"
: >"$sizes"

# errors.js, json.js, client.js: this package's module head and exports (bindings-wasm/js/)
# around the Node package's code that its `// @shared from <file>` line (json.js: `// @rules
# from`) names — what <file> holds between its "shared with meterline-web" begin/end markers
# (bindings-node/lib/) — so both packages run one copy of the error classes, the JSON checks
# and the client calls. Fails when a file's markers are gone.
assemble() {
  awk '
    /^\/\/ @(rules|shared) from / {
      src = $4; n = 0; on = 0
      while ((getline line < src) > 0) {
        if (line ~ /^\/\/ -- (rules )?shared with meterline-web: end/) on = 0
        if (on) { print line; n++ }
        if (line ~ /^\/\/ -- (rules )?shared with meterline-web: begin/) on = 1
      }
      close(src)
      if (!n) { print "no shared code found in " src > "/dev/stderr"; exit 1 }
      next
    }
    { print }' "bindings-wasm/js/$1" >"$2/$1"
}

for variant in default full; do
  features=()
  [[ $variant == full ]] && features=(--features full)
  step "meterline-wasm ($variant): cargo build --profile wasm-release"
  cargo build --manifest-path "$root/Cargo.toml" --target-dir "$root/target/wasm" \
    -p meterline-wasm --target wasm32-unknown-unknown --profile wasm-release \
    -Zbuild-std=std,panic_abort "${size_flags[@]}" "${features[@]}"

  dist=$root/bindings-wasm/dist/$variant
  rm -rf "$dist" && mkdir -p "$dist"
  "$bindgen" --target web --out-dir "$dist" --out-name meterline_wasm --no-typescript "$built"
  "$wasm_opt" -Oz --strip-debug --strip-producers "${opt_features[@]}" -o "$dist/meterline_wasm_bg.wasm" "$dist/meterline_wasm_bg.wasm"
  cp bindings-wasm/js/meterline.js bindings-wasm/meterline.d.ts "$dist/"
  for shared in errors.js json.js client.js; do assemble "$shared" "$dist"; done
  cp bindings-wasm/js/native-web.js "$dist/native.js"
  # Minified, names of functions and classes kept (−6 KB gzipped; bindings-wasm/README.md).
  (cd bindings-wasm && node scripts/minify.mjs "$dist"/*.js)

  node_dir=$root/target/browser/node-$variant
  rm -rf "$node_dir" && mkdir -p "$node_dir/wasm"
  "$bindgen" --target nodejs --out-dir "$node_dir/wasm" --out-name meterline_wasm --no-typescript "$built"
  echo '{"type":"commonjs"}' >"$node_dir/wasm/package.json"
  echo '{"type":"module"}' >"$node_dir/package.json"
  cp bindings-wasm/js/meterline.js "$node_dir/"
  for shared in errors.js json.js client.js; do assemble "$shared" "$node_dir"; done
  cp bindings-wasm/js/native-node.js "$node_dir/native.js"

  raw=$(cat "$dist"/*.js "$dist"/*.wasm | wc -c)
  gz=$(cat "$dist"/*.js "$dist"/*.wasm | gzip -9 | wc -c)
  wasm_gz=$(gzip -9 <"$dist/meterline_wasm_bg.wasm" | wc -c)
  line=$(printf 'meterline-web %-7s %7.1f KB raw, %6.1f KB gzipped (wasm alone %6.1f KB gzipped; JS glue included)' \
    "$variant" "$(echo "$raw/1000" | bc -l)" "$(echo "$gz/1000" | bc -l)" "$(echo "$wasm_gz/1000" | bc -l)")
  echo "$line" | tee -a "$sizes"
done
echo "sizes: $sizes"
