"""meterline vs PostHog and Segment, from Python: caller-side cost per call, end-to-end
delivery throughput and peak RSS. A benchmark script, not a test.

    bindings-python/.venv/bin/python bench/python_peers.py [--events 200000]
        [--server target/release/meterline-server] [--out bench/out/python_peers.json]

(`scripts/bench-python.sh` builds the release wheel into that venv and runs this.) The script
installs ``posthog`` and ``segment-analytics-python`` from PyPI (the versions pinned in
``PEERS``; pip does nothing when they are there) into the running interpreter's venv, starts
on 127.0.0.1

* a real ``meterline-server`` (``--server``; by default the release build, built with cargo
  if missing) on a fresh SQLite file, which meterline delivers to, and
* a small HTTP sink (a subprocess) that accepts everything PostHog (``POST /batch/``) and
  Segment (``POST /v1/batch``) send and counts the events,

then runs each SDK in its own subprocess, one after the other:

* **per call** — wall time of ``N`` calls of ``track``/``capture`` with the same event
  (``api.call`` for ``customer-42`` with ``{"i", "model", "tokens"}``), divided by ``N``;
* **end to end** — ``N`` events from the first call until the receiver has them all
  (meterline: ``flush()`` returns once the server has committed every batch; peers: the
  sink has counted ``N``), as events per second;
* **peak RSS** of the SDK's process (``ru_maxrss``).

Every SDK gets a queue large enough for ``N`` events (so nothing is dropped) and its
default batching otherwise. It prints a table with the ratios to meterline and writes
``--out`` (default ``bench/out/python_peers.json``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Pinned: a figure names the version it was measured against (scripts/results.py records them).
PEERS = ["posthog==7.91.1", "segment-analytics-python==2.4.0"]
PROPS = {"model": "m-large", "tokens": 1234}


# --- the sink (runs in its own process) ---------------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    count = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(json.dumps({"count": _Sink.count}).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/__reset":
            with _Sink.lock:
                _Sink.count = 0
            return self._reply(b"{}")
        if self.headers.get("Content-Encoding") == "gzip" or body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        payload = json.loads(body or b"{}")
        if isinstance(payload, dict):
            n = len(payload.get("batch", [])) or 1
        elif isinstance(payload, list):
            n = len(payload)
        else:
            n = 1
        with _Sink.lock:
            _Sink.count += n
        self._reply(b'{"status": 1}')


def run_sink() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    print(f"sink listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


# --- one SDK (runs in its own process) -----------------------------------------------------


def _sink_count(sink: str) -> int:
    with urllib.request.urlopen(sink + "/__count", timeout=10) as resp:
        return int(json.load(resp)["count"])


def run_child(sdk: str, n: int, endpoint: str, key: str) -> None:
    if sdk == "meterline":
        import meterline

        client = meterline.Client(key, endpoint, max_queue_size=n + 10, fetch_schemas=False)
        call = client.track
        started = time.perf_counter()
        for i in range(n):
            call("api.call", "customer-42", {"i": i, **PROPS})
        calls_done = time.perf_counter()
        client.flush(timeout=600)
        delivered = time.perf_counter()
        stats = client.stats()
        assert stats.sent + stats.duplicates == n, stats
        client.shutdown(timeout=60)
    else:
        if sdk == "posthog":
            from posthog import Posthog

            peer = Posthog(key, host=endpoint, max_queue_size=n + 10)

            def call(event: str, subject: str, props: dict[str, Any]) -> None:
                peer.capture(event, distinct_id=subject, properties=props)
        else:
            from segment.analytics import Client as Segment

            peer = Segment(key, host=endpoint, max_queue_size=n + 10)

            def call(event: str, subject: str, props: dict[str, Any]) -> None:
                peer.track(subject, event, props)

        started = time.perf_counter()
        for i in range(n):
            call("api.call", "customer-42", {"i": i, **PROPS})
        calls_done = time.perf_counter()
        while _sink_count(endpoint) < n:
            time.sleep(0.005)
        delivered = time.perf_counter()
        peer.shutdown()
    print(
        json.dumps(
            {
                "sdk": sdk,
                "per_call_ns": (calls_done - started) / n * 1e9,
                "events_per_s": n / (delivered - started),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


# --- the driver -----------------------------------------------------------------------------


def _start(
    cmd: list[str], prefixes: dict[str, str], timeout: float = 60
) -> tuple[Any, dict[str, str]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    found: dict[str, str] = {}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            for prefix, name in prefixes.items():
                if line.startswith(prefix):
                    found[name] = line[len(prefix) :].strip()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while len(found) < len(prefixes):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"could not start {cmd[0]}")
        time.sleep(0.02)
    return proc, found


def _server_binary() -> Path:
    binary = REPO / "target" / "release" / "meterline-server"
    if not binary.exists():
        print("building meterline-server (release) ...", flush=True)
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "-p", "meterline-server"],
            cwd=REPO,
            check=True,
        )
    return binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--server", type=Path, help="the meterline-server binary to deliver to")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "python_peers.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        return run_sink()
    if args.child:
        return run_child(args.child, args.events, args.endpoint, args.key)

    print(f"installing {', '.join(PEERS)} into {sys.prefix} ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEERS],
        check=True,
    )
    import meterline

    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    db = out / "python_peers.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    server, server_info = _start(
        [
            str(args.server or _server_binary()),
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            f"sqlite://{db}",
        ],
        {"meterline-server listening on ": "endpoint", "secret key: ": "key"},
    )
    sink, sink_info = _start(
        [sys.executable, __file__, "--sink"], {"sink listening on ": "endpoint"}
    )
    results = []
    try:
        runs = [
            ("meterline", server_info["endpoint"], server_info["key"]),
            ("posthog", sink_info["endpoint"], "phc_benchmark"),
            ("segment", sink_info["endpoint"], "benchmark-write-key"),
        ]
        for sdk, endpoint, key in runs:
            if sdk != "meterline":
                urllib.request.urlopen(
                    urllib.request.Request(
                        sink_info["endpoint"] + "/__reset", data=b"", method="POST"
                    ),
                    timeout=10,
                ).close()
            print(f"running {sdk} ({args.events} events) ...", flush=True)
            done = subprocess.run(
                [sys.executable, __file__, "--child", sdk, "--events", str(args.events),
                 "--endpoint", endpoint, "--key", key],
                capture_output=True, text=True, check=True, timeout=1800,
            )  # fmt: skip
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        for proc in (server, sink):
            proc.terminate()
            proc.wait(timeout=30)

    ours = results[0]
    versions = {"meterline": meterline.__version__}
    for dist, name in (("posthog", "posthog"), ("segment-analytics-python", "segment")):
        from importlib.metadata import version

        versions[name] = version(dist)
    print()
    print(f"{args.events} events per SDK; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    header = (
        f"{'SDK':<22} {'per call (ns)':>14} {'e2e events/s':>13} {'peak RSS (MiB)':>15} "
        f"{'call cost vs meterline':>23} {'meterline throughput x':>23}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        name = f"{r['sdk']} {versions[r['sdk']]}"
        print(
            f"{name:<22} {r['per_call_ns']:>14,.0f} {r['events_per_s']:>13,.0f} "
            f"{r['peak_rss_mib']:>15.1f} {r['per_call_ns'] / ours['per_call_ns']:>22.1f}x "
            f"{ours['events_per_s'] / r['events_per_s']:>22.1f}x"
        )
    record = {
        "events": args.events,
        "python": sys.version.split()[0],
        "versions": versions,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
