"""The entitlement and stream conformance vectors (tests/vectors/entitlements.json,
stream.json) through this package's native module: each step is one call of the core's
``EntitlementCache`` (``_native._EntitlementCache``, a private conformance surface with an
explicit clock); the expectations are compared here."""

from __future__ import annotations

from typing import Any

import pytest

from meterline import _native

from support import load_vector


def matches(ctx: str, got: Any, want: Any) -> None:
    """Every key given in ``want`` must match (numbers numerically), as the Rust runner."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{ctx}: got {got!r}, want {want!r}"
        for key, w in want.items():
            matches(f"{ctx}.{key}", got.get(key), w)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{ctx}: got {got!r}, want {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            matches(f"{ctx}[{i}]", g, w)
    elif isinstance(want, (int, float)) and not isinstance(want, bool):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{ctx}: got {got!r}"
        assert float(got) == float(want), f"{ctx}: got {got!r}, want {want!r}"
    else:
        assert got == want, f"{ctx}: got {got!r}, want {want!r}"


def scenarios(file: str) -> list[Any]:
    doc = load_vector(file)
    payloads = doc.get("payloads") or {}
    return [
        pytest.param(file, scenario, payloads, id=f"{file}:{scenario['name']}")
        for scenario in doc["scenarios"]
    ]


@pytest.mark.parametrize(
    ("file", "scenario", "payloads"),
    scenarios("entitlements.json") + scenarios("stream.json"),
)
def test_vector(file: str, scenario: dict[str, Any], payloads: dict[str, Any]) -> None:
    cache = _native._EntitlementCache(scenario.get("settings") or {}, payloads)
    for i, step in enumerate(scenario["steps"]):
        got = cache.step(step)
        if "expect" in step:
            matches(f"{file}: {scenario['name']}: step {i} ({step['op']})", got, step["expect"])


def test_every_vector_file_has_enough_steps() -> None:
    for file, least in (("entitlements.json", 50), ("stream.json", 30)):
        steps = sum(len(s["steps"]) for s in load_vector(file)["scenarios"])
        assert steps > least, file


def test_a_malformed_step_is_a_clear_error() -> None:
    cache = _native._EntitlementCache({})
    with pytest.raises(ValueError, match="unknown op"):
        cache.step({"op": "nope"})
    with pytest.raises(ValueError, match="`now` must be an integer"):
        cache.step({"op": "lookup", "subject": "c1", "feature": "x", "now": "soon"})
