#!/usr/bin/env bash
# Instruction counts of the core's hot paths (core/benches/instructions.rs, gungraun under
# valgrind's callgrind) compared with the checked-in baseline bench/instructions.json.
# Instruction counts do not depend on the load of the machine, so this guards speed in CI:
# a benchmark more than the baseline's margin above its figure fails the run.
#
#   scripts/bench-instructions.sh [SUMMARY]   compare; append "instructions: N passed, N failed"
#                                             to the file SUMMARY when given
#   scripts/bench-instructions.sh --update    write today's counts as the new baseline
# Installs valgrind (Debian) and gungraun-runner (crates.io, into target/tools) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

mode=compare
summary=
case "${1:-}" in
  --update) mode=update ;;
  "") ;;
  *) summary=$1 ;;
esac
record() { [ -z "$summary" ] || echo "instructions: $1 passed, $2 failed" >>"$summary"; }

# The runner must be the library's exact version (core/Cargo.toml pins gungraun).
version=$(sed -n 's/^gungraun = "=\([0-9.]*\)".*/\1/p' core/Cargo.toml)
runner=target/tools/bin/gungraun-runner
if ! command -v valgrind >/dev/null 2>&1; then
  step "instructions: installing valgrind (Debian)"
  (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null || { record 0 1; exit 1; }
fi
if [ ! -x "$runner" ] || [ "$("$runner" --version 2>/dev/null | awk '{print $NF}')" != "$version" ]; then
  step "instructions: installing gungraun-runner $version into target/tools"
  cargo install --quiet --locked --root target/tools gungraun-runner --version "$version" ||
    cargo install --quiet --root target/tools gungraun-runner --version "$version" || { record 0 1; exit 1; }
fi

step "instructions: core hot paths under callgrind"
out=target/gungraun
rm -rf "$out"
# The release profile for the host triple, as the Python and Node builds use, so the
# dependencies they compiled are reused rather than built a second time.
host=$(rustc -vV | sed -n 's/^host: //p')
if ! GUNGRAUN_RUNNER="$PWD/$runner" cargo bench --locked --profile release --target "$host" \
  -p meterline-core --bench instructions -- \
  --save-summary=json 2>&1 | tail -n 40; then
  record 0 1
  exit 1
fi

python3 - "$mode" "$out" bench/instructions.json "${summary:-}" <<'PY'
import json, os, pathlib, re, sys

mode, root, baseline_path, summary = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4]

def instructions(summary):
    """The callgrind `Ir` count of one benchmark's summary.json (gungraun's layout)."""
    for profile in summary.get("profiles", []):
        for part in profile.get("summaries", {}).get("parts", []):
            for kind, diff in part.get("metrics_summary", {}).get("Callgrind", {}).items():
                if kind == "Ir":
                    metrics = diff.get("metrics", {})
                    value = metrics.get("Left") or metrics.get("Both", [None])[0]
                    if isinstance(value, dict):
                        value = value.get("Int") or value.get("Float")
                    return int(value)
    raise SystemExit(f"no Ir count in a summary under {root}")

found = {}
for path in sorted(root.rglob("summary.json")):
    s = json.loads(path.read_text())
    name = f"{s['module_path'].split('::', 1)[-1]} {s['id']}"
    found[name] = instructions(s)
if not found:
    raise SystemExit(f"no summary.json under {root}: did the benchmarks run?")

baseline = json.loads(baseline_path.read_text())
benches = baseline["benchmarks"]
if mode == "update":
    for name, ir in found.items():
        entry = benches.setdefault(name, {"per": 1, "unit": "call"})
        entry["instructions"] = ir
    baseline_path.write_text(json.dumps(baseline, indent=2) + "\n")
    print(f"wrote {len(found)} counts to {baseline_path}")
    raise SystemExit(0)

margin = baseline["margin_percent"]
passed = failed = 0
print(f"{'benchmark':58} {'baseline':>10} {'now':>10} {'ratio':>7}   (instructions per unit)")
for name in sorted(set(found) | set(benches)):
    entry = benches.get(name)
    if entry is None or name not in found:
        print(f"{name:58} {'missing from ' + ('the baseline' if entry is None else 'this run'):>30}  FAIL")
        failed += 1
        continue
    per = entry["per"]
    before, now = entry["instructions"] / per, found[name] / per
    ratio = now / before
    ok = ratio <= 1 + margin / 100
    passed += ok
    failed += not ok
    print(f"{name:58} {before:10.0f} {now:10.0f} {ratio:7.3f}   per {entry['unit']}{'' if ok else f'  FAIL (> +{margin}%)'}")
print(f"instructions: {passed} passed, {failed} failed")
if os.environ.get("RESULTS_RECORD"):
    # `make bench`: one result file per benchmark (scripts/results.py), for bench/RESULTS.md.
    sys.path.insert(0, "scripts")
    import results

    for name in sorted(set(found) & set(benches)):
        entry = benches[name]
        per, unit = entry["per"], entry["unit"]
        before, now = entry["instructions"] / per, found[name] / per
        results.record(
            "core-instructions-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"),
            metric=f"instructions per {unit}: {entry.get('label', name)}",
            target=f"≤ +{margin} % over bench/instructions.json",
            value=round(now),
            unit="instructions",
            ratio=f"{now / before:.3f}× the baseline ({before:,.0f})",
            met=now / before <= 1 + margin / 100,
            conditions="callgrind (gungraun under valgrind), release profile; independent of the load; CI runs it in `make test`",
            command="make bench-instructions",
        )
if summary:
    with open(summary, "a") as f:
        f.write(f"instructions: {passed} passed, {failed} failed\n")
raise SystemExit(1 if failed else 0)
PY
