"""Test helpers: start a real meterline-server on 127.0.0.1 (embedded SQLite in a temp dir)
and read back what it stored; load the shared vectors."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"
# Set by scripts/test-python.sh: a missing server binary fails the run instead of skipping.
REQUIRE_SERVER = os.environ.get("METERLINE_TEST_REQUIRE_SERVER") == "1"


@cache
def cargo_target_dir() -> Path:
    """Where cargo builds: $CARGO_TARGET_DIR (relative to the working directory, as cargo
    reads it), else `cargo metadata`'s `target_directory`, else `target/`."""
    env = os.environ.get("CARGO_TARGET_DIR")
    if env:
        return Path(env).resolve()
    try:
        meta = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        )
        return Path(json.loads(meta.stdout)["target_directory"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return REPO / "target"


def server_bin() -> Path:
    """$METERLINE_SERVER_BIN, or the workspace's debug build where cargo puts it."""
    if "METERLINE_SERVER_BIN" in os.environ:
        return Path(os.environ["METERLINE_SERVER_BIN"])
    return cargo_target_dir() / "debug" / "meterline-server"


@dataclass
class Server:
    """A running meterline-server and its default project's keys."""

    endpoint: str
    secret_key: str
    admin_key: str
    process: subprocess.Popen[str]

    def request(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.endpoint + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {key or self.secret_key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def events(self, **filters: str) -> list[dict[str, Any]]:
        """Every stored event matching the filters (`type`, `subject`), oldest first."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"limit": "1000", **filters}
            if cursor:
                query["cursor"] = cursor
            page = self.request("GET", "/v1/events?" + urllib.parse.urlencode(query))
            out.extend(page["events"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def put_schema(self, event_type: str, schema: dict[str, Any]) -> None:
        self.request("PUT", f"/v1/admin/schemas/{event_type}", schema, key=self.admin_key)


def start_server(tmp: Path) -> Server:
    bin_path = server_bin()
    if not bin_path.exists():
        why = (
            f"meterline-server binary not found at {bin_path}; "
            "build it with `cargo build -p meterline-server` (scripts/test-python.sh does)"
        )
        if REQUIRE_SERVER:
            pytest.fail(why)
        pytest.skip(why)
    log = (tmp / "server.err").open("w")
    process = subprocess.Popen(
        [
            str(bin_path),
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            f"sqlite://{tmp}/m.db",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    found: dict[str, str] = {}
    prefixes = {
        "meterline-server listening on ": "endpoint",
        "secret key: ": "secret",
        "admin key: ": "admin",
    }

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            for prefix, name in prefixes.items():
                if line.startswith(prefix):
                    found[name] = line[len(prefix) :].strip()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while len(found) < 3:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(
                f"meterline-server did not start: {(tmp / 'server.err').read_text()[-2000:]}"
            )
        time.sleep(0.02)
    return Server(found["endpoint"], found["secret"], found["admin"], process)


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())
