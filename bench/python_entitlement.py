"""Per-call cost of an entitlement cache hit from Python (sync ``Client.entitlement``,
``cached_entitlement``, async ``await AsyncClient.entitlement``), plus reading a field. A
benchmark script, not a test.

    bindings-python/.venv/bin/python bench/python_entitlement.py [--calls 1000000]

(`scripts/test-python.sh` creates that venv with meterline installed.) The cache is primed
with ``prime_entitlements`` (the server's JSON body), so every call is a hit and no server
is needed; the endpoint is a port nobody listens on and the stream is off. Each figure is
the median of 5 runs of ``N`` calls (wall time / N), with the bare Python loop's cost
reported separately (not subtracted).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import meterline

KEY = "ml_sk_bench_0123456789abcdef0123"
PAYLOAD = {
    "subject": "customer-42",
    "version": 1,
    "ttl_ms": 3_600_000,
    "entitlements": {
        "sso": {"kind": "boolean", "has_access": True},
        "tier": {"kind": "config", "has_access": True, "value": {"seats": 10}},
    },
}


def median_ns(run: object, n: int, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        run(n)  # type: ignore[operator]
        times.append((time.perf_counter_ns() - t) / n)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000)
    n = parser.parse_args().calls

    client = meterline.Client(KEY, "http://127.0.0.1:9", fetch_schemas=False, stream=False)
    client.prime_entitlements(PAYLOAD)
    entitlement, cached = client.entitlement, client.cached_entitlement
    assert entitlement("customer-42", "sso").source == "cache"

    def empty(k: int) -> None:
        for _ in range(k):
            pass

    def sync_hit(k: int) -> None:
        for _ in range(k):
            entitlement("customer-42", "sso")

    def sync_hit_field(k: int) -> None:
        for _ in range(k):
            _ = entitlement("customer-42", "sso").has_access

    def cached_hit(k: int) -> None:
        for _ in range(k):
            cached("customer-42", "sso")

    rows = [
        ("bare Python loop", median_ns(empty, n)),
        ("Client.entitlement (hit)", median_ns(sync_hit, n)),
        ("Client.entitlement (hit) + .has_access", median_ns(sync_hit_field, n)),
        ("Client.cached_entitlement (hit)", median_ns(cached_hit, n)),
    ]

    async def async_rows() -> list[tuple[str, float]]:
        aclient = meterline.AsyncClient(
            KEY, "http://127.0.0.1:9", fetch_schemas=False, stream=False
        )
        aclient.prime_entitlements(PAYLOAD)
        aent = aclient.entitlement
        assert (await aent("customer-42", "sso")).source == "cache"

        async def ahit(k: int) -> None:
            for _ in range(k):
                await aent("customer-42", "sso")

        async def acoro(k: int) -> None:
            async def nothing() -> None:
                return None

            for _ in range(k):
                await nothing()

        out = []
        for name, fn in (
            ("await of an empty coroutine", acoro),
            ("await AsyncClient.entitlement (hit)", ahit),
        ):
            times = []
            for _ in range(5):
                t = time.perf_counter_ns()
                await fn(n)
                times.append((time.perf_counter_ns() - t) / n)
            out.append((name, statistics.median(times)))
        await aclient.shutdown(timeout=0.1)
        return out

    rows += asyncio.run(async_rows())
    client.shutdown(timeout=0.1)
    print(f"entitlement cache hit, {n:,} calls, median of 5 (ns/call):")
    for name, ns in rows:
        print(f"  {name:<42} {ns:8.0f}")


if __name__ == "__main__":
    main()
