"""The built wheel installs into a fresh venv, and the README quick start and the example
run there against the real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from support import REPO, Server

WHEEL_DIR = os.environ.get("METERLINE_WHEEL_DIR")

pytestmark = pytest.mark.skipif(
    not WHEEL_DIR,
    reason="METERLINE_WHEEL_DIR is not set: scripts/test-python.sh builds the wheel and sets it",
)


def wheel() -> Path:
    assert WHEEL_DIR is not None
    (found,) = Path(WHEEL_DIR).glob("meterline-*.whl")
    return found


def readme_quick_start() -> str:
    text = (REPO / "bindings-python" / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block in the README's quick start"
    return match.group(1)


def test_wheel_is_abi3_and_typed() -> None:
    path = wheel()
    assert "-cp310-abi3-" in path.name
    names = zipfile.ZipFile(path).namelist()
    for required in ("meterline/py.typed", "meterline/_native.pyi", "meterline/__init__.py"):
        assert required in names
    assert any(re.fullmatch(r"meterline/_native\.abi3\.so", n) for n in names), names


def test_fresh_venv_runs_readme_quick_start_and_example(
    server: Server, tmp_path: Path, subject: str
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--disable-pip-version-check",
            wheel(),
        ],
        check=True,
        timeout=300,
    )
    env = {
        **os.environ,
        "METERLINE_API_KEY": server.secret_key,
        "METERLINE_ENDPOINT": server.endpoint,
        "PYTHONPATH": "",
    }
    script = tmp_path / "quick_start.py"
    script.write_text(readme_quick_start())
    done = subprocess.run(
        [python, script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "tracked" in done.stdout
    assert "refused: invalid_event at /data/tokens" in done.stdout
    assert "sent=1" in done.stdout

    example = REPO / "examples" / "python-quickstart" / "quickstart.py"
    done = subprocess.run(
        [python, example], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "refused as expected: invalid_event at /data/tokens" in done.stdout
    assert "stats: enqueued=6 sent=6" in done.stdout
    assert re.search(r"the server stored \d+ events", done.stdout)
    # The installed package is the wheel's, not the source tree's.
    where = subprocess.run(
        [python, "-c", "import meterline; print(meterline.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in where.stdout
    assert sys.prefix != str(env_dir)
