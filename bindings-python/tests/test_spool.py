"""The disk spool through the Python API: events accepted while the server is unreachable
survive the client and go out from the next client on the same directory; bad options are
clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import meterline

from support import Server


def unused_endpoint() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def test_spooled_events_are_sent_by_the_next_client(
    server: Server, subject: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    down = meterline.Client(
        server.secret_key,
        unused_endpoint(),
        source="python-spool",
        spool_dir=spool,
        fetch_schemas=False,
    )
    ids = [down.track("api.call", subject, {"tokens": i}) for i in range(20)]
    assert down.stats().spool_length == 20
    with pytest.raises(meterline.TimeoutError):
        down.shutdown(timeout=0.2)
    # What shutdown could not deliver stays spooled (not dropped), and shutdown released the
    # directory: the next client opens it while `down` still exists.
    stats = down.stats()
    assert (stats.dropped, stats.spool_length) == (0, 20)
    assert server.events(subject=subject) == []

    with meterline.Client(
        server.secret_key, server.endpoint, source="python-spool", spool_dir=str(spool)
    ) as up:
        up.flush(timeout=10)
        assert up.stats().spool_length == 0
    assert sorted(e["id"] for e in server.events(subject=subject)) == sorted(ids)


def test_one_client_per_spool_directory(server: Server, tmp_path: Path) -> None:
    with (
        meterline.Client(server.secret_key, server.endpoint, spool_dir=tmp_path),
        pytest.raises(meterline.ConfigError) as error,
    ):
        meterline.Client(server.secret_key, server.endpoint, spool_dir=tmp_path)
    assert "spool_dir" in str(error.value)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"spool_dir": 42}, "spool_dir"),
        ({"spool_dir": ""}, "spool_dir"),
        ({"spool_dir": b"/tmp/x"}, "spool_dir"),
        ({"spool_fsync": "sometimes"}, "spool_fsync"),
        ({"spool_fsync": 1}, "spool_fsync"),
    ],
)
def test_bad_spool_options_name_the_option(
    server: Server, options: dict[str, object], name: str
) -> None:
    with pytest.raises(meterline.ConfigError) as error:
        meterline.Client(server.secret_key, server.endpoint, **options)  # type: ignore[arg-type]
    assert name in str(error.value)
