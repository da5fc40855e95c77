"""The synchronous client against a real server: round trip, lifecycle, options, callbacks,
errors and logging."""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import meterline

from front import RecordingFront, assert_resent_only_after_failures
from support import Server, wait_until


def make(server: Server, **options: Any) -> meterline.Client:
    options.setdefault("source", "python-tests")
    return meterline.Client(server.secret_key, server.endpoint, **options)


def test_track_flush_round_trip(server: Server, subject: str) -> None:
    with make(server) as client:
        ids = [
            client.track("api.call", subject, {"tokens": i, "model": "m-large", "tags": ["a", 1]})
            for i in range(25)
        ]
        client.flush(timeout=10)
        stats = client.stats()
    stored = server.events(subject=subject)
    assert [e["id"] for e in stored] == ids
    first = stored[0]
    assert first["type"] == "api.call"
    assert first["source"] == "python-tests"
    assert first["specversion"] == "1.0"
    assert first["data"] == {"tokens": 0, "model": "m-large", "tags": ["a", 1]}
    assert stats.enqueued == 25 and stats.sent == 25 and stats.dropped == 0
    assert stats.queue_length == 0 and stats.batches >= 1


def test_explicit_id_time_and_json_types_are_stored_as_given(server: Server, subject: str) -> None:
    when = datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=timezone(timedelta(hours=2)))
    data = {
        "int": -5,
        "big": 2**64 - 1,
        "float": 1.5,
        "decimal": Decimal("0.1"),
        "decimal_int": Decimal("12"),
        "bool": True,
        "none": None,
        "tuple": (1, "two"),
        "nested": {"list": [{"x": [1, 2, {"y": "z"}]}]},
        "unicode": "kunde-ß-東京",
    }
    with make(server) as client:
        returned = client.track("api.call", subject, data, id="evt-explicit-1", time=when)
        text_id = client.track(
            "api.call", subject, {}, id=uuid.UUID(int=7), time="2026-01-02T03:04:05Z"
        )
        client.flush(timeout=10)
    assert returned == "evt-explicit-1"
    assert text_id == str(uuid.UUID(int=7))
    first, second = server.events(subject=subject)
    assert first["id"] == "evt-explicit-1"
    assert datetime.fromisoformat(first["time"].replace("Z", "+00:00")) == when
    assert first["data"] == {
        **data,
        "decimal": 0.1,
        "decimal_int": 12,
        "tuple": [1, "two"],
    }
    assert second["time"].startswith("2026-01-02T03:04:05")


def test_retried_ids_are_stored_once(server: Server, subject: str) -> None:
    # The SDK's own retries: a front refuses the first two attempts with 503, so the batch
    # goes out three times with the same id; the server stores it once.
    front = RecordingFront(server.endpoint, fail_first=2).start()
    try:
        with meterline.Client(server.secret_key, front.url, source="python-tests") as client:
            client.track("api.call", subject, {"tokens": 1}, id=f"retried-{subject}")
            client.flush(timeout=30)
            stats = client.stats()
        attempts = front.seen()
    finally:
        front.close()
    assert [a.status for a in attempts] == [503, 503, 202]
    assert all(a.ids == [f"retried-{subject}"] for a in attempts)
    assert_resent_only_after_failures(attempts)
    assert stats.retried >= 2 and stats.sent == 1
    assert [e["id"] for e in server.events(subject=subject)] == [f"retried-{subject}"]


def test_an_id_tracked_again_is_stored_once(server: Server, subject: str) -> None:
    with make(server) as client:
        for _ in range(3):
            client.track("api.call", subject, {"tokens": 1}, id="same-id")
            client.flush(timeout=10)
        stats = client.stats()
    assert len(server.events(subject=subject)) == 1
    assert stats.sent == 1 and stats.duplicates == 2


def test_stats_is_a_frozen_dataclass(server: Server) -> None:
    with make(server) as client:
        stats = client.stats()
    assert isinstance(stats, meterline.Stats)
    assert dataclasses.is_dataclass(stats)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.sent = 3  # type: ignore[misc]
    assert set(dataclasses.asdict(stats)) == {
        "enqueued", "sent", "duplicates", "rejected", "dropped", "retried", "batches",
        "queue_length", "spool_length", "cache_hits", "cache_misses", "stale_answers",
        "fallback_answers", "stream_connected", "opted_out", "token_provider_failures",
    }  # fmt: skip


def test_shutdown_closes_the_client(server: Server, subject: str) -> None:
    client = make(server)
    client.track("api.call", subject, {"tokens": 1})
    client.shutdown(timeout=10)
    client.shutdown()  # harmless again
    assert client.closed
    assert "closed" in repr(client)
    with pytest.raises(meterline.ClosedError) as raised:
        client.track("api.call", subject, {"tokens": 1})
    assert raised.value.code == "client_closed"
    client.flush(timeout=1)  # nothing left: returns at once
    assert len(server.events(subject=subject)) == 1


