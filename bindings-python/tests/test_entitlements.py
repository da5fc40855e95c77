"""entitlement(), cached_entitlement(), customer_token(), prime_entitlements() and the
stream callbacks against the real meterline-server (catalog made through /v1/admin)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import meterline

from support import Server, start_server, wait_until


@dataclass
class Catalog:
    """Features and plans made for one test (unique keys: the server is shared)."""

    sso: str
    calls: str
    tier: str
    event_type: str
    free: str
    pro: str


def make_catalog(
    server: Server, *, limit: int = 5, thresholds: list[float] | None = None
) -> Catalog:
    tag = uuid.uuid4().hex[:10]
    c = Catalog(
        sso=f"sso_{tag}",
        calls=f"calls_{tag}",
        tier=f"tier_{tag}",
        event_type=f"api.call.{tag}",
        free=f"free_{tag}",
        pro=f"pro_{tag}",
    )
    ak = server.admin_key
    server.request("PUT", f"/v1/admin/features/{c.sso}", {"kind": "boolean"}, key=ak)
    server.request(
        "PUT",
        f"/v1/admin/features/{c.calls}",
        {"kind": "metered", "event_type": c.event_type},
        key=ak,
    )
    server.request("PUT", f"/v1/admin/features/{c.tier}", {"kind": "config"}, key=ak)
    calls: dict[str, Any] = {"limit": limit}
    if thresholds is not None:
        calls["thresholds"] = thresholds
    server.request(
        "PUT",
        f"/v1/admin/plans/{c.free}",
        {"features": {c.calls: calls, c.tier: {"value": {"seats": 1}}}},
        key=ak,
    )
    server.request(
        "PUT",
        f"/v1/admin/plans/{c.pro}",
        {"features": {c.sso: {}, c.calls: calls, c.tier: {"value": {"seats": 10}}}},
        key=ak,
    )
    return c


def set_plan(server: Server, subject: str, plan: str) -> None:
    server.request("PUT", f"/v1/admin/customers/{subject}", {"plan": plan}, key=server.admin_key)


def refused_endpoint() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def client(server: Server) -> Iterator[meterline.Client]:
    with meterline.Client(server.secret_key, server.endpoint, fetch_schemas=False) as c:
        yield c


def test_round_trip_of_every_kind_fresh_then_cache(
    server: Server, subject: str, client: meterline.Client
) -> None:
    cat = make_catalog(server, limit=5)
    set_plan(server, subject, cat.pro)

    sso = client.entitlement(subject, cat.sso)
    assert (sso.subject, sso.feature, sso.kind, sso.has_access) == (
        subject,
        cat.sso,
        "boolean",
        True,
    )
    assert (sso.source, sso.reason) == ("fresh", None)
    assert isinstance(sso.version, int)

    calls = client.entitlement(subject, cat.calls)
    assert (calls.kind, calls.has_access, calls.source) == ("metered", True, "cache")
    assert (calls.limit, calls.usage, calls.remaining) == (5, 0, 5)
    assert calls.period_end is not None and calls.period_end.endswith("Z")

    tier = client.entitlement(subject, cat.tier)
    assert (tier.kind, tier.has_access, tier.value) == ("config", True, {"seats": 10})

    missing = client.entitlement(subject, "not_a_feature")
    assert (missing.kind, missing.has_access, missing.reason) == (
        None,
        False,
        "feature not in plan",
    )

    again = client.entitlement(subject, cat.sso)
    assert again.source == "cache"
    assert again != sso and again.to_dict() == {**sso.to_dict(), "source": "cache"}
    assert "has_access=True" in repr(again)
    with pytest.raises(AttributeError):
        again.has_access = False  # type: ignore[misc]
    # The cache answers never-waiting calls too.
    assert client.cached_entitlement(subject, cat.calls).source == "cache"
    stats = client.stats()
    assert stats.cache_misses == 1, stats
    assert stats.cache_hits >= 5, stats
    assert (stats.stale_answers, stats.fallback_answers) == (0, 0)


def test_a_plan_change_reaches_the_client_over_the_stream(server: Server, subject: str) -> None:
    cat = make_catalog(server)
    set_plan(server, subject, cat.free)
    changes: list[tuple[bool, str]] = []
    with meterline.Client(
        server.secret_key,
        server.endpoint,
        fetch_schemas=False,
        on_connection_change=lambda up, why: changes.append((up, why)),
    ) as client:
        before = client.entitlement(subject, cat.sso)
        assert (before.has_access, before.reason) == (False, "feature not in plan")
        assert wait_until(lambda: (True, "connected") in changes, timeout=20), changes
        assert wait_until(lambda: client.stats().stream_connected, timeout=20)
        set_plan(server, subject, cat.pro)
        # The cache is updated by the stream: no fetch happens (the TTL is a minute).
        assert wait_until(
            lambda: client.cached_entitlement(subject, cat.sso).has_access, timeout=20
        )
        after = client.entitlement(subject, cat.sso)
        assert (after.source, after.kind) == ("cache", "boolean")
        assert after.version is not None and before.version is not None
        assert after.version > before.version
        assert client.entitlement(subject, cat.tier).value == {"seats": 10}
        assert client.stats().cache_misses == 1


def test_tracked_usage_cuts_access_locally_and_thresholds_are_reported(
    server: Server, subject: str
) -> None:
    cat = make_catalog(server, limit=3, thresholds=[0.5, 1.0])
    set_plan(server, subject, cat.pro)
    crossings: list[meterline.UsageThreshold] = []
    with meterline.Client(
        server.secret_key,
        server.endpoint,
        fetch_schemas=False,
        flush_interval=3600.0,
        on_usage_threshold=crossings.append,
    ) as client:
        assert client.entitlement(subject, cat.calls).remaining == 3
        assert wait_until(lambda: client.stats().stream_connected, timeout=20)
        for i in range(3):
            client.track(cat.event_type, subject, {"i": i})
        # Counted locally at once: no round trip, nothing delivered yet.
        local = client.entitlement(subject, cat.calls)
        assert (local.has_access, local.usage, local.remaining) == (False, 3, 0)
        assert client.stats().sent == 0
        client.flush(timeout=10)
        assert wait_until(lambda: any(c.threshold == 1.0 for c in crossings), timeout=20), crossings
        full = next(c for c in crossings if c.threshold == 1.0)
        assert (full.subject, full.feature, full.limit, full.usage) == (subject, cat.calls, 3, 3)
        assert isinstance(full.seq, int)
        with pytest.raises(AttributeError):
            full.usage = 0  # type: ignore[misc]
        # The server's count agrees once it has the events.
        assert not client.entitlement(subject, cat.calls).has_access


def test_an_unreachable_server_gives_the_configured_fallbacks_with_the_reason() -> None:
    fallbacks = {
        "features": {"sso": True, "tier": {"value": {"seats": 1}}, "calls": {"limit": 10}},
        "default": False,
    }
    with meterline.Client(
        "ml_sk_test_0123456789abcdef0123",
        refused_endpoint(),
        fetch_schemas=False,
        fallbacks=fallbacks,
    ) as client:
        sso = client.entitlement("c1", "sso")
        assert (sso.source, sso.has_access, sso.kind, sso.version) == (
            "fallback",
            True,
            "boolean",
            None,
        )
        assert sso.reason is not None and sso.reason.startswith("server unreachable"), sso.reason
        tier = client.entitlement("c1", "tier")
        assert (tier.kind, tier.has_access, tier.value) == ("config", True, {"seats": 1})
        calls = client.entitlement("c1", "calls")
        assert (calls.kind, calls.has_access, calls.limit) == ("metered", True, 10)
        other = client.entitlement("c1", "anything")
        assert (other.kind, other.has_access) == ("boolean", False)
        assert client.stats().fallback_answers == 4
        client.shutdown(timeout=0.1)


def test_without_fallbacks_the_answer_is_deny() -> None:
    with meterline.Client(
        "ml_sk_test_0123456789abcdef0123", refused_endpoint(), fetch_schemas=False
    ) as client:
        a = client.entitlement("c1", "sso")
        assert (a.source, a.has_access, a.kind) == ("fallback", False, None)


def test_cached_answers_are_served_stale_after_the_server_goes_away(tmp_path: Path) -> None:
    own = start_server(tmp_path)
    try:
        subject = f"cust-{uuid.uuid4().hex[:8]}"
        cat = make_catalog(own)
        set_plan(own, subject, cat.pro)
        client = meterline.Client(
            own.secret_key, own.endpoint, fetch_schemas=False, max_ttl=0.2, stream=False
        )
        assert client.entitlement(subject, cat.sso).source == "fresh"
    finally:
        own.process.terminate()
        own.process.wait(timeout=10)
    # Past the (capped) TTL the answer is served stale while revalidation fails.
    assert wait_until(lambda: client.entitlement(subject, cat.sso).source == "stale", timeout=10)
    answer = client.entitlement(subject, cat.sso)
    assert (answer.source, answer.has_access, answer.kind) == ("stale", True, "boolean")
    assert wait_until(
        lambda: (client.entitlement(subject, cat.sso).reason or "").startswith(
            "server unreachable"
        ),
        timeout=10,
    ), client.entitlement(subject, cat.sso)
    assert client.stats().stale_answers >= 2
    client.shutdown(timeout=0.1)


def test_10000_concurrent_awaits_share_fetches_and_the_loop_stays_responsive(
    server: Server,
) -> None:
    cat = make_catalog(server)
    subjects = [f"cust-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    for s in subjects:
        set_plan(server, s, cat.pro)

    async def main() -> None:
        ticks = 0
        running = True

        async def ticker() -> None:
            nonlocal ticks
            while running:
                ticks += 1
                await asyncio.sleep(0.001)

        async with meterline.AsyncClient(
            server.secret_key, server.endpoint, fetch_schemas=False, stream=False
        ) as client:
            task = asyncio.create_task(ticker())
            await asyncio.sleep(0.01)
            ticks_before = ticks
            calls = [client.entitlement(subjects[i % 5], cat.sso) for i in range(10_000)]
            answers = await asyncio.gather(*calls)
            running = False
            await task
            assert len(answers) == 10_000
            assert all(a.has_access and a.kind == "boolean" for a in answers)
            assert {a.subject for a in answers} == set(subjects)
            stats = client.stats()
            assert stats.cache_hits + stats.cache_misses == 10_000
            # A miss per coroutine that ran before its subject's single fetch landed (they
            # all joined that one flight); once landed, every later call is a hit. Generous:
            # the first steps of 10,000 coroutines take far longer than one local fetch.
            assert stats.cache_misses < 5_000, stats
            assert stats.fallback_answers == 0, stats
            assert ticks > ticks_before, "the ticker never ran while 10,000 awaits were pending"
            # A second round is all cache hits, answered without a thread hop.
            again = await asyncio.gather(*(client.entitlement(s, cat.sso) for s in subjects * 200))
            assert {a.source for a in again} == {"cache"}
            assert client.stats().cache_misses == stats.cache_misses

    asyncio.run(main())


def test_async_miss_does_not_block_the_loop(black_hole: str) -> None:
    async def main() -> None:
        client = meterline.AsyncClient(
            "ml_sk_test_0123456789abcdef0123",
            black_hole,
            fetch_schemas=False,
            entitlement_timeout=0.5,
        )
        ticks = 0
        running = True

        async def ticker() -> None:
            nonlocal ticks
            while running:
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        answer = await client.entitlement("c1", "sso")
        running = False
        await task
        assert (answer.source, answer.reason) == ("fallback", "timeout after 500ms")
        assert ticks > 10, f"the loop ran only {ticks} ticks during a 0.5 s entitlement wait"
        # Never waits: the fallback for a subject not cached.
        quick = client.cached_entitlement("c2", "sso")
        assert quick.source == "fallback"
        await client.shutdown(timeout=0.1)

    asyncio.run(main())


def test_sync_miss_releases_the_gil(black_hole: str) -> None:
    client = meterline.Client(
        "ml_sk_test_0123456789abcdef0123", black_hole, fetch_schemas=False, entitlement_timeout=0.5
    )
    counted = 0
    done = threading.Event()

    def spin() -> None:
        nonlocal counted
        while not done.is_set():
            counted += 1

    t = threading.Thread(target=spin)
    t.start()
    answer = client.entitlement("c1", "sso")
    done.set()
    t.join()
    assert answer.source == "fallback"
    assert counted > 1000, f"another thread ran only {counted} loops during a 0.5 s wait"
    client.shutdown(timeout=0.1)


def test_customer_tokens_let_a_publishable_key_read_its_own_subject(
    server: Server, subject: str, client: meterline.Client
) -> None:
    cat = make_catalog(server)
    set_plan(server, subject, cat.pro)
    pk = server.request("POST", "/v1/admin/keys", {"kind": "publishable"}, key=server.admin_key)[
        "key"
    ]
    token = client.customer_token(subject, 60)
    assert token.count(".") == 2
    import datetime

    assert client.customer_token(subject, datetime.timedelta(minutes=5)).count(".") == 2
    with meterline.Client(
        pk, server.endpoint, fetch_schemas=False, customer_token=token
    ) as browser:
        own = browser.entitlement(subject, cat.sso)
        assert (own.source, own.has_access) == ("fresh", True)
        other = browser.entitlement(f"{subject}-other", cat.sso)
        assert other.source == "fallback"
        assert other.reason is not None and other.reason.startswith("forbidden"), other.reason
        with pytest.raises(meterline.ConfigError) as info:
            browser.customer_token(subject, 60)
        assert info.value.field == "api_key"
    with pytest.raises(meterline.ConfigError) as info:
        meterline.Client(pk, server.endpoint)
    assert info.value.field == "customer_token"
    with pytest.raises(meterline.ConfigError) as info:
        meterline.Client(server.secret_key, server.endpoint, customer_token=token)
    assert info.value.field == "customer_token"


def test_raising_callbacks_are_logged_and_the_client_keeps_working(
    server: Server, subject: str, caplog: pytest.LogCaptureFixture
) -> None:
    cat = make_catalog(server, limit=1, thresholds=[1.0])
    set_plan(server, subject, cat.pro)

    def boom(*args: object) -> None:
        raise RuntimeError("callback failure")

    caplog.set_level(logging.ERROR, logger="meterline")
    with meterline.Client(
        server.secret_key,
        server.endpoint,
        fetch_schemas=False,
        on_connection_change=boom,
        on_usage_threshold=boom,
    ) as client:
        assert client.entitlement(subject, cat.calls).has_access
        assert wait_until(lambda: client.stats().stream_connected, timeout=20)
        client.track(cat.event_type, subject, {})
        client.flush(timeout=10)

        def logged(name: str) -> bool:
            return any(
                f"the {name} callback raised" in r.getMessage() and r.exc_info
                for r in caplog.records
            )

        assert wait_until(lambda: logged("on_connection_change"), timeout=20), caplog.text
        assert wait_until(lambda: logged("on_usage_threshold"), timeout=20), caplog.text
        assert client.entitlement(subject, cat.sso).has_access
        assert not client.entitlement(subject, cat.calls).has_access
        client.track(cat.event_type, subject, {})
        client.flush(timeout=10)


def test_prime_entitlements_fills_the_cache() -> None:
    client = meterline.Client(
        "ml_sk_test_0123456789abcdef0123", refused_endpoint(), fetch_schemas=False, stream=False
    )
    client.prime_entitlements(
        {
            "subject": "c1",
            "version": 3,
            "ttl_ms": 60_000,
            "entitlements": {
                "sso": {"kind": "boolean", "has_access": True},
                "tier": {"kind": "config", "has_access": True, "value": [1, "two", None, 2.5]},
            },
        }
    )
    sso = client.entitlement("c1", "sso")
    assert (sso.source, sso.has_access, sso.version) == ("cache", True, 3)
    assert client.entitlement("c1", "tier").value == [1, "two", None, 2.5]
    client.shutdown(timeout=0.1)
