#!/usr/bin/env bash
# Before/after figures for a change to the engine: the Python and Node bindings (release) of
# an older commit and of this work tree, measured in one run, interleaved (old, new, old, new,
# ...), with the same harness on both sides (bench/before_after.py, bench/before_after.mjs):
#
# * Python `Client.track()` per call with a schema, Python `cached_entitlement()` and
#   `entitlement()` cache hits;
# * Node `track()` per call with a schema, Node `cachedEntitlement()` cache hit;
# * the core criterion bench `track/5-field event, schema-validated` (BA_CORE=0 skips it),
#   built for the host triple like the bindings so that it shares their dependencies.
#
#   scripts/bench-before-after.sh OLD_COMMIT [--rounds 3] [--calls 200000]
#
# The old commit is checked out as a detached worktree (BA_OLD_TREE, default
# target/before-after/old-src; kept for the next run, remove it with `git worktree remove
# --force`). Both sides build into one cargo target directory (BA_TARGET, default
# target/before-after/cargo): the crates.io dependencies are compiled once, the workspace
# crates once per side. Builds run one at a time; BA_BUILD_ONLY=1 stops after them. Each side gets its own venv
# (target/before-after/venv-old, -new) and its own addon (in its tree's bindings-node/).
# The medians, ratios, commits and load averages go to bench/results/before-after-*.json
# (bench/before_after_summary.py, through scripts/results.py's record) and bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/python-venv.sh

[ $# -ge 1 ] || { echo "usage: $0 OLD_COMMIT [--rounds N] [--calls N]" >&2; exit 2; }
OLD_COMMIT=$(git rev-parse --short "$1^{commit}") || { echo "not a commit: $1" >&2; exit 2; }
shift
ROUNDS=3
CALLS=200000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --calls) CALLS=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

NEW_TREE=$PWD
NEW_COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core bindings-python bindings-node Cargo.toml Cargo.lock || echo -dirty)
BA=$NEW_TREE/target/before-after
OLD_TREE=${BA_OLD_TREE:-$BA/old-src}
export CARGO_TARGET_DIR=${BA_TARGET:-$BA/cargo}
HOST=$(rustc -vV | sed -n "s/^host: //p")
mkdir -p "$BA" "$CARGO_TARGET_DIR"
ensure_rust
ensure_python_venv # the build tools (maturin) of this tree

if [ ! -e "$OLD_TREE/.git" ]; then
  step "worktree of $OLD_COMMIT at $OLD_TREE"
  git worktree add --detach "$OLD_TREE" "$OLD_COMMIT"
fi
[ "$(git -C "$OLD_TREE" rev-parse --short HEAD)" = "$OLD_COMMIT" ] ||
  { echo "$OLD_TREE is not at $OLD_COMMIT; remove it or set BA_OLD_TREE" >&2; exit 1; }

# The host build dependencies (proc macros, build scripts) of this tree's release cache, once.
if [ ! -d "$CARGO_TARGET_DIR/release" ] && [ -d target/release/deps ]; then
  step "seeding $CARGO_TARGET_DIR/release from target/release"
  mkdir -p "$CARGO_TARGET_DIR/release"
  cp -a target/release/deps target/release/build target/release/.fingerprint "$CARGO_TARGET_DIR/release/"
fi

build_side() { # SIDE TREE
  local side=$1 tree=$2 venv=$BA/venv-$1 wheels=$BA/wheels-$1 t0
  t0=$(date +%s)
  step "$side: Python wheel (maturin, release) from $tree"
  rm -rf "$wheels"
  (cd "$tree/bindings-python" && VIRTUAL_ENV="$NEW_TREE/$PY_VENV" "$NEW_TREE/$PY_VENV/bin/maturin" build \
    --release --locked --target "$HOST" --out "$wheels" 2>&1 | tail -n 2)
  [ -x "$venv/bin/python" ] || "$NEW_TREE/$PY_VENV/bin/python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/meterline-*.whl
  step "$side: Node addon (napi, release) in $tree/bindings-node"
  (cd "$tree/bindings-node" && { [ -d node_modules/@napi-rs/cli ] || npm ci --no-audit --no-fund; } &&
    npx napi build --platform --release --strip --js native.js --dts native.d.ts 2>&1 | tail -n 2)
  echo "$side built in $(($(date +%s) - t0)) s"
}
build_side old "$OLD_TREE"
build_side new "$NEW_TREE"
# napi rewrites the generated native.js / native.d.ts; the old tree's copies stay local to it.

if [ "${BA_CORE:-1}" = 1 ]; then
  step "core bench builds (bench profile), one at a time"
  for tree in "$OLD_TREE" "$NEW_TREE"; do
    (cd "$tree" && cargo bench --locked --target "$HOST" -p meterline-core --bench track --no-run 2>&1 | tail -n 1)
  done
fi
[ "${BA_BUILD_ONLY:-0}" = 1 ] && exit 0

core_bench() { # TREE: criterion's estimate for track/5-field, schema-validated, in ns
  (cd "$1" && cargo bench --locked --target "$HOST" -p meterline-core --bench track -- \
    'track/5-field event, schema-validated$' --warm-up-time 1 --measurement-time 3 --noplot >/dev/null 2>&1)
  python3 -c '
import json, pathlib, sys
for meta in pathlib.Path(sys.argv[1]).glob("*/new/benchmark.json"):
    if json.loads(meta.read_text())["function_id"] == "5-field event, schema-validated":
        est = json.loads((meta.parent / "estimates.json").read_text())
        print(round((est.get("slope") or est["mean"])["point_estimate"], 1))
        break
else:
    sys.exit("no criterion result for track/5-field event, schema-validated")
' "$CARGO_TARGET_DIR/criterion/track"
}

OUT=$BA/runs.jsonl
: >"$OUT"
load() { cut -d' ' -f1 /proc/loadavg; }
step "interleaved runs: $ROUNDS × (old, new), $CALLS calls per figure"
for round in $(seq 1 "$ROUNDS"); do
  for side in old new; do
    tree=$NEW_TREE
    [ "$side" = old ] && tree=$OLD_TREE
    l0=$(load)
    py=$("$BA/venv-$side/bin/python" bench/before_after.py --calls "$CALLS")
    js=$(node bench/before_after.mjs --tree "$tree" --calls "$CALLS")
    core=null
    [ "${BA_CORE:-1}" = 1 ] && core=$(core_bench "$tree")
    printf '{"side":"%s","round":%s,"load":[%s,%s],"python":%s,"node":%s,"core_track_ns":%s}\n' \
      "$side" "$round" "$l0" "$(load)" "$py" "$js" "$core" | tee -a "$OUT"
  done
done
python3 bench/before_after_summary.py "$OUT" --old "$OLD_COMMIT" --new "$NEW_COMMIT" \
  --command "scripts/bench-before-after.sh $OLD_COMMIT --rounds $ROUNDS --calls $CALLS"
python3 scripts/results.py render
