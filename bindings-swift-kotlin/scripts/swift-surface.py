#!/usr/bin/env python3
"""The public surface of the generated Swift module: every `public`/`open` declaration of
swift/Sources/Meterline/Meterline.swift (scripts/uniffi-generate.sh writes it), one per line,
without bodies, in file order.

No Swift toolchain exists on these machines, so the Swift tests cannot run here; comparing
this surface with the checked-in swift/api.golden.txt makes any change to the Swift API
visible in review. `--check` fails (printing a diff) when they differ; without it the golden
file is rewritten.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]
SOURCE = PKG / "swift" / "Sources" / "Meterline" / "Meterline.swift"
GOLDEN = PKG / "swift" / "api.golden.txt"
DECL = re.compile(r"^\s*(public|open)\s")


def surface(text: str) -> str:
    out = []
    for line in text.splitlines():
        if DECL.match(line):
            line = line.split("{", 1)[0].strip()
            out.append(re.sub(r"\s+", " ", line))
    return "\n".join(out) + "\n"


def main() -> int:
    if not SOURCE.exists():
        print(f"{SOURCE} not found: run scripts/uniffi-generate.sh first")
        return 1
    got = surface(SOURCE.read_text())
    if sys.argv[1:] == ["--check"]:
        want = GOLDEN.read_text() if GOLDEN.exists() else ""
        if got != want:
            sys.stdout.writelines(
                difflib.unified_diff(
                    want.splitlines(True), got.splitlines(True), str(GOLDEN.name), "generated"
                )
            )
            print(
                "the generated Swift API differs from swift/api.golden.txt; if the change is "
                "meant, run bindings-swift-kotlin/scripts/swift-surface.py and commit the file"
            )
            return 1
        print(f"Swift public surface: {got.count(chr(10))} declarations, as checked in")
        return 0
    GOLDEN.write_text(got)
    print(f"wrote {GOLDEN.relative_to(PKG.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
