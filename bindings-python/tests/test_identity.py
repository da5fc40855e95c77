"""The token provider, consent (opt_out/opt_in) and the SDK's User-Agent (issue 20), against
the real server: an expired customer token refreshed with every event stored once, a failing
provider reported and never raised, an opted-out client sending nothing, and every request
naming meterline-python."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import platform
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

import meterline

from front import RecordingFront
from support import Server


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(secret_key: str, subject: str, ttl: int) -> str:
    """A customer token as ``customer_token()`` mints it, but with any ``ttl`` (negative:
    expired), signed with the secret key's customer-token signing key."""
    key_id = secret_key.split("_")[2]
    signing_key = hmac.new(
        secret_key.encode(), b"meterline customer token v1", hashlib.sha256
    ).digest()
    now = int(time.time())
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key_id}).encode())
    claims = _b64(json.dumps({"sub": subject, "iat": now, "exp": now + ttl}).encode())
    signature = hmac.new(signing_key, f"{head}.{claims}".encode(), hashlib.sha256).digest()
    return f"{head}.{claims}.{_b64(signature)}"


@pytest.fixture
def client_type(server: Server) -> str:
    """A type publishable keys may send (added to the project's client_event_types)."""
    event_type = f"pv.{uuid.uuid4().hex[:12]}"
    settings = server.request("GET", "/v1/admin/settings", key=server.admin_key)
    allowed = [*settings.get("client_event_types", []), event_type]
    settings["client_event_types"] = allowed
    server.request("PUT", "/v1/admin/settings", settings, key=server.admin_key)
    return event_type


@pytest.fixture
def publishable_key(server: Server) -> str:
    return server.request("POST", "/v1/admin/keys", {"kind": "publishable"}, key=server.admin_key)[
        "key"
    ]


def expired_then_fresh(server: Server, subject: str) -> tuple[Callable[[], str], list[int]]:
    calls: list[int] = []
    lock = threading.Lock()

    def provider() -> str:
        with lock:
            calls.append(1)
            first = len(calls) == 1
        return mint(server.secret_key, subject, -3600 if first else 600)

    return provider, calls


def test_a_token_provider_refreshes_an_expired_token_and_nothing_is_lost(
    server: Server, publishable_key: str, client_type: str, subject: str
) -> None:
    provider, calls = expired_then_fresh(server, subject)
    client = meterline.Client(
        publishable_key,
        server.endpoint,
        token_provider=provider,
        fetch_schemas=False,
        flush_at=5,
        max_in_flight=4,
    )
    ids = [f"{subject}-{i}" for i in range(30)]
    for event_id in ids:
        assert client.track(client_type, subject, {"path": "/"}, id=event_id) == event_id
    client.flush(10)
    stats = client.stats()
    client.shutdown(5)
    assert (stats.sent, stats.duplicates, stats.dropped) == (30, 0, 0), stats
    assert len(calls) == 2, "one call for the first token, one for every batch refused with it"
    stored = sorted(e["id"] for e in server.events(type=client_type, subject=subject))
    assert stored == sorted(ids), "every event stored exactly once"


def test_a_failing_token_provider_is_reported_and_never_raised(
    server: Server, publishable_key: str, client_type: str, subject: str
) -> None:
    errors: list[meterline.MeterlineError] = []

    def provider() -> str:
        raise RuntimeError("the identity backend is down")

    client = meterline.Client(
        publishable_key,
        server.endpoint,
        token_provider=provider,
        on_error=errors.append,
        fetch_schemas=False,
        flush_interval=0.05,
    )
    event_id = client.track(client_type, subject, {"path": "/"})
    assert event_id is not None, "track() keeps the event while no token can be had"
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = client.stats()
    with pytest.raises(meterline.TimeoutError):
        client.shutdown(0.2)
    assert errors and isinstance(errors[0], meterline.AuthError), errors
    assert "RuntimeError: the identity backend is down" in str(errors[0])
    assert stats.token_provider_failures >= 1 and stats.dropped == 0, stats
    assert server.events(type=client_type, subject=subject) == []


@pytest.fixture
def front(server: Server) -> Iterator[RecordingFront]:
    recording = RecordingFront(server.endpoint).start()
    yield recording
    recording.close()


def test_an_opted_out_client_sends_nothing(
    server: Server, front: RecordingFront, event_type: str, subject: str, tmp_path
) -> None:
    options = {"fetch_schemas": False, "flush_interval": 3600, "spool_dir": tmp_path / "spool"}
    client = meterline.Client(server.secret_key, front.url, **options)
    for _ in range(3):
        client.track(event_type, subject, {})
    client.opt_out()
    assert client.opted_out
    assert client.track(event_type, subject, {}) is None
    client.flush(5)
    assert client.stats().opted_out == 4
    client.shutdown(5)
    assert front.seen() == [], "an opted-out client sent a batch"

    # Recorded in the spool directory: the next client starts opted out.
    client = meterline.Client(server.secret_key, front.url, **options)
    assert client.opted_out
    assert client.track(event_type, subject, {}) is None
    client.opt_in()
    kept = client.track(event_type, subject, {})
    client.flush(5)
    client.shutdown(5)
    assert [a.ids for a in front.seen()] == [[kept]]
    assert [e["id"] for e in server.events(type=event_type, subject=subject)] == [kept]


def test_every_request_names_meterline_python(
    server: Server, front: RecordingFront, event_type: str, subject: str
) -> None:
    client = meterline.Client(server.secret_key, front.url)
    client.track(event_type, subject, {})
    client.flush(5)
    client.shutdown(5)
    version = ".".join(platform.python_version_tuple())
    want = (
        f"meterline-python/{meterline.__version__} ({platform.python_implementation()} {version}; "
    )
    agents = {(method, path.split("?")[0]): agent for method, path, agent in front.requests}
    assert ("GET", "/v1/schema") in agents and ("POST", "/v1/events") in agents, agents
    for request, agent in agents.items():
        assert agent.startswith(want), (request, agent)


def test_identify_switches_users_without_leaking_one_to_the_next(
    server: Server, publishable_key: str, client_type: str
) -> None:
    u1, u2 = f"u1-{uuid.uuid4().hex[:8]}", f"u2-{uuid.uuid4().hex[:8]}"
    client = meterline.Client(
        publishable_key,
        server.endpoint,
        customer_token=mint(server.secret_key, u1, 600),
        fetch_schemas=False,
        stream=False,
        flush_interval=3600,
    )
    client.prime_entitlements(
        {
            "subject": u1,
            "version": 1,
            "ttl_ms": 600_000,
            "entitlements": {"export": {"kind": "boolean", "has_access": True}},
        }
    )
    assert client.cached_entitlement(u1, "export").has_access
    tracked = [client.track(client_type, u1, {}) for _ in range(3)]
    with pytest.raises(meterline.ArgumentError):
        client.identify(u2, mint(server.secret_key, "someone-else", 600))
    client.identify(u2, mint(server.secret_key, u2, 600))
    assert client.cached_entitlement(u1, "export").source == "fallback", "u1's answer leaked"
    tracked += [client.track(client_type, u2, {}) for _ in range(3)]
    client.flush(10)
    stats = client.stats()
    assert (stats.sent, stats.rejected, stats.dropped) == (6, 0, 0), stats
    client.reset()
    with pytest.raises(meterline.ForbiddenError):
        client.track(client_type, u2, {})
    client.shutdown(5)
    stored = [e["id"] for s in (u1, u2) for e in server.events(type=client_type, subject=s)]
    assert sorted(stored) == sorted(tracked)
