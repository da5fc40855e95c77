"""Bad input to every entitlement argument and option: a typed error naming it, and the
client keeps working afterwards."""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from typing import Any

import pytest

import meterline

KEY = "ml_sk_test_0123456789abcdef0123"
NOWHERE = "http://127.0.0.1:9"
LONG = "x" * 257


@pytest.fixture(scope="module")
def client() -> Iterator[meterline.Client]:
    c = meterline.Client(KEY, NOWHERE, fetch_schemas=False, stream=False)
    yield c
    c.shutdown(timeout=0.1)


@pytest.mark.parametrize(
    ("subject", "feature", "path"),
    [
        (None, "sso", "/subject"),
        (42, "sso", "/subject"),
        (b"c1", "sso", "/subject"),
        ("", "sso", "/subject"),
        (LONG, "sso", "/subject"),
        ("c1", None, "/feature"),
        ("c1", ["sso"], "/feature"),
        ("c1", "", "/feature"),
        ("c1", LONG, "/feature"),
        ("c1", "\ud800", "/feature"),
    ],
)
def test_bad_entitlement_arguments(
    client: meterline.Client, subject: Any, feature: Any, path: str
) -> None:
    for call in (client.entitlement, client.cached_entitlement):
        with pytest.raises(meterline.ValidationError) as info:
            call(subject, feature)
        assert (info.value.code, info.value.path) == ("invalid_argument", path)
        assert path[1:] in str(info.value)
    # Still working (256 characters is allowed).
    ok = client.cached_entitlement("c1", "y" * 256)
    assert ok.source == "fallback"


def test_bad_async_entitlement_arguments_raise_when_awaited() -> None:
    import asyncio

    async def main() -> None:
        async with meterline.AsyncClient(KEY, NOWHERE, fetch_schemas=False, stream=False) as c:
            with pytest.raises(meterline.ValidationError) as info:
                await c.entitlement("c1", 7)  # type: ignore[arg-type]
            assert info.value.path == "/feature"
            with pytest.raises(meterline.ValidationError):
                await c.entitlement("", "sso")
            assert (await c.entitlement("c1", "sso")).source == "fallback"
            await c.shutdown(timeout=0.1)

    asyncio.run(main())


@pytest.mark.parametrize(
    "ttl",
    [
        0,
        -1,
        0.0,
        -0.5,
        math.nan,
        math.inf,
        30 * 86_400 + 1,
        10**30,
        datetime.timedelta(0),
        datetime.timedelta(days=31),
        datetime.timedelta(seconds=-5),
        "60",
        None,
        True,
        [60],
    ],
)
def test_bad_ttl(client: meterline.Client, ttl: Any) -> None:
    with pytest.raises(meterline.ValidationError) as info:
        client.customer_token("c1", ttl)
    assert (info.value.code, info.value.path) == ("invalid_argument", "/ttl")
    assert "ttl" in str(info.value)
    assert client.customer_token("c1", 30 * 86_400).count(".") == 2


@pytest.mark.parametrize(
    ("subject", "path"), [("", "/subject"), (LONG, "/subject"), (1, "/subject")]
)
def test_bad_token_subject(client: meterline.Client, subject: Any, path: str) -> None:
    with pytest.raises(meterline.ValidationError) as info:
        client.customer_token(subject, 60)
    assert info.value.path == path


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "{}",
        [1, 2],
        42,
        {},
        {"subject": "c1"},
        {"subject": "c1", "version": "1", "ttl_ms": 1, "entitlements": {}},
        {"subject": "c1", "version": 1, "ttl_ms": 1, "entitlements": {"x": {"kind": "nope"}}},
        {"subject": "", "version": 1, "ttl_ms": 1, "entitlements": {}},
        {"subject": LONG, "version": 1, "ttl_ms": 1, "entitlements": {}},
        {"subject": "c1", "version": 1, "ttl_ms": 1, "entitlements": {}, "x": object()},
    ],
)
def test_bad_prime_payload(client: meterline.Client, payload: Any) -> None:
    with pytest.raises(meterline.ValidationError) as info:
        client.prime_entitlements(payload)
    assert info.value.code == "invalid_argument"
    assert info.value.path.startswith(("/payload", "/subject")), info.value.path
    assert client.cached_entitlement("c1", "sso").source == "fallback"


