#!/usr/bin/env python3
"""Routes the generated Kotlin `Client.track()` through the packed lane (TrackLane.kt,
src/lean.rs; docs/decisions.md, "Kotlin `track()`: one packed call"). The public API is
unchanged: only the body of the generated method is replaced, and the class gets
`callWithBorrowedHandle`, the generated `callWithHandle` without the handle clone (the packed
call borrows the handle; the call counter keeps the object alive meanwhile).

    lean-track.py FILE        rewrites FILE (uniffi's generated dev/meterline/meterline.kt)
    lean-track.py --check FILE   fails unless FILE was rewritten

Fails, naming what it did not find, when uniffi's output no longer has the expected shape
(a new uniffi version): the lane must then be looked at again, never silently dropped.
"""

from __future__ import annotations

import pathlib
import re
import sys

MARK = "// meterline: track() through the packed lane (scripts/lean-track.py)"
LANE_CALL = "TrackLane.track(it, `type`, `subject`, `data`, `id`, `time`)"


def block_end(text: str, open_brace: int) -> int:
    """Index just past the brace that closes the one at `open_brace`."""
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    raise SystemExit("lean-track: unbalanced braces in the generated Kotlin")


def only(
    pattern: str, text: str, what: str, start: int = 0, end: int | None = None
) -> re.Match[str]:
    found = list(re.compile(pattern).finditer(text, start, len(text) if end is None else end))
    if len(found) != 1:
        raise SystemExit(
            f"lean-track: expected one {what} in the generated Kotlin, found {len(found)}"
        )
    return found[0]


def rewrite(text: str) -> str:
    cls = only(r"\nopen class Client\s*:[^{]*\{", text, "`open class Client`")
    cls_end = block_end(text, cls.end() - 1)
    # callWithBorrowedHandle: a copy of callWithHandle that passes the handle itself.
    call = only(
        r"\n    internal inline fun <R> callWithHandle\(",
        text,
        "`callWithHandle`",
        cls.end(),
        cls_end,
    )
    call_end = block_end(text, text.index("{", call.end()))
    original = text[call.start() : call_end]
    if original.count("block(this.uniffiCloneHandle())") != 1:
        raise SystemExit(
            "lean-track: `callWithHandle` no longer calls block(this.uniffiCloneHandle())"
        )
    borrowed = original.replace("callWithHandle(", "callWithBorrowedHandle(").replace(
        "block(this.uniffiCloneHandle())", "block(this.handle)"
    )
    borrowed = f"\n\n    {MARK}: callWithHandle, the handle borrowed, not cloned{borrowed}"
    # track(): its body becomes one call into the lane.
    track = only(
        r"override fun `track`\(`type`: kotlin\.String, `subject`: kotlin\.String, "
        r"`data`: kotlin\.String, "
        r"`id`: kotlin\.String\?, `time`: kotlin\.String\?\)\s*: kotlin\.String\? \{",
        text,
        "`override fun track(type, subject, data, id, time): String?`",
        cls.end(),
        cls_end,
    )
    track_end = block_end(text, track.end() - 1)
    body = f"\n        {MARK}\n        return callWithBorrowedHandle {{ {LANE_CALL} }}\n    }}"
    if track.start() < call_end:
        raise SystemExit(
            "lean-track: `track` no longer follows `callWithHandle` in the generated Kotlin"
        )
    text = text[: track.end()] + body + text[track_end:]
    return text[:call_end] + borrowed + text[call_end:]


def main() -> None:
    args = sys.argv[1:]
    check = args[:1] == ["--check"]
    path = pathlib.Path(args[-1])
    text = path.read_text()
    if check:
        if text.count(MARK) != 2:
            raise SystemExit(f"lean-track: {path} does not route track() through the packed lane")
        return
    if MARK in text:
        raise SystemExit(f"lean-track: {path} was rewritten already")
    path.write_text(rewrite(text))


if __name__ == "__main__":
    main()
