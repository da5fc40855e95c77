"""Fixtures: one real meterline-server per test session, unique subjects and types."""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from support import Server, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    srv.process.terminate()
    try:
        srv.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.process.kill()


@pytest.fixture
def subject() -> str:
    """A customer id no other test uses, so each test reads back only its own events."""
    return f"cust-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def event_type() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