def test_flush_timeout_raises_timeout_error(black_hole: str) -> None:
    client = meterline.Client(
        "ml_sk_test_0123456789abcdef0123", black_hole, fetch_schemas=False, request_timeout=30.0
    )
    client.track("api.call", "c1", {"tokens": 1})
    with pytest.raises(meterline.TimeoutError) as raised:
        client.flush(timeout=0.3)
    assert isinstance(raised.value, TimeoutError)  # also the builtin
    assert raised.value.code == "timeout"
    assert raised.value.timeout == pytest.approx(0.3)
    with pytest.raises(meterline.TimeoutError):
        client.shutdown(timeout=0.2)
    assert client.stats().dropped == 1


def test_flush_releases_the_gil(black_hole: str) -> None:
    client = meterline.Client("ml_sk_test_0123456789abcdef0123", black_hole, fetch_schemas=False)
    client.track("api.call", "c1", {"tokens": 1})
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            stop.wait(0.005)

    ticker = threading.Thread(target=tick)
    ticker.start()
    with pytest.raises(meterline.TimeoutError):
        client.flush(timeout=0.5)
    stop.set()
    ticker.join()
    assert ticks > 10, f"the ticker thread ran only {ticks} times during a 0.5 s flush"
    with pytest.raises(meterline.TimeoutError):
        client.shutdown(timeout=0.05)


def test_concurrent_threads_share_one_client(server: Server, subject: str) -> None:
    with make(server, flush_at=50) as client:

        def work(n: int) -> None:
            for i in range(200):
                client.track("api.call", subject, {"tokens": i, "thread": n})

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client.flush(timeout=20)
    stored = server.events(subject=subject)
    assert len(stored) == 1600
    assert len({e["id"] for e in stored}) == 1600


class Recorder:
    def __init__(self, raise_with: type[BaseException] | None = None) -> None:
        self.errors: list[meterline.MeterlineError] = []
        self.raise_with = raise_with

    def __call__(self, error: meterline.MeterlineError) -> None:
        self.errors.append(error)
        if self.raise_with is not None:
            raise self.raise_with("callback failure")


