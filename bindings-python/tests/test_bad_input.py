"""Bad input to track(): a clear ValidationError naming the path, no crash, and the client
keeps working afterwards. No server needed: nothing is delivered."""

from __future__ import annotations

import collections
import contextlib
import enum
import math
import time
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

import meterline
from meterline import _native

KEY = "ml_sk_test_0123456789abcdef0123"


@pytest.fixture(scope="module")
def client() -> Iterator[meterline.Client]:
    made = meterline.Client(KEY, "http://127.0.0.1:9", fetch_schemas=False, flush_interval=3600.0)
    yield made
    with contextlib.suppress(meterline.TimeoutError):
        made.shutdown(timeout=0.01)


@pytest.fixture(autouse=True)
def still_works(client: meterline.Client) -> Iterator[None]:
    yield
    # After every refusal the client accepts a valid event.
    assert client.track("api.call", "c1", {"tokens": 1})


class Color(enum.Enum):
    RED = "red"


class Weird:
    pass


def cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def cyclic_list() -> dict[str, Any]:
    items: list[Any] = [1]
    items.append(items)
    return {"items": items}


def nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return {"deep": value}


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"x": b"bytes"}, "/data/x", "bytes"),
        ({"x": bytearray(b"x")}, "/data/x", "bytearray"),
        ({"x": {1, 2}}, "/data/x", "set"),
        ({"x": frozenset()}, "/data/x", "frozenset"),
        ({"x": float("nan")}, "/data/x", "NaN"),
        ({"x": float("inf")}, "/data/x", "Infinity"),
        ({"x": -math.inf}, "/data/x", "Infinity"),
        ({"x": [1, {"y": float("nan")}]}, "/data/x/1/y", "NaN"),
        ({"x": 2**64}, "/data/x", "64-bit"),
        ({"x": -(2**63) - 1}, "/data/x", "64-bit"),
        ({"x": 10**100}, "/data/x", "64-bit"),
        ({"x": Decimal("0.1000000000000000000001")}, "/data/x", "exactly"),
        ({"x": Decimal("NaN")}, "/data/x", "NaN"),
        ({"x": Decimal("Infinity")}, "/data/x", "Infinity"),
        ({"x": Decimal("1e400")}, "/data/x", "exactly"),
        ({"x": datetime(2026, 1, 1)}, "/data/x", "isoformat"),
        ({"x": date(2026, 1, 1)}, "/data/x", "isoformat"),
        ({"x": Color.RED}, "/data/x", "Color"),
        ({"x": Weird()}, "/data/x", "Weird"),
        ({"x": object()}, "/data/x", "object"),
        ({"x": 1j}, "/data/x", "complex"),
        ({"x": print}, "/data/x", "builtin_function_or_method"),
        ({1: "int key"}, "/data", "keys must be strings"),
        ({"a": {(1, 2): "tuple key"}}, "/data/a", "keys must be strings"),
        ({"a/b~c": [b""]}, "/data/a~1b~0c/0", "bytes"),
        ({"s": "\ud800"}, "/data/s", "surrogate"),
        (cyclic_dict(), "/data/self/self", "contains itself"),
        (cyclic_list(), "/data/items/1/1", "contains itself"),
        (nested(500), "/data/deep/0/0", "deeper than 126"),
    ],
)
def test_unconvertible_data_is_a_validation_error(
    client: meterline.Client, data: Any, path: str, words: str
) -> None:
    with pytest.raises(meterline.ValidationError) as raised:
        client.track("api.call", "c1", data)
    assert raised.value.code == "invalid_event"
    assert raised.value.path.startswith(path)
    assert words in str(raised.value)


def test_nesting_up_to_the_limit_is_fine(client: meterline.Client) -> None:
    # data itself is one level; MAX_DEPTH levels in all are accepted.
    assert client.track("api.call", "c1", nested(_native.MAX_DEPTH - 1))
    with pytest.raises(meterline.ValidationError):
        client.track("api.call", "c1", nested(_native.MAX_DEPTH))


