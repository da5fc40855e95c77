"""The shared conformance vectors (tests/vectors/*.json) through the Python API."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

import meterline
from meterline import _native

from support import load_vector

EVENTS = load_vector("events.json")
RETRY = load_vector("retry.json")
# Nothing listens on port 9; the vectors only exercise validation.
NOWHERE = "http://127.0.0.1:9"
KEY = "ml_sk_vectors_0123456789abcdef0123"


def _client(strict: bool) -> meterline.Client:
    return meterline.Client(
        KEY,
        NOWHERE,
        fetch_schemas=False,
        strict_types=strict,
        flush_interval=3600.0,
        schemas=EVENTS["schemas"],
    )


@pytest.fixture(scope="module")
def clients() -> Any:
    made = {False: _client(False), True: _client(True)}
    yield made
    for client in made.values():
        # Nothing can be delivered to port 9; give the queue up quickly.
        with contextlib.suppress(meterline.TimeoutError):
            client.shutdown(timeout=0.01)


def _cases(section: str, strict: bool) -> list[Any]:
    return [pytest.param(case, strict, id=case["name"]) for case in EVENTS[section]]


@pytest.mark.parametrize(("case", "strict"), _cases("track", False) + _cases("strict_track", True))
def test_track_vectors(clients: Any, case: dict[str, Any], strict: bool) -> None:
    given = case["input"]
    expect = case["expect"]
    call = lambda: clients[strict].track(  # noqa: E731
        given["type"], given["subject"], given["data"], id=given.get("id"), time=given.get("time")
    )
    if expect["ok"]:
        event_id = call()
        assert event_id == given.get("id", event_id)
        assert isinstance(event_id, str) and event_id
    else:
        with pytest.raises(meterline.ValidationError) as raised:
            call()
        assert raised.value.code == expect["code"]
        assert raised.value.path == expect["path"]


@pytest.mark.parametrize("case", RETRY["cases"], ids=[c["name"] for c in RETRY["cases"]])
def test_retry_vectors(case: dict[str, Any]) -> None:
    policy = RETRY["policy"]
    expect = case["expect"]
    # The two extremes of the jitter draw bound every possible delay.
    for jitter in (0.0, 0.999999):
        kind, delay = _native._retry_decision(
            case["outcome"],
            case["retry"],
            case["retry_after"],
            RETRY["now"],
            jitter,
            initial_delay_ms=policy["initial_delay_ms"],
            max_delay_ms=policy["max_delay_ms"],
            max_retry_after_ms=policy["max_retry_after_ms"],
        )
        if kind == "retry":
            assert expect["retry"], "retried"
            assert delay is not None
            assert expect["min_delay_ms"] <= delay <= expect["max_delay_ms"]
        elif kind == "done":
            assert expect["done"]
        else:
            assert not expect["retry"] and not expect["done"]
