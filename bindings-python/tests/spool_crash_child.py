"""The child process of ``test_spool_crash.py`` (not a test module): tracks the event
indices ``start..stop`` through a client with a disk spool, printing ``accepted <index>``
for each one ``track()`` accepted (line-buffered, so each line is out before the next
``track()``), then flushes and prints ``spool_length <n>``.

Usage: ``python spool_crash_child.py <api_key> <endpoint> <spool_dir> <event_type> <start> <stop>``
"""

from __future__ import annotations

import sys

import meterline


def event_id(index: int) -> str:
    return f"spool-{index:06d}"


def main(argv: list[str]) -> int:
    api_key, endpoint, spool_dir, event_type, start, stop = argv
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    client = meterline.Client(
        api_key,
        endpoint,
        source="python-spool-crash",
        fetch_schemas=False,
        stream=False,
        flush_interval=0.05,
        max_in_flight=4,
        spool_dir=spool_dir,
        spool_fsync="never",
    )
    print(f"replaying {client.stats().spool_length}")
    for index in range(int(start), int(stop)):
        client.track(event_type, f"customer-{index % 31}", {"i": index}, id=event_id(index))
        print(f"accepted {index}")
    client.flush(timeout=120)
    print(f"spool_length {client.stats().spool_length}")
    client.shutdown(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