def test_accepted_python_types(client: meterline.Client) -> None:
    class IntEnum(enum.IntEnum):
        ONE = 1

    class StrEnum(str, enum.Enum):
        A = "a"

    class MyMapping(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            return {"k": 1}[key]

        def __iter__(self) -> Iterator[str]:
            return iter(["k"])

        def __len__(self) -> int:
            return 1

    for data in [
        {"e": IntEnum.ONE, "s": StrEnum.A, "t": (1, 2), "od": collections.OrderedDict(a=1)},
        MappingProxyType({"a": 1}),
        MyMapping(),
        collections.OrderedDict(x=[True, None, 1.5, Decimal("2.50"), 2**63, -(2**63)]),
        {"max": 2**64 - 1},
    ]:
        assert client.track("api.call", "c1", data)


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"type": 1}, "/type"),
        ({"type": None}, "/type"),
        ({"type": b"api.call"}, "/type"),
        ({"subject": 42}, "/subject"),
        ({"subject": None}, "/subject"),
        ({"data": None}, "/data"),
        ({"data": [1, 2]}, "/data"),
        ({"data": "tokens=5"}, "/data"),
        ({"data": 5}, "/data"),
        ({"id": 5}, "/id"),
        ({"id": ""}, "/id"),
        ({"id": "x" * 257}, "/id"),
        ({"time": 5}, "/time"),
        ({"time": "yesterday"}, "/time"),
        ({"time": datetime(2026, 1, 1)}, "/time"),
        ({"time": date(2026, 1, 1)}, "/time"),
        ({"type": ""}, "/type"),
        ({"subject": "s" * 257}, "/subject"),
    ],
)
def test_wrong_argument_is_a_validation_error_naming_it(
    client: meterline.Client, kwargs: dict[str, Any], path: str
) -> None:
    args: dict[str, Any] = {"type": "api.call", "subject": "c1", "data": {"tokens": 1}, **kwargs}
    with pytest.raises(meterline.ValidationError) as raised:
        client.track(args.pop("type"), args.pop("subject"), args.pop("data"), **args)
    assert raised.value.code == "invalid_event"
    assert raised.value.path == path
    assert isinstance(raised.value, ValueError)


def test_missing_or_extra_arguments_are_type_errors(client: meterline.Client) -> None:
    with pytest.raises(TypeError):
        client.track("api.call", "c1")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        client.track("api.call", "c1", {}, "positional-id")  # type: ignore[misc]
    with pytest.raises(TypeError):
        client.track("api.call", "c1", {}, idd="x")  # type: ignore[call-arg]


@pytest.mark.parametrize("timeout", ["1", [1]])
def test_wrong_timeout_type_is_a_type_error(client: meterline.Client, timeout: Any) -> None:
    with pytest.raises(TypeError):
        client.flush(timeout=timeout)


@pytest.mark.parametrize("timeout", [-1.0, float("nan"), float("inf")])
def test_bad_timeout_value_is_a_value_error(client: meterline.Client, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        client.flush(timeout=timeout)


def test_huge_event_is_refused_as_too_large(client: meterline.Client) -> None:
    with pytest.raises(meterline.ValidationError) as raised:
        client.track("api.call", "c1", {"blob": "x" * (2 * 1024 * 1024)})
    assert raised.value.code == "event_too_large"


def test_huge_but_allowed_event_is_accepted() -> None:
    big = meterline.Client(
        KEY, "http://127.0.0.1:9", fetch_schemas=False, max_batch_bytes=5 * 1024 * 1024
    )
    try:
        assert big.track("api.call", "c1", {"blob": "x" * (900 * 1024), "n": list(range(10_000))})
    finally:
        with contextlib.suppress(meterline.TimeoutError):
            big.shutdown(timeout=0.01)


def test_a_full_queue_drops_the_event_without_raising_by_default() -> None:
    errors: list[meterline.MeterlineError] = []
    small = meterline.Client(
        KEY,
        "http://127.0.0.1:9",
        fetch_schemas=False,
        max_queue_size=2,
        flush_interval=3600.0,
        on_error=errors.append,
    )
    try:
        assert small.track("api.call", "c1", {}) is not None
        assert small.track("api.call", "c1", {}) is not None
        assert small.track("api.call", "c1", {}) is None
        assert small.track("api.call", "c1", {}) is None
        assert small.stats().dropped == 2
        deadline = time.monotonic() + 5
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [type(e) for e in errors] == [meterline.QueueFullError], "one report per window"
        assert (errors[0].capacity, errors[0].policy) == (2, "drop_newest")
    finally:
        with contextlib.suppress(meterline.TimeoutError):
            small.shutdown(timeout=0.01)


def test_queue_full_raises_under_reject(client: meterline.Client) -> None:
    small = meterline.Client(
        KEY,
        "http://127.0.0.1:9",
        fetch_schemas=False,
        max_queue_size=2,
        flush_interval=3600.0,
        overflow="reject",
    )
    try:
        small.track("api.call", "c1", {})
        small.track("api.call", "c1", {})
        with pytest.raises(meterline.QueueFullError) as raised:
            small.track("api.call", "c1", {})
        assert (raised.value.capacity, raised.value.policy) == (2, "reject")
        assert small.stats().dropped == 1
    finally:
        with contextlib.suppress(meterline.TimeoutError):
            small.shutdown(timeout=0.01)


def test_caller_objects_are_not_modified(client: meterline.Client) -> None:
    data = {"a": [1, {"b": (2, 3)}], "d": Decimal("1.5")}
    before = repr(data)
    client.track("api.call", "c1", data)
    assert repr(data) == before
