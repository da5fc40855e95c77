"""The disk spool survives SIGKILL (issue 8): a Python child process tracking 100,000 events
with ``spool_dir`` is killed with SIGKILL at random points several times and restarted each
time; a final run drains the spool. In the end the server holds exactly the events
``track()`` accepted, none twice, and the spool is empty.

The child (``spool_crash_child.py``) prints ``accepted <index>`` after each ``track()`` that
returned. An index the child was in when killed may be spooled without being reported, so
the next run starts two past the last reported index: each id is tracked by one run only,
and the server may hold such an unreported event (it is in ``attempted``) but never one
that no run tracked. The kill points come from a seeded random generator; the seed is
printed, and ``METERLINE_SPOOL_SEED=<seed>`` reruns the same points.

Each run sends through its own recording front (``front.py``), so what each run sent is
known: within a run an id goes out again only after a failed or unanswered attempt, and what
a run sends of earlier runs' ids (its replay) is at most what the spool held when it
started; at least one kill leaves events in the spool, and the final run replays them all.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import meterline

from front import RecordingFront, assert_resent_only_after_failures
from support import Server

TOTAL = 100_000
KILLS = 5
CHILD = Path(__file__).with_name("spool_crash_child.py")
#: A run that neither reaches its kill point nor finishes within this long has hung.
RUN_DEADLINE_S = 120.0


@dataclass
class Run:
    accepted: list[int] = field(default_factory=list)
    replayed: int | None = None
    final_spool_length: int | None = None
    returncode: int | None = None
    stderr: str = ""


def run_child(
    server: Server,
    endpoint: str,
    spool: Path,
    event_type: str,
    start: int,
    kill_after: int | None,
    stderr_path: Path,
) -> Run:
    """Runs the child over ``start..TOTAL``; with ``kill_after``, SIGKILLs it as soon as it
    reported that many accepted events."""
    run = Run()
    with stderr_path.open("w") as stderr:
        child = subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                server.secret_key,
                endpoint,
                str(spool),
                event_type,
                str(start),
                str(TOTAL),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        # A hung child is killed so that the read below ends; the assertions then fail.
        watchdog = threading.Timer(RUN_DEADLINE_S, child.kill)
        watchdog.start()
        try:
            assert child.stdout is not None
            for line in child.stdout:
                word, _, value = line.strip().partition(" ")
                if word == "accepted":
                    run.accepted.append(int(value))
                    if kill_after is not None and len(run.accepted) == kill_after:
                        child.send_signal(signal.SIGKILL)
                elif word == "replaying":
                    run.replayed = int(value)
                elif word == "spool_length":
                    run.final_spool_length = int(value)
            run.returncode = child.wait()
        finally:
            watchdog.cancel()
    run.stderr = stderr_path.read_text()[-2000:]
    return run


def spooled(server: Server, spool: Path) -> int:
    """How many events the spool holds, read by a client that cannot send (what it found
    stays spooled)."""
    client = meterline.Client(
        server.secret_key,
        "http://127.0.0.1:9",
        fetch_schemas=False,
        stream=False,
        spool_dir=spool,
    )
    held = client.stats().spool_length
    with contextlib.suppress(meterline.TimeoutError):
        client.shutdown(timeout=0)
    assert client.stats().spool_length == held, "the counting client sent nothing"
    return held


def replayed(front: RecordingFront, start: int) -> int:
    """Checks the resend bound over one run's attempts; returns how many distinct ids of
    earlier runs (below ``start``) the run sent."""
    attempts = front.seen()
    assert_resent_only_after_failures(attempts)
    ids = {event_id for a in attempts for event_id in a.ids or []}
    return sum(1 for event_id in ids if int(event_id.removeprefix("spool-")) < start)


def test_sigkilled_client_loses_nothing_and_sends_nothing_twice(
    server: Server, event_type: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("METERLINE_SPOOL_SEED", random.randrange(2**32)))
    print(f"spool crash seed: {seed} (rerun with METERLINE_SPOOL_SEED={seed})")
    rng = random.Random(seed)
    spool = tmp_path / "spool"
    accepted: set[int] = set()
    attempted: set[int] = set()  # every index some run may have tracked
    start = 0
    began = time.monotonic()
    # (spooled at the start, replayed) of each run after the first.
    replays: list[tuple[int, int]] = []
    for round_ in range(KILLS):
        # At most 5 * 15,000 = 75,000 before the last kill: every kill lands mid-run.
        kill_after = rng.randrange(1_000, 15_000)
        held = spooled(server, spool)
        front = RecordingFront(server.endpoint).start()
        run = run_child(
            server,
            front.url,
            spool,
            event_type,
            start,
            kill_after,
            tmp_path / f"child{round_}.err",
        )
        context = f"seed {seed}, round {round_}, stderr: {run.stderr}"
        assert run.returncode == -signal.SIGKILL, context
        assert len(run.accepted) >= kill_after, context
        assert run.final_spool_length is None, f"the child finished before the kill ({context})"
        assert run.accepted == list(range(start, start + len(run.accepted))), context
        if round_ > 0:
            replays.append((held, replayed(front, start)))
        front.close()
        last = run.accepted[-1]
        accepted.update(run.accepted)
        attempted.update(range(start, last + 2))
        print(
            f"round {round_}: replayed {run.replayed}, killed after {len(run.accepted)} "
            f"accepted (asked {kill_after}), next {last + 2}"
        )
        start = last + 2

    held = spooled(server, spool)
    front = RecordingFront(server.endpoint).start()
    run = run_child(server, front.url, spool, event_type, start, None, tmp_path / "final.err")
    context = f"seed {seed}, final run, stderr: {run.stderr}"
    assert run.returncode == 0, context
    # The final run is not killed: it replays all that the last kill left.
    assert replayed(front, start) == held, context
    front.close()
    replays.append((held, held))
    print(f"(spooled at start, replayed) per restart: {replays}")
    for held_then, sent in replays:
        assert sent <= held_then, f"a run sent {sent} earlier ids with {held_then} spooled"
    assert any(held_then > 0 and sent > 0 for held_then, sent in replays), (
        f"no kill left events in the spool to replay: {replays}"
    )
    assert run.final_spool_length == 0, context
    assert run.accepted == list(range(start, TOTAL)), context
    accepted.update(run.accepted)
    attempted.update(range(start, TOTAL))
    print(f"final run: replayed {run.replayed}; children took {time.monotonic() - began:.1f} s")

    stored = [int(e["id"].removeprefix("spool-")) for e in server.events(type=event_type)]
    unique = set(stored)
    assert len(unique) == len(stored), f"an event was stored twice (seed {seed})"
    lost = sorted(accepted - unique)[:10]
    assert not lost, f"accepted events never stored (first 10, seed {seed}): {lost}"
    stray = sorted(unique - attempted)[:10]
    assert not stray, f"stored events no run tracked (seed {seed}): {stray}"
    assert len(accepted) == TOTAL - KILLS  # one index skipped per kill
    print(
        f"stored {len(stored)} events, {len(accepted)} accepted; "
        f"total {time.monotonic() - began:.1f} s"
    )

    # A new client on the same directory finds nothing to replay.
    with meterline.Client(
        server.secret_key,
        server.endpoint,
        fetch_schemas=False,
        stream=False,
        spool_dir=spool,
    ) as client:
        assert client.stats().spool_length == 0
