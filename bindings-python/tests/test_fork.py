"""Fork safety: after fork() the child works with a fresh core client, the parent is
unaffected, and every event is stored exactly once (nothing lost, nothing duplicated)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import Counter
from typing import Any

import pytest

import meterline

from support import Server

fork = multiprocessing.get_context("fork")

# Set before forking; children inherit it (the gunicorn/multiprocessing pattern).
CLIENT: meterline.Client | None = None


def make(server: Server, **options: Any) -> meterline.Client:
    options.setdefault("flush_interval", 3600.0)  # nothing leaves unless flushed
    return meterline.Client(server.secret_key, server.endpoint, source="fork-tests", **options)


def child_tracks(subject: str, count: int) -> None:
    assert CLIENT is not None
    for i in range(count):
        CLIENT.track("api.call", subject, {"who": "child", "i": i, "pid": os.getpid()})
    # No flush: the multiprocessing exit hook delivers what is pending.


def pool_task(args: tuple[str, int]) -> int:
    subject, n = args
    assert CLIENT is not None
    CLIENT.track("api.call", subject, {"who": "pool", "n": n})
    return os.getpid()


def test_fork_with_multiprocessing(server: Server, subject: str) -> None:
    global CLIENT
    CLIENT = client = make(server)
    try:
        parent_ids = [
            client.track("api.call", subject, {"who": "parent", "i": i}) for i in range(5)
        ]
        child = fork.Process(target=child_tracks, args=(subject, 20))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        parent_ids += [
            client.track("api.call", subject, {"who": "parent", "i": i}) for i in range(5, 10)
        ]
        client.flush(timeout=10)
        stats = client.stats()
    finally:
        client.shutdown(timeout=10)
        CLIENT = None
    stored = server.events(subject=subject)
    ids = Counter(e["id"] for e in stored)
    assert all(n == 1 for n in ids.values()), "an event was stored twice"
    who = Counter(e["data"]["who"] for e in stored)
    assert who == {"parent": 10, "child": 20}
    assert [e["id"] for e in stored if e["data"]["who"] == "parent"] == parent_ids
    # The parent's counters know nothing of the child's events.
    assert stats.enqueued == 10 and stats.sent == 10


def test_fork_pool_workers(server: Server, subject: str) -> None:
    global CLIENT
    CLIENT = client = make(server)
    try:
        client.track("api.call", subject, {"who": "parent"})
        with fork.Pool(2) as pool:
            pids = pool.map(pool_task, [(subject, n) for n in range(40)])
            pool.close()
            pool.join()
        client.flush(timeout=10)
    finally:
        client.shutdown(timeout=10)
        CLIENT = None
    assert os.getpid() not in pids
    stored = server.events(subject=subject)
    assert len(stored) == 41
    assert sorted(e["data"]["n"] for e in stored if e["data"]["who"] == "pool") == list(range(40))


def test_os_fork_child_and_parent_stay_independent(server: Server, subject: str) -> None:
    client = make(server)
    pending = client.track("api.call", subject, {"who": "parent-before-fork"})
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            assert client.stats().enqueued == 0  # a fresh client: the parent's queue is not here
            client.track("api.call", subject, {"who": "child"})
            client.flush(timeout=10)
            code = 0 if client.stats().sent == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.track("api.call", subject, {"who": "parent-after-fork"})
    client.flush(timeout=10)
    assert client.stats().sent == 2
    client.shutdown(timeout=10)
    stored = server.events(subject=subject)
    assert sorted(e["data"]["who"] for e in stored) == [
        "child",
        "parent-after-fork",
        "parent-before-fork",
    ]
    assert pending in {e["id"] for e in stored}


def test_fork_while_other_threads_track(server: Server, subject: str) -> None:
    """Forks while another thread is inside track() and the sender is busy: no deadlock in
    the children, nothing lost or duplicated in the parent."""
    client = make(server, flush_interval=0.01, flush_at=20)
    stop = threading.Event()
    tracked: list[str] = []

    def hammer() -> None:
        while not stop.is_set() and len(tracked) < 5000:
            tracked.append(client.track("api.call", subject, {"who": "parent"}))
            stop.wait(0.0002)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for _ in range(5):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    client.track("api.call", subject, {"who": "child"})
                    client.flush(timeout=10)
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        thread.join()
    client.flush(timeout=20)
    client.shutdown(timeout=10)
    stored = server.events(subject=subject)
    ids = Counter(e["id"] for e in stored)
    assert all(n == 1 for n in ids.values())
    who = Counter(e["data"]["who"] for e in stored)
    assert who["child"] == 5
    assert who["parent"] == len(tracked)


def test_closed_client_stays_closed_in_the_child(server: Server) -> None:
    client = make(server)
    client.shutdown(timeout=5)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            client.track("api.call", "c1", {})
        except meterline.ClosedError:
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("method", ["flush", "stats", "shutdown"])
def test_unused_inherited_client_needs_no_worker_in_the_child(server: Server, method: str) -> None:
    client = make(server)
    client.track("api.call", "c1", {"pending": True})
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            result = getattr(client, method)(**({} if method == "stats" else {"timeout": 1}))
            code = 0 if method != "stats" or result == meterline.Stats() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.shutdown(timeout=10)
    assert client.stats().sent == 1


def test_forked_children_draw_different_random_bits(server: Server) -> None:
    """A forked child inherits the parent's id generator state. Event ids carry a millisecond
    timestamp and 74 random bits; if two children drew the same bits, ids minted in the same
    millisecond would collide and the server would drop one as a duplicate. Compare only the
    random part, so the test does not depend on the children running in the same millisecond.
    """
    client = make(server)
    client.track("api.call", "fork-bits", {"who": "parent"})  # the generator is in use

    def child_id() -> str:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: send the first id it mints
            code = 1
            try:
                event_id = client.track("api.call", "fork-bits", {"who": "child"})
                os.write(write_end, event_id.encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with os.fdopen(read_end) as pipe:
            return pipe.read()

    ids = [child_id(), child_id(), client.track("api.call", "fork-bits", {"who": "parent"})]
    client.shutdown(timeout=1)
    # UUIDv7: 48 bits of time, then version/variant and the random bits.
    random_parts = {i.replace("-", "")[12:] for i in ids}
    assert len(random_parts) == 3, ids