def test_on_error_gets_server_rejections(server: Server, subject: str, event_type: str) -> None:
    server.put_schema(
        event_type, {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    )
    recorder = Recorder()
    # The client does not know the schema: the server refuses the event.
    with make(server, fetch_schemas=False, on_error=recorder) as client:
        bad = client.track(event_type, subject, {"n": "not a number"})
        client.track(event_type, subject, {"n": 1})
        client.flush(timeout=10)
        assert wait_until(lambda: recorder.errors)
        stats = client.stats()
    (error,) = recorder.errors
    assert isinstance(error, meterline.RejectedError)
    assert isinstance(error, meterline.ValidationError)
    assert error.code == "schema_violation"
    assert error.path == "/data/n"
    assert error.event_id == bad
    assert stats.rejected == 1 and stats.sent == 1
    assert len(server.events(subject=subject)) == 1


def test_on_error_that_raises_is_logged_and_ignored(
    server: Server, subject: str, event_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.put_schema(event_type, {"type": "object", "required": ["n"]})
    recorder = Recorder(raise_with=RuntimeError)
    caplog.set_level(logging.WARNING, logger="meterline")
    with make(server, fetch_schemas=False, on_error=recorder) as client:
        for _ in range(3):
            client.track(event_type, subject, {})
            client.flush(timeout=10)
        assert wait_until(lambda: len(recorder.errors) == 3)
        # The client keeps working.
        client.track("api.call", subject, {"tokens": 1})
        client.flush(timeout=10)
    assert wait_until(
        lambda: sum("on_error callback raised" in r.getMessage() for r in caplog.records) == 3
    )
    failures = [r for r in caplog.records if "on_error callback raised" in r.getMessage()]
    assert failures[0].exc_info is not None and failures[0].exc_info[0] is RuntimeError
    assert len(server.events(subject=subject, type="api.call")) == 1


def test_on_error_that_raises_base_exceptions_does_not_kill_delivery(
    server: Server, subject: str, event_type: str
) -> None:
    server.put_schema(event_type, {"type": "object", "required": ["n"]})
    recorder = Recorder(raise_with=ValueError)
    with make(server, fetch_schemas=False, on_error=recorder) as client:
        client.track(event_type, subject, {})
        client.flush(timeout=10)
        assert wait_until(lambda: len(recorder.errors) == 1)
    later = Recorder()
    with make(server, fetch_schemas=False, on_error=later) as client:
        client.track(event_type, subject, {})
        client.flush(timeout=10)
        assert wait_until(lambda: len(later.errors) == 1)


def test_unknown_key_reaches_on_error_as_auth_error(server: Server, subject: str) -> None:
    recorder = Recorder()
    unknown_key = "ml_sk_nosuchkey_0123456789abcdef0123"
    with meterline.Client(
        unknown_key, server.endpoint, fetch_schemas=False, on_error=recorder
    ) as client:
        client.track("api.call", subject, {"tokens": 1})
        client.flush(timeout=10)
        assert wait_until(lambda: recorder.errors)
        stats = client.stats()
    assert isinstance(recorder.errors[0], meterline.AuthError)
    assert recorder.errors[0].code == "unauthorized"
    assert stats.dropped == 1


def test_core_warnings_reach_the_meterline_logger(
    server: Server, subject: str, event_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.put_schema(event_type, {"type": "object", "required": ["n"]})
    caplog.set_level(logging.INFO, logger="meterline")
    with make(server, fetch_schemas=False) as client:
        client.track(event_type, subject, {})
        client.flush(timeout=10)
    assert wait_until(
        lambda: any("event rejected by the server" in r.getMessage() for r in caplog.records)
    )
    record = next(r for r in caplog.records if "event rejected" in r.getMessage())
    assert record.name == "meterline"
    assert record.levelno == logging.WARNING
    assert "code=schema_violation" in record.getMessage()


def test_fetched_schemas_validate_at_track(server: Server, subject: str, event_type: str) -> None:
    server.put_schema(event_type, {"type": "object", "properties": {"n": {"type": "integer"}}})
    with make(server) as client:
        # The schema fetch runs in the background at start.
        def refused() -> bool:
            try:
                client.track(event_type, subject, {"n": "x"}, id="probe")
            except meterline.ValidationError as error:
                return error.code == "schema_violation" and error.path == "/data/n"
            return False

        assert wait_until(refused)


# Nothing listens on port 9: these clients only check their options.
NOWHERE = "http://127.0.0.1:9"


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(meterline.ConfigError) as raised:
        meterline.Client("ml_sk_test_0123456789abcdef0123", NOWHERE, flush_size=10)  # type: ignore[call-arg]
    assert raised.value.field == "flush_size"
    assert isinstance(raised.value, ValueError)
    assert "flush_at" in str(raised.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("source", 5),
        ("flush_at", "10"),
        ("flush_at", True),
        ("flush_at", 0),
        ("flush_at", -1),
        ("flush_at", 10_001),
        ("max_batch_bytes", 10),
        ("max_batch_bytes", 1.5),
        ("flush_interval", "1s"),
        ("flush_interval", 0),
        ("flush_interval", -1.0),
        ("flush_interval", float("nan")),
        ("max_queue_size", 0),
        ("overflow", "explode"),
        ("overflow", 1),
        ("block_timeout", [1]),
        ("compression", "brotli"),
        ("request_timeout", 0),
        ("strict_types", 1),
        ("fetch_schemas", "yes"),
        ("schema_refresh_interval", float("inf")),
        ("schemas", ["api.call"]),
        ("schemas", {"api.call": {"type": "no-such-type"}}),
        ("schemas", {"api.call": {"minimum": float("nan")}}),
        ("max_in_flight", 0),
        ("max_in_flight", 65),
        ("on_error", "print"),
    ],
)
def test_bad_option_is_a_config_error_naming_it(option: str, value: Any) -> None:
    with pytest.raises(meterline.ConfigError) as raised:
        meterline.Client("ml_sk_test_0123456789abcdef0123", NOWHERE, **{option: value})
    assert raised.value.field == option
    assert option in str(raised.value)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("ml_sk_test_0123456789abcdef0123", "ftp://x"), "endpoint"),
        (("ml_sk_test_0123456789abcdef0123", ""), "endpoint"),
        (("ml_sk_test_0123456789abcdef0123", 8080), "endpoint"),
        (("not-a-key", NOWHERE), "api_key"),
        ((None,), "api_key"),
        ((b"ml_sk_test_0123456789abcdef0123",), "api_key"),
    ],
)
def test_bad_key_or_endpoint_is_a_config_error(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(meterline.ConfigError) as raised:
        meterline.Client(*args)
    assert raised.value.field == field


def test_errors_pickle_with_their_details() -> None:
    import pickle

    error = meterline.ValidationError("bad", code="schema_violation", path="/data/x")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, copy.path, str(copy)) == (
        meterline.ValidationError,
        "schema_violation",
        "/data/x",
        "bad",
    )
