"""A recording HTTP front on 127.0.0.1 between a client and the real meterline-server (not
a test module): it forwards every request unchanged and records each ingest attempt
(``POST /v1/events``) as the client sent it — its ``Content-Encoding``, the body's first
bytes and length, the event ids when the body can be read here (identity and gzip), the
number of events the server counted in it, and the status answered. An attempt whose client
went away before the answer keeps ``status`` 0."""

from __future__ import annotations

import gzip
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Headers the front sets itself.
_HOP = {"host", "content-length", "connection", "transfer-encoding"}


@dataclass
class Attempt:
    """One ``POST /v1/events`` as the client sent it."""

    at: float
    encoding: str
    body: bytes
    ids: list[str] | None
    status: int = 0
    #: accepted + duplicates + rejected, from the server's answer.
    events: int | None = None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (a killed child): its attempt stays unanswered.
        pass


@dataclass
class RecordingFront:
    upstream: str
    #: The first this many ingest attempts are answered 503 (no ``Retry-After``) without
    #: reaching the server, so the client must retry them.
    fail_first: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    #: ``(method, path, User-Agent)`` of every request, ingest or not.
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def start(self) -> RecordingFront:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with front.lock:
                    agent = self.headers.get("User-Agent") or ""
                    front.requests.append((self.command, self.path, agent))
                attempt = None
                if self.command == "POST" and self.path.split("?")[0] == "/v1/events":
                    encoding = (self.headers.get("Content-Encoding") or "identity").lower()
                    attempt = Attempt(time.monotonic(), encoding, body, _ids(encoding, body))
                    with front.lock:
                        front.attempts.append(attempt)
                        refuse = len(front.attempts) <= front.fail_first
                    if refuse:
                        attempt.status = 503
                        answer = b'{"code":"unavailable","message":"refused by the test front"}'
                        self.send_response(503)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(answer)))
                        self.end_headers()
                        self.wfile.write(answer)
                        return
                req = urllib.request.Request(
                    front.upstream + self.path, data=body or None, method=self.command
                )
                for name, value in self.headers.items():
                    if name.lower() not in _HOP:
                        req.add_header(name, value)
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status, headers, answer = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as err:
                    status, headers, answer = err.code, err.headers, err.read()
                except OSError:
                    # The upstream is down: answer as a load balancer would.
                    status, headers = 502, {"Content-Type": "application/json"}
                    answer = b'{"code":"bad_gateway","message":"upstream unreachable"}'
                if attempt is not None:
                    # Set before answering, so a test that saw the client's flush end reads
                    # it; taken back when the answer cannot be delivered.
                    attempt.status = status
                    if status == 202:
                        counts = json.loads(answer)
                        attempt.events = (
                            counts["accepted"] + counts["duplicates"] + len(counts["rejected"])
                        )
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        if name.lower() not in _HOP:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    self.wfile.flush()
                except OSError:
                    if attempt is not None:
                        attempt.status = 0
                    raise

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def seen(self) -> list[Attempt]:
        with self.lock:
            return list(self.attempts)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _ids(encoding: str, body: bytes) -> list[str] | None:
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding != "identity":
        return None
    return [event["id"] for event in json.loads(body)]


def assert_resent_only_after_failures(attempts: list[Attempt]) -> int:
    """The resend bound the SDK promises: an id goes out again only after an attempt that
    carried it failed or got no answer (status 0) — for every id, sends <= 1 + such
    attempts, and nothing carries it after an attempt that succeeded. Returns how many ids
    went out more than once."""
    sends: dict[str, int] = {}
    failed: dict[str, int] = {}
    succeeded: dict[str, int] = {}
    for i, attempt in enumerate(attempts):
        assert attempt.ids is not None, "the front cannot read this attempt's ids"
        ok = 200 <= attempt.status < 300
        for event_id in attempt.ids:
            assert event_id not in succeeded, (
                f"{event_id} was sent again in attempt {i} after attempt "
                f"{succeeded[event_id]} succeeded"
            )
            assert sends.get(event_id, 0) <= failed.get(event_id, 0), (
                f"{event_id}: sent a {sends.get(event_id, 0) + 1}th time after only "
                f"{failed.get(event_id, 0)} failed or unanswered attempts"
            )
            sends[event_id] = sends.get(event_id, 0) + 1
            if ok:
                succeeded[event_id] = i
            else:
                failed[event_id] = failed.get(event_id, 0) + 1
    return sum(1 for n in sends.values() if n > 1)