def test_hostile_prime_payload_depth(client: meterline.Client) -> None:
    deep: Any = {}
    node = deep
    for _ in range(10_000):
        node["a"] = {}
        node = node["a"]
    payload = {"subject": "c1", "version": 1, "ttl_ms": 1, "entitlements": deep}
    with pytest.raises(meterline.ValidationError) as info:
        client.prime_entitlements(payload)
    assert info.value.path.startswith("/payload")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"cache_size": 0}, "cache_size"),
        ({"cache_size": "10"}, "cache_size"),
        ({"cache_size": -1}, "cache_size"),
        ({"cache_size": 2_000_000}, "cache_size"),
        ({"entitlement_timeout": 0}, "entitlement_timeout"),
        ({"entitlement_timeout": -1}, "entitlement_timeout"),
        ({"entitlement_timeout": math.nan}, "entitlement_timeout"),
        ({"entitlement_timeout": 61}, "entitlement_timeout"),
        ({"entitlement_timeout": "1s"}, "entitlement_timeout"),
        ({"max_stale": -1}, "max_stale"),
        ({"max_stale": 400 * 86_400}, "max_stale"),
        ({"max_ttl": 0}, "max_ttl"),
        ({"max_ttl": math.inf}, "max_ttl"),
        ({"max_ttl": True}, "max_ttl"),
        ({"stream": 1}, "stream"),
        ({"stream": "yes"}, "stream"),
        ({"stream_endpoint": "http://x/v1/stream"}, "stream_endpoint"),
        ({"stream_endpoint": 5}, "stream_endpoint"),
        ({"customer_token": 5}, "customer_token"),
        ({"customer_token": "abc"}, "customer_token"),
        ({"fallbacks": []}, "fallbacks"),
        ({"fallbacks": "deny"}, "fallbacks"),
        ({"fallbacks": {"feature": {}}}, "fallbacks"),
        ({"fallbacks": {"features": []}}, "fallbacks"),
        ({"fallbacks": {"features": {"sso": "yes"}}}, "fallbacks"),
        ({"fallbacks": {"features": {"sso": {"limit": -1}}}}, "fallbacks"),
        ({"fallbacks": {"features": {"sso": {"limit": "10"}}}}, "fallbacks"),
        ({"fallbacks": {"features": {"sso": {"value": 1, "limit": 2}}}}, "fallbacks"),
        ({"fallbacks": {"default": 3}}, "fallbacks"),
        ({"fallbacks": {"default": {"limit": math.nan}}}, "fallbacks"),
        ({"fallbacks": {"features": {"x": object()}}}, "fallbacks"),
        ({"on_usage_threshold": 1}, "on_usage_threshold"),
        ({"on_connection_change": "print"}, "on_connection_change"),
        ({"cache_sise": 10}, "cache_sise"),
    ],
)
def test_bad_entitlement_options(options: dict[str, Any], field: str) -> None:
    with pytest.raises(meterline.ConfigError) as info:
        meterline.Client(KEY, NOWHERE, **options)
    assert info.value.field == field, info.value
    assert field in str(info.value)


def test_fallback_errors_name_the_feature() -> None:
    with pytest.raises(meterline.ConfigError, match='"sso"'):
        meterline.Client(KEY, NOWHERE, fallbacks={"features": {"sso": "yes"}})


def test_good_entitlement_options_are_accepted() -> None:
    c = meterline.Client(
        KEY,
        NOWHERE,
        fetch_schemas=False,
        cache_size=10,
        entitlement_timeout=0.25,
        max_stale=0,
        max_ttl=1.5,
        fallbacks={"features": {"sso": True}, "default": None},
        stream=False,
        stream_endpoint="ws://127.0.0.1:9/v1/stream",
        on_usage_threshold=print,
        on_connection_change=None,
    )
    assert c.entitlement("c1", "sso").has_access
    c.shutdown(timeout=0.1)
