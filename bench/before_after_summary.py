# ruff: noqa: RUF001  (the table is written with the multiplication sign and en dash)
"""Turns the interleaved runs of scripts/bench-before-after.sh (one JSON line per side and
round) into result files: one per figure, with the median before and after, their ratio, the
commit pair and the load range, written by scripts/results.py's ``record``.

    python3 bench/before_after_summary.py RUNS.jsonl --old C1 --new C2 --command CMD [--dry-run]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Slower by more than this counts as a regression (the CI guard's margin for instructions).
MARGIN = 1.05

# The bindings' figures are CPU time per call (Python: the calling thread's; Node: the
# process's, its sender idle): on the shared 2-core machine the wall time of a call mostly
# measures the other builds' load. The wall time is given beside it.
PY_CPU = "CPU time of the calling thread per call"
NODE_CPU = "CPU time of the process per call (the sender idle)"
TRACK = (
    "same 3-field event and local JSON Schema on both sides ({}), endpoint accepting and never "
    "answering (nothing retried during the calls), queue holding every event"
)

# id, metric, (language, key) of the figure, its companions (same language), conditions.
FIGURES = [
    (
        "before-after-core-track",
        "before/after the engine move: core `track()` per call, 5-field event, schema-validated",
        ("core_track_ns", None),
        [],
        "criterion `track/5-field event, schema-validated` (queue full at 100,000, "
        "`drop_oldest`), wall time, bench profile, one criterion run per side and round",
    ),
    (
        "before-after-python-track",
        f"before/after the engine move: Python `Client.track()`, schema-validated, {PY_CPU}",
        ("python", "track/cpu_ns"),
        [("python", "track", "wall time")],
        TRACK.format("bench/before_after.py"),
    ),
    (
        "before-after-python-cache-hit",
        f"before/after the engine move: Python `cached_entitlement()` cache hit, {PY_CPU}",
        ("python", "cached_entitlement/cpu_ns"),
        [
            ("python", "cached_entitlement", "wall time"),
            ("python", "entitlement/cpu_ns", "`entitlement()` hit, CPU"),
        ],
        "one hot subject primed with `prime_entitlements`, boolean feature (bench/before_after.py)",
    ),
    (
        "before-after-node-track",
        f"before/after the engine move: Node `track()`, schema-validated, {NODE_CPU}",
        ("node", "track/cpu_ns"),
        [("node", "track", "wall time")],
        TRACK.format("bench/before_after.mjs"),
    ),
    (
        "before-after-node-cache-hit",
        f"before/after the engine move: Node `cachedEntitlement()` cache hit (metered), {NODE_CPU}",
        ("node", "cachedMetered/cpu_ns"),
        [
            ("node", "cachedMetered", "wall time"),
            ("node", "cachedBoolean/cpu_ns", "boolean feature, CPU"),
            ("node", "awaitEntitlement/cpu_ns", "`await entitlement()` hit, CPU"),
        ],
        "one hot subject primed with `primeEntitlements()` (bench/before_after.mjs)",
    ),
]


def figure(run: dict, lang: str, key: str | None) -> float | None:
    """``key`` names a figure of the run's ``lang`` object, ``name`` (its ``ns``) or
    ``name/field``; None: ``lang`` is the figure itself."""
    name, _, field = (key or "").partition("/")
    value = run.get(lang) if key is None else (run.get(lang) or {}).get(name, {}).get(field or "ns")
    return None if value is None else float(value)


def fmt(ns: float) -> str:
    return f"{ns:,.0f}"


def summarize(runs: list[dict], lang: str, key: str | None) -> dict | None:
    sides = {}
    for side in ("old", "new"):
        xs = [x for r in runs if r["side"] == side and (x := figure(r, lang, key)) is not None]
        if not xs:
            return None
        sides[side] = xs
    before, after = statistics.median(sides["old"]), statistics.median(sides["new"])
    return {"before": before, "after": after, "ratio": after / before, "runs": sides}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs")
    parser.add_argument("--old", required=True)
    parser.add_argument("--new", required=True)
    parser.add_argument("--command", required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    runs = [json.loads(line) for line in pathlib.Path(args.runs).read_text().splitlines() if line]
    if not runs:
        sys.exit(f"{args.runs}: no runs")
    loads = [x for r in runs for x in r["load"]]
    load = f"{min(loads):.1f}–{max(loads):.1f}"
    rounds = max(r["round"] for r in runs)

    spec = importlib.util.spec_from_file_location("results", ROOT / "scripts" / "results.py")
    assert spec and spec.loader
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    results.DRY_RUN = args.dry_run

    for result_id, metric, (lang, key), companions, conditions in FIGURES:
        main_figure = summarize(runs, lang, key)
        if main_figure is None:
            print(f"{result_id}: not measured in {args.runs}, left as it was")
            continue
        ratio = main_figure["ratio"]
        spread = "; ".join(
            f"{side} {', '.join(fmt(x) for x in xs)}" for side, xs in main_figure["runs"].items()
        )
        extra = []
        for c_lang, c_key, c_name in companions:
            c = summarize(runs, c_lang, c_key)
            if c:
                extra.append(
                    f"{c_name} {fmt(c['before'])} → {fmt(c['after'])} ns ({c['ratio']:.3f}×)"
                )
        results.record(
            result_id,
            metric=metric,
            value=f"{fmt(main_figure['before'])} → {fmt(main_figure['after'])} ns",
            target=f"no regression (after ≤ {MARGIN:.2f}× before)",
            ratio=f"after / before {ratio:.3f}×" + (f"; {'; '.join(extra)}" if extra else ""),
            met=ratio <= MARGIN,
            conditions=(
                f"{conditions}; release builds of {args.old} (before) and {args.new} (after), "
                f"one run, {rounds} × (old, new) interleaved, each side's median of its "
                f"{rounds} processes (each the median of 3 rounds); runs (ns): {spread}"
            ),
            load=load,
            command=args.command,
        )


if __name__ == "__main__":
    main()
