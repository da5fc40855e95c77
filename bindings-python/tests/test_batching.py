"""How the Python client forms and encodes batches, observed at a recording front in front
of the real server: a batch closes at ``flush_at`` events, at ``max_batch_bytes`` or after
``flush_interval``; ``compression`` gzip, zstd and identity each reach the server as
declared and are stored. Also the source check at configuration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import meterline

from front import RecordingFront, assert_resent_only_after_failures
from support import Server, wait_until

#: What each encoding's body starts with.
MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd", "identity": b"["}


@pytest.fixture
def front(server: Server) -> Iterator[RecordingFront]:
    made = RecordingFront(server.endpoint).start()
    yield made
    made.close()


def make(server: Server, front: RecordingFront, **options: Any) -> meterline.Client:
    options.setdefault("source", "python-batching")
    options.setdefault("fetch_schemas", False)
    options.setdefault("stream", False)
    return meterline.Client(server.secret_key, front.url, **options)


def test_a_batch_closes_at_flush_at_events(
    server: Server, front: RecordingFront, subject: str
) -> None:
    with make(server, front, flush_at=7, flush_interval=3600.0, compression="identity") as client:
        for i in range(21):
            client.track("api.call", subject, {"i": i})
        assert wait_until(lambda: len(front.seen()) >= 3), front.seen()
        # Nothing else is due: the interval is an hour away and no batch is full.
        client.track("api.call", subject, {"i": 21})
        time.sleep(0.3)
        sizes = [len(a.ids or []) for a in front.seen()]
        assert sizes == [7, 7, 7], sizes
        assert [a.events for a in front.seen()] == [7, 7, 7]
        client.flush(timeout=10)
    assert [len(a.ids or []) for a in front.seen()] == [7, 7, 7, 1]
    assert len(server.events(subject=subject)) == 22


def test_a_batch_closes_before_it_would_pass_max_batch_bytes(
    server: Server, front: RecordingFront, subject: str
) -> None:
    limit = 4096
    with make(
        server,
        front,
        flush_at=10_000,
        max_batch_bytes=limit,
        flush_interval=3600.0,
        compression="identity",
    ) as client:
        # Events of one length: fixed-width ids and data.
        for i in range(100):
            client.track("api.call", subject, {"pad": "x" * 200, "i": f"{i:03d}"}, id=f"b-{i:04d}")
        assert wait_until(lambda: sum(len(a.ids or []) for a in front.seen()) >= 80), front.seen()
        full = front.seen()
        client.flush(timeout=10)
    event_bytes = (len(full[0].body) - 2 - (len(full[0].ids or []) - 1)) // len(full[0].ids or [])
    # As many events as fit: `[` + n events + n-1 commas + `]` <= limit, one more would not.
    fits = (limit - 1) // (event_bytes + 1)
    for attempt in full:
        assert len(attempt.body) <= limit, len(attempt.body)
        assert len(attempt.ids or []) == fits, (len(attempt.ids or []), fits, event_bytes)
    assert len(server.events(subject=subject)) == 100


def test_a_batch_goes_out_after_flush_interval(
    server: Server, front: RecordingFront, subject: str
) -> None:
    with make(server, front, flush_at=10_000, flush_interval=0.4) as client:
        started = time.monotonic()
        for i in range(5):
            client.track("api.call", subject, {"i": i})
        # Answered, so the server's count of it is known.
        assert wait_until(lambda: any(a.status for a in front.seen()), timeout=5)
        first = front.seen()[0]
        waited = first.at - started
        assert 0.3 <= waited < 2.0, waited
        assert len(first.ids or []) == 5 and first.events == 5
        client.flush(timeout=10)
    assert len(front.seen()) == 1


@pytest.mark.parametrize("compression", ["gzip", "zstd", "identity"])
def test_each_compression_reaches_the_server_as_declared_and_is_stored(
    server: Server, front: RecordingFront, subject: str, compression: str
) -> None:
    with make(server, front, compression=compression, flush_at=50) as client:
        ids = [client.track("api.call", subject, {"i": i, "text": "abc" * 50}) for i in range(50)]
        client.flush(timeout=10)
    (attempt,) = front.seen()
    assert attempt.encoding == compression
    assert attempt.body.startswith(MAGIC[compression]), attempt.body[:8]
    if compression != "identity":
        # Compressed: far smaller than the JSON it carries.
        assert len(attempt.body) < 50 * 150 / 3, len(attempt.body)
    assert (attempt.status, attempt.events) == (202, 50)
    assert [e["id"] for e in server.events(subject=subject)] == ids


def test_retried_batches_resend_only_after_a_failure(
    server: Server, front: RecordingFront, subject: str
) -> None:
    # The front forwards to a port nobody listens on first (502s), then to the server.
    real = front.upstream
    front.upstream = "http://127.0.0.1:9"
    with make(server, front, flush_at=10) as client:
        for i in range(30):
            client.track("api.call", subject, {"i": i})
        assert wait_until(lambda: len(front.seen()) >= 4)
        front.upstream = real
        client.flush(timeout=30)
    resent = assert_resent_only_after_failures(front.seen())
    assert resent > 0, "no batch was retried"
    assert len(server.events(subject=subject)) == 30


@pytest.mark.parametrize("source", ["", "billing api", "1:2", "x" * 257, "tab\there"])
def test_an_invalid_source_is_refused_at_configuration(server: Server, source: str) -> None:
    with pytest.raises(meterline.ConfigError) as raised:
        meterline.Client(server.secret_key, server.endpoint, source=source, fetch_schemas=False)
    assert raised.value.field == "source"
