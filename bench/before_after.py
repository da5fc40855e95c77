"""The Python half of scripts/bench-before-after.sh: per-call cost of ``Client.track()`` with
a schema and of an entitlement cache hit, for whichever ``meterline`` the running interpreter
has (the script runs it once with an old build, once with a new one). A benchmark script,
not a test.

    target/before-after/venv-new/bin/python bench/before_after.py [--calls 200000]

Written against the API both sides have (``Client(api_key, endpoint, **options)``, local
``schemas``, ``prime_entitlements``), so the measured calls are the same on both:

* **track** — ``track("api.call", "customer-42", {"i": i, "model": ..., "tokens": 1234})``
  (the event of bench/python_peers.py), validated against a local JSON Schema for
  ``api.call``. The endpoint is a socket on 127.0.0.1 that accepts connections and never
  answers, with a request timeout of an hour: the sender forms at most ``max_in_flight``
  batches and then waits, so no retry policy (which the two sides may spell differently)
  runs beside the calls. The queue holds every event of the run (nothing dropped).
* **cached_entitlement** / **entitlement** — one hot subject primed with
  ``prime_entitlements`` (the payload of bench/python_entitlement.py), every call a hit.

Each figure: a warm-up of 20,000 calls, then 3 rounds of ``--calls`` calls, the median of the
wall time per call; for ``track`` also the calling thread's CPU time per call. Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import time

import meterline

KEY = "ml_sk_bench_0123456789abcdef0123"
SCHEMA = {
    "type": "object",
    "properties": {
        "i": {"type": "integer", "minimum": 0},
        "model": {"type": "string", "enum": ["m-small", "m-large"]},
        "tokens": {"type": "integer", "minimum": 0},
    },
    "required": ["i", "model", "tokens"],
    "additionalProperties": False,
}
PROPS = {"model": "m-large", "tokens": 1234}
PAYLOAD = {
    "subject": "customer-42",
    "version": 1,
    "ttl_ms": 3_600_000,
    "entitlements": {
        "sso": {"kind": "boolean", "has_access": True},
        "tier": {"kind": "config", "has_access": True, "value": {"seats": 10}},
    },
}
WARMUP = 20_000
ROUNDS = 3


def rounds(run: object, n: int) -> dict[str, float]:
    """Median wall and calling-thread CPU ns per call over ROUNDS runs of ``run(n)``."""
    run(WARMUP)  # type: ignore[operator]
    wall, cpu = [], []
    for _ in range(ROUNDS):
        w, c = time.perf_counter_ns(), time.thread_time_ns()
        run(n)  # type: ignore[operator]
        cpu.append((time.thread_time_ns() - c) / n)
        wall.append((time.perf_counter_ns() - w) / n)
    return {"ns": round(statistics.median(wall), 1), "cpu_ns": round(statistics.median(cpu), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    n = parser.parse_args().calls

    black_hole = socket.create_server(("127.0.0.1", 0), backlog=64)  # never accepted
    endpoint = f"http://127.0.0.1:{black_hole.getsockname()[1]}"
    client = meterline.Client(
        KEY,
        endpoint,
        schemas={"api.call": SCHEMA},
        fetch_schemas=False,
        stream=False,
        flush_at=10_000,
        flush_interval=3600,
        request_timeout=3600,
        max_queue_size=WARMUP + ROUNDS * n + 50_000,
    )
    track = client.track
    try:
        track("api.call", "customer-42", {"i": -1, **PROPS})
    except meterline.ValidationError:
        pass
    else:
        raise SystemExit("the schema did not refuse i = -1: is it applied?")

    def track_calls(k: int) -> None:
        for i in range(k):
            track("api.call", "customer-42", {"i": i, **PROPS})

    def empty(k: int) -> None:
        for _ in range(k):
            pass

    client.prime_entitlements(PAYLOAD)
    entitlement, cached = client.entitlement, client.cached_entitlement
    assert cached("customer-42", "sso").source == "cache"

    def cached_hit(k: int) -> None:
        for _ in range(k):
            cached("customer-42", "sso")

    def sync_hit(k: int) -> None:
        for _ in range(k):
            entitlement("customer-42", "sso")

    out = {
        "version": meterline.__version__,
        "track": rounds(track_calls, n),
        "cached_entitlement": rounds(cached_hit, n),
        "entitlement": rounds(sync_hit, n),
        "bare_loop": rounds(empty, n),
    }
    stats = client.stats()
    assert stats.dropped == 0 and stats.enqueued == WARMUP + ROUNDS * n, stats
    # Nothing was answered, so the rest is dropped: a TimeoutError on one side, none on the other.
    with contextlib.suppress(Exception):
        client.shutdown(timeout=0.1)
    black_hole.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
