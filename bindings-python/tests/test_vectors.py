"""The shared conformance vectors (tests/vectors/*.json) through the public Python API.

events.json through ``track()``, options.json through ``Client(...)``, errors.json against
the exported classes and the errors public calls raise, and entitlements.json's ``primed``
answers through ``prime_entitlements()`` + ``cached_entitlement()``/``entitlement()``. The
decisions no public call exposes (retry.json, the cache's clock-driven steps, stream.json)
are the core's to run (core/tests); this package's end-to-end tests against the real server
cover them here.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Any

import pytest

import meterline
from meterline import errors

from support import REPO, load_vector

EVENTS = load_vector("events.json")
OPTIONS = load_vector("options.json")
ERRORS = load_vector("errors.json")
ENTITLEMENTS = load_vector("entitlements.json")
TABLE = {row["snake"]: row for row in OPTIONS["table"]}
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


# ---------------------------------------------------------------------------------------
# options.json


def _python_options(case: dict[str, Any]) -> dict[str, Any]:
    """The case's neutral options as Python takes them: durations in seconds."""
    out = {}
    for name, value in case["options"].items():
        row = TABLE.get(name)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        out[name] = value / 1000 if row and row["type"] == "duration" and is_number else value
    return out


@pytest.fixture
def case_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    def apply(case: dict[str, Any]) -> None:
        monkeypatch.delenv("METERLINE_ENDPOINT", raising=False)
        for name, value in (case.get("env") or {}).items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)

    return apply


@pytest.mark.parametrize("case", OPTIONS["valid"], ids=[c["name"] for c in OPTIONS["valid"]])
def test_valid_options(case: dict[str, Any], case_env: Any) -> None:
    case_env(case)
    client = meterline.Client(**_python_options(case))
    try:
        config = case["expect"].get("config", {})
        if "endpoint" in config:
            assert client.endpoint == config["endpoint"]
        if "source" in config:
            assert client.source == config["source"]
    finally:
        client.shutdown(timeout=0)


@pytest.mark.parametrize("case", OPTIONS["invalid"], ids=[c["name"] for c in OPTIONS["invalid"]])
def test_invalid_options(case: dict[str, Any], case_env: Any) -> None:
    case_env(case)
    expect = case["expect"]
    with pytest.raises(meterline.MeterlineError) as raised:
        meterline.Client(**_python_options(case))
    error = raised.value
    assert type(error).__name__ == expect["class"], error
    assert error.code == expect["code"]
    assert isinstance(error, meterline.ConfigError)
    assert error.field == expect["option"]  # snake_case: the name as Python spells it
    assert expect["option"] in str(error)


def test_the_option_docs_are_the_core_table() -> None:
    """_options.py (and index.d.ts) are what scripts/gen-option-docs.py writes from the table."""
    script = REPO / "scripts" / "gen-option-docs.py"
    run = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    from meterline._options import ClientOptions

    core = {row["snake"] for row in OPTIONS["table"]} - {"api_key", "endpoint"}
    callbacks = {"on_error", "on_usage_threshold", "on_connection_change", "token_provider"}
    assert set(ClientOptions.__annotations__) == core | callbacks


# ---------------------------------------------------------------------------------------
# errors.json


def _nearest_meterline_base(cls: type) -> str | None:
    bases = [b for b in cls.__mro__[1:] if b.__module__ == errors.__name__]
    return bases[0].__name__ if bases else None


def test_the_error_classes_are_the_core_list() -> None:
    listed = {c["name"]: c for c in ERRORS["classes"]}
    assert set(errors.__all__) == set(listed)
    for name, listing in listed.items():
        cls = getattr(meterline, name)
        assert issubclass(cls, meterline.MeterlineError)
        assert _nearest_meterline_base(cls) == listing["parent"], name
        assert cls("built by hand").code == listing["default_code"], name


@pytest.mark.parametrize(
    "case", ERRORS["cases"], ids=[f"{c['source']}:{c['code']}" for c in ERRORS["cases"]]
)
def test_each_error_case_names_an_exported_class(case: dict[str, Any]) -> None:
    cls = getattr(meterline, case["class"])
    error = cls("from the vector", code=case["code"])
    assert error.code == case["code"]
    assert isinstance(error, meterline.MeterlineError)


def _raised(call: Any) -> meterline.MeterlineError:
    with pytest.raises(meterline.MeterlineError) as raised:
        call()
    return raised.value


def test_public_calls_raise_the_class_errors_json_names(clients: Any) -> None:
    by_code = {(c["source"], c["code"]): c["class"] for c in ERRORS["cases"]}
    client = clients[False]
    closed = meterline.Client(KEY, NOWHERE, fetch_schemas=False)
    closed.shutdown(timeout=0)
    slow = meterline.Client(KEY, NOWHERE, fetch_schemas=False, flush_interval=3600.0)
    slow.track("api.call", "c1", {"n": 1})
    raised = {
        ("config", "invalid_config"): _raised(lambda: meterline.Client(KEY, NOWHERE, flush_at=0)),
        ("validation", "invalid_event"): _raised(lambda: client.track("api.call", "c1", [])),
        ("validation", "invalid_argument"): _raised(lambda: client.cached_entitlement("", "sso")),
        ("closed", "client_closed"): _raised(lambda: closed.track("api.call", "c1", {})),
        ("timeout", "timeout"): _raised(lambda: slow.flush(timeout=0.01)),
    }
    with contextlib.suppress(meterline.TimeoutError):
        slow.shutdown(timeout=0.01)
    for key, error in raised.items():
        assert error.code == key[1], (key, error)
        assert type(error).__name__ == by_code[key], (key, error)


# ---------------------------------------------------------------------------------------
# entitlements.json: answers after prime_entitlements()


def matches(ctx: str, got: Any, want: Any) -> None:
    """Every key given in ``want`` must be present in ``got`` and match (numbers
    numerically)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{ctx}: got {got!r}, want {want!r}"
        for key, w in want.items():
            assert key in got, f"{ctx}: no {key!r} in {got!r}"
            matches(f"{ctx}.{key}", got[key], w)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{ctx}: got {got!r}, want {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            matches(f"{ctx}[{i}]", g, w)
    elif isinstance(want, (int, float)) and not isinstance(want, bool):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{ctx}: got {got!r}"
        assert float(got) == float(want), f"{ctx}: got {got!r}, want {want!r}"
    else:
        assert got == want, f"{ctx}: got {got!r}, want {want!r}"


@pytest.mark.parametrize(
    "case", ENTITLEMENTS["primed"], ids=[c["name"] for c in ENTITLEMENTS["primed"]]
)
def test_primed_entitlement_answers(case: dict[str, Any]) -> None:
    client = meterline.Client(KEY, NOWHERE, fetch_schemas=False, stream=False)
    try:
        for name in case["prime"]:
            client.prime_entitlements(ENTITLEMENTS["primed_payloads"][name])
        for answer in (
            client.cached_entitlement(case["subject"], case["feature"]),
            client.entitlement(case["subject"], case["feature"]),
        ):
            matches(case["name"], answer.to_dict(), case["expect"])
    finally:
        client.shutdown(timeout=0)


def test_matches_refuses_a_missing_key() -> None:
    with pytest.raises(AssertionError, match="no 'reason'"):
        matches("self-test", {"source": "cache"}, {"source": "cache", "reason": None})
