#!/usr/bin/env python3
"""Where a meterline-web bundle's bytes go: per crate and per function, from a .wasm that
still has its `name` section (the table in bindings-wasm/README.md, "Bundle size").

    scripts/browser-size-breakdown.py NAMED.wasm [STRIPPED.wasm] [--functions N]

NAMED.wasm: the bundle's wasm with names kept, e.g. after `make browser`:
    target/tools/bin/wasm-bindgen --target web --out-dir /tmp/b --no-typescript \
        target/wasm/wasm32-unknown-unknown/wasm-release/meterline_wasm.wasm
    bindings-wasm/node_modules/.bin/wasm-opt -Oz -g --enable-bulk-memory \
        --enable-nontrapping-float-to-int --enable-sign-ext --enable-reference-types \
        --enable-multivalue --enable-mutable-globals --enable-simd \
        -o /tmp/b/named.wasm /tmp/b/meterline_wasm_bg.wasm
(the uplifted .wasm is the variant `make browser` built last: full). STRIPPED.wasm (the
shipped one, `dist/<build>/meterline_wasm_bg.wasm`) gives the gzipped total the shares are
scaled to. Each function counts for the crate of its outermost path (generic code for the
crate defining the function); each crate's code is gzipped alone and scaled so the parts add
up to the whole. Names are demangled with LLVM's llvm-cxxfilt.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import pathlib
import re
import shutil
import subprocess
import sys

PRIMITIVES = {"str", "u8", "u16", "u32", "u64", "u128", "i32", "i64", "usize", "isize"}
PRIMITIVES |= {"char", "f32", "f64", "bool", "T", "dyn"}


def leb(b: bytes, i: int) -> tuple[int, int]:
    """An unsigned LEB128 at `i`: (value, next offset)."""
    value = shift = 0
    while True:
        x = b[i]
        i += 1
        value |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return value, i


def skip_limits(b: bytes, j: int) -> int:
    flags = b[j]
    j += 1
    _, j = leb(b, j)
    return leb(b, j)[1] if flags & 1 else j


def parse(path: pathlib.Path) -> tuple[list[tuple[str, bytes]], bytes]:
    """The module's functions (name, body) and its data section's bytes."""
    b = path.read_bytes()
    if b[:4] != b"\0asm":
        sys.exit(f"{path}: not a WebAssembly module")
    i, imported, bodies, names, data = 8, 0, [], {}, b""
    while i < len(b):
        section = b[i]
        size, i = leb(b, i + 1)
        end = i + size
        if section == 2:  # imports: imported functions take the first indices
            count, j = leb(b, i)
            for _ in range(count):
                for _ in range(2):
                    n, j = leb(b, j)
                    j += n
                kind = b[j]
                j += 1
                if kind == 0:
                    _, j = leb(b, j)
                    imported += 1
                elif kind == 1:
                    j = skip_limits(b, j + 1)
                elif kind == 2:
                    j = skip_limits(b, j)
                elif kind == 3:
                    j += 2
                elif kind == 4:
                    _, j = leb(b, j + 1)
        elif section == 10:
            count, j = leb(b, i)
            for _ in range(count):
                n, j = leb(b, j)
                bodies.append(b[j : j + n])
                j += n
        elif section == 11:
            data = b[i:end]
        elif section == 0:
            n, j = leb(b, i)
            if b[j : j + n] == b"name":
                j += n
                while j < end:
                    sub = b[j]
                    n, j = leb(b, j + 1)
                    if sub == 1:
                        count, k = leb(b, j)
                        for _ in range(count):
                            index, k = leb(b, k)
                            n2, k = leb(b, k)
                            names[index] = b[k : k + n2].decode("utf-8", "replace")
                            k += n2
                    j += n
        i = end
    if not names:
        sys.exit(f"{path}: no name section (keep it: wasm-opt -g, not --strip-debug)")
    raw = [names.get(imported + k, f"func{imported + k}") for k in range(len(bodies))]
    return list(zip(demangle(raw), bodies, strict=True)), data


def demangle(names: list[str]) -> list[str]:
    tool = shutil.which("llvm-cxxfilt") or "/usr/lib/llvm-22/bin/llvm-cxxfilt"
    text = "\n".join(names) + "\n"
    out = subprocess.run([tool], input=text, capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")[: len(names)]
    plain = [re.sub(r"\[[0-9a-f]{12,16}\]", "", n) for n in lines]
    return [p or n for p, n in zip(plain, names, strict=True)]


def crate_of(name: str) -> str:
    if "::" not in name and not name.startswith("<"):
        return "wasm-bindgen export shims"
    n = name
    while m := re.match(r"^(<|&|\*|mut |const |dyn |\[|\()", n):
        n = n[m.end() :]
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", n)
    crate = m.group(0) if m else name
    if crate in PRIMITIVES:
        return "core"
    return "serde" if crate == "serde_core" else crate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("named", type=pathlib.Path)
    ap.add_argument("stripped", type=pathlib.Path, nargs="?")
    ap.add_argument("--functions", type=int, default=25, help="largest functions listed")
    args = ap.parse_args()
    funcs, data = parse(args.named)
    total_gz = len(gzip.compress((args.stripped or args.named).read_bytes(), 9)) / 1000
    by_crate: dict[str, list[bytes]] = collections.defaultdict(list)
    for name, body in funcs:
        by_crate[crate_of(name)].append(body)
    gz = {c: len(gzip.compress(b"".join(v), 9)) for c, v in by_crate.items()}
    gz_data = len(gzip.compress(data, 9))
    scale = total_gz / (sum(gz.values()) + gz_data)
    code = sum(len(b) for _, b in funcs)
    print(f"{len(funcs)} functions, {code:,} code bytes, {len(data):,} data bytes")
    print(f"| part | functions | raw bytes | ≈ KB gzipped | share of {total_gz:.1f} KB |")
    print("|---|---:|---:|---:|---:|")
    for crate in sorted(by_crate, key=lambda c: -gz[c]):
        kb = gz[crate] * scale
        raw = sum(map(len, by_crate[crate]))
        share = 100 * kb / total_gz
        print(f"| `{crate}` | {len(by_crate[crate])} | {raw:,} | {kb:.1f} | {share:.1f} % |")
    kb = gz_data * scale
    print(f"| data segments | - | {len(data):,} | {kb:.1f} | {100 * kb / total_gz:.1f} % |")
    print("\nlargest functions (raw bytes):")
    for name, body in sorted(funcs, key=lambda f: -len(f[1]))[: args.functions]:
        print(f"{len(body):8,}  {name[:150]}")


if __name__ == "__main__":
    main()
