"""Lifecycle at interpreter exit: pending events are delivered (atexit), in real subprocesses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from support import Server


def run(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_exit_flushes_pending_events(server: Server, subject: str) -> None:
    done = run(
        f"""
        import meterline
        key, endpoint = {server.secret_key!r}, {server.endpoint!r}
        client = meterline.Client(key, endpoint, flush_interval=3600.0)
        for i in range(50):
            client.track("api.call", {subject!r}, {{"i": i}})
        print(client.stats().sent)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"  # nothing was sent before exit
    assert sorted(e["data"]["i"] for e in server.events(subject=subject)) == list(range(50))


def test_exit_flushes_async_and_several_clients(server: Server, subject: str) -> None:
    done = run(
        f"""
        import asyncio, meterline
        key, endpoint = {server.secret_key!r}, {server.endpoint!r}
        a = meterline.Client(key, endpoint, flush_interval=3600.0)
        b = meterline.Client(key, endpoint, flush_interval=3600.0)
        async def main():
            c = meterline.AsyncClient(key, endpoint, flush_interval=3600.0)
            c.track("api.call", {subject!r}, {{"by": "async"}})
            return c
        keep = asyncio.run(main())
        a.track("api.call", {subject!r}, {{"by": "a"}})
        b.track("api.call", {subject!r}, {{"by": "b"}})
        """
    )
    assert done.returncode == 0, done.stderr
    assert sorted(e["data"]["by"] for e in server.events(subject=subject)) == ["a", "async", "b"]


def test_exit_with_unreachable_server_is_bounded(black_hole: str) -> None:
    started = time.monotonic()
    done = run(
        f"""
        import meterline
        meterline._lifecycle.EXIT_TIMEOUT = 1.0
        key = "ml_sk_test_0123456789abcdef0123"
        client = meterline.Client(key, {black_hole!r}, fetch_schemas=False)
        client.track("api.call", "c1", {{}})
        """
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 20
    assert "pending events not delivered at exit" in done.stderr


def test_exit_after_explicit_shutdown_and_gc(server: Server, subject: str) -> None:
    done = run(
        f"""
        import gc, meterline
        key, endpoint = {server.secret_key!r}, {server.endpoint!r}
        with meterline.Client(key, endpoint) as client:
            client.track("api.call", {subject!r}, {{"n": 1}})
        other = meterline.Client(key, endpoint, flush_interval=3600.0)
        other.track("api.call", {subject!r}, {{"n": 2}})
        del other
        gc.collect()  # a dropped client delivers what it held
        """
    )
    assert done.returncode == 0, done.stderr
    assert sorted(e["data"]["n"] for e in server.events(subject=subject)) == [1, 2]
