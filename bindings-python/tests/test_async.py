"""AsyncClient on asyncio: awaiting never blocks the event loop."""

from __future__ import annotations

import asyncio

import pytest

import meterline

from support import Server

KEY = "ml_sk_test_0123456789abcdef0123"


def test_async_round_trip(server: Server, subject: str) -> None:
    async def main() -> list[str]:
        async with meterline.AsyncClient(server.secret_key, server.endpoint) as client:
            ids = [client.track("api.call", subject, {"i": i}) for i in range(100)]
            await client.flush(timeout=10)
            assert client.stats().sent == 100
        assert client.closed
        with pytest.raises(meterline.ClosedError):
            client.track("api.call", subject, {})
        return ids

    ids = asyncio.run(main())
    assert [e["id"] for e in server.events(subject=subject)] == ids


async def _count_ticks_during(awaitable: object) -> tuple[int, BaseException | None]:
    ticks = 0
    running = True

    async def ticker() -> None:
        nonlocal ticks
        while running:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    error: BaseException | None = None
    try:
        await awaitable  # type: ignore[misc]
    except BaseException as e:
        error = e
    running = False
    await task
    return ticks, error


def test_flush_never_blocks_the_event_loop(black_hole: str) -> None:
    async def main() -> None:
        client = meterline.AsyncClient(KEY, black_hole, fetch_schemas=False)
        client.track("api.call", "c1", {})
        ticks, error = await _count_ticks_during(client.flush(timeout=0.5))
        assert isinstance(error, meterline.TimeoutError)
        assert ticks > 10, f"the loop ran only {ticks} ticks during a 0.5 s flush"
        ticks, error = await _count_ticks_during(client.shutdown(timeout=0.3))
        assert isinstance(error, meterline.TimeoutError)
        assert ticks > 5

    asyncio.run(main())


def test_asyncio_concurrency(server: Server, subject: str) -> None:
    async def worker(client: meterline.AsyncClient, n: int) -> None:
        for i in range(20):
            client.track("api.call", subject, {"worker": n, "i": i})
            if i % 5 == 0:
                await asyncio.sleep(0)
        await client.flush(timeout=20)

    async def main() -> meterline.Stats:
        async with meterline.AsyncClient(
            server.secret_key, server.endpoint, flush_at=100
        ) as client:
            await asyncio.gather(*(worker(client, n) for n in range(50)))
            return client.stats()

    stats = asyncio.run(main())
    stored = server.events(subject=subject)
    assert len(stored) == 1000 and len({e["id"] for e in stored}) == 1000
    assert stats.sent == 1000


def test_cancelled_flush_leaves_the_client_working(server: Server, subject: str) -> None:
    async def main() -> None:
        async with meterline.AsyncClient(server.secret_key, server.endpoint) as client:
            task = asyncio.ensure_future(client.flush())
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            client.track("api.call", subject, {})
            await client.flush(timeout=10)

    asyncio.run(main())
    assert len(server.events(subject=subject)) == 1


def test_flushes_from_several_event_loops_in_threads(server: Server, subject: str) -> None:
    import threading

    client = meterline.AsyncClient(server.secret_key, server.endpoint)

    def in_thread(n: int) -> None:
        async def main() -> None:
            client.track("api.call", subject, {"n": n})
            await client.flush(timeout=10)

        asyncio.run(main())

    threads = [threading.Thread(target=in_thread, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    asyncio.run(client.shutdown(timeout=10))
    assert sorted(e["data"]["n"] for e in server.events(subject=subject)) == [0, 1, 2, 3]
