"""``Client`` and ``AsyncClient``: the native client with Python's idioms on top."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from meterline import _lifecycle
from meterline._native import Entitlement, NativeClient
from meterline._types import UsageThreshold
from meterline.errors import MeterlineError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11 on

__all__ = ["DEFAULT_ENDPOINT", "AsyncClient", "Client", "Stats"]

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"

Overflow = Literal["drop_newest", "drop_oldest", "block", "reject"]
Compression = Literal["gzip", "zstd", "identity"]
SpoolFsync = Literal["always", "interval", "never"]


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of a client's counters (DESIGN §7), since it started in this process."""

    enqueued: int = 0
    """Events accepted by ``track()`` (validated and queued)."""
    sent: int = 0
    """Events the server stored for the first time."""
    duplicates: int = 0
    """Events the server already had (a retried or resent id)."""
    rejected: int = 0
    """Events the server refused (each reported to ``on_error``; never retried)."""
    dropped: int = 0
    """Events dropped by the overflow policy or given up on (a permanent send failure;
    without a spool also exhausted retries and shutdown's deadline)."""
    retried: int = 0
    """Batch requests retried."""
    batches: int = 0
    """Batches delivered."""
    queue_length: int = 0
    """Events waiting in memory, including those in flight."""
    spool_length: int = 0
    """Events waiting in the disk spool, including those given up on in this process (sent
    by the next client on the directory); after ``shutdown()``, what it left there."""
    cache_hits: int = 0
    """``entitlement()`` calls answered from the cache (within the TTL, or stale)."""
    cache_misses: int = 0
    """``entitlement()`` calls with nothing servable cached (a fetch, or a fallback while a
    recent failure backs off)."""
    stale_answers: int = 0
    """``entitlement()`` answers with source ``"stale"``."""
    fallback_answers: int = 0
    """``entitlement()`` answers with source ``"fallback"``."""
    stream_connected: bool = False
    """Whether the realtime stream is connected."""


_STATS_FIELDS = frozenset(f.name for f in fields(Stats))


def _stats(native: NativeClient) -> Stats:
    known: dict[str, Any] = {k: v for k, v in native._stats().items() if k in _STATS_FIELDS}
    return Stats(**known)


class Client(NativeClient):
    """Sends usage events to a meterline server.

    ``track()`` validates each event at once (an invalid one raises
    :class:`~meterline.ValidationError` and is never queued) and queues it without waiting on
    the network; a background thread batches, compresses and delivers, retrying with the same
    event ids so the server stores each event once.

    Use it as a context manager, or call :meth:`shutdown` when done; clients still open at
    interpreter exit are shut down then (pending events delivered, up to 5 s). Safe to share
    between threads, and fork-safe: a forked child gets a fresh background sender on first use.

    Args:
        api_key: ``ml_sk_...`` secret key.
        endpoint: Server base URL.
        source: CloudEvents ``source`` of every event (default: the host name).
        flush_at: Send a batch when this many events are queued (1-10,000).
        max_batch_bytes: Largest uncompressed batch body (1 KiB-5 MiB).
        flush_interval: Send whatever is queued at least this often (seconds).
        max_queue_size: Bound of the in-memory queue.
        overflow: Full queue: ``"drop_newest"`` (drop the new event: ``track()`` returns
            ``None``, the drop is counted in ``stats().dropped`` and reported, rate-limited, to
            ``on_error`` as a :class:`~meterline.QueueFullError`), ``"drop_oldest"`` (evict
            the oldest), ``"block"`` (wait up to ``block_timeout``, then drop) or
            ``"reject"`` (raise :class:`~meterline.QueueFullError`).
        block_timeout: Longest wait of ``track()`` under ``overflow="block"`` (seconds).
        compression: ``"gzip"``, ``"zstd"`` or ``"identity"``.
        request_timeout: Per-request timeout (seconds).
        strict_types: Refuse event types that have no schema (``unknown_type``).
        fetch_schemas: Fetch the server's schemas at start and refresh them by ETag.
        schema_refresh_interval: How often the schemas are refreshed (seconds).
        schemas: Local schemas, event type → JSON Schema (used with fetched ones).
        max_in_flight: Concurrent batch requests.
        cache_size: Most subjects whose entitlements are cached (1-1,000,000; least recently
            used evicted first).
        entitlement_timeout: Longest wait of ``entitlement()`` on a cache miss before it
            answers the fallback (seconds, more than 0 and at most 60).
        max_stale: How long past its TTL a cached answer is still served as ``"stale"``
            (seconds, at most 365 days).
        max_ttl: Caps the server's TTL for cached answers (seconds; ``None``: the server's).
        fallbacks: What ``entitlement()`` answers when nothing usable is cached and the
            server cannot answer: ``{"features": {key: spec}, "default": spec}`` where a spec
            is ``True``/``False``, ``{"value": <JSON>}`` or ``{"limit": n}``. Default: deny.
        stream: Keep the cache current over the realtime stream (opened when the first
            entitlement is cached).
        stream_endpoint: The stream's URL (default: the endpoint's ``ws(s)://…/v1/stream``).
        customer_token: With a publishable key (``ml_pk_…``): the token minted by the
            backend's :meth:`customer_token`; required with one, refused otherwise.
        spool_dir: A directory for the crash-safe disk spool: accepted events are written
            there before ``track()`` returns, removed once the server answered for them, and
            sent first at the next start (one client per directory). Default: none.
        spool_fsync: When the spool calls fsync: ``"always"`` (before ``track()`` returns;
            slow), ``"interval"`` (once a second: a power loss can take the last second) or
            ``"never"`` (survives process crashes only).
        on_error: Called with a :class:`~meterline.MeterlineError` for each background
            failure (an event rejected by the server, a batch given up on, a failed schema
            refresh, entitlement fetch and stream failures — the last two at most once a minute
            per kind), on meterline's dispatcher thread. An exception it raises is logged.
        on_usage_threshold: Called with a :class:`~meterline.UsageThreshold` when the stream
            reports a crossing, on the dispatcher thread. An exception it raises is logged.
        on_connection_change: Called with ``(connected, reason)`` when the stream connects
            (``True, "connected"``) or is lost (``False``, why), on the dispatcher thread.

    Raises:
        ConfigError: An option is unknown, of the wrong type or out of range.
    """

    __slots__ = ()

    def __init__(
        self,
        api_key: str,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        source: str | None = None,
        flush_at: int = 500,
        max_batch_bytes: int = 1_048_576,
        flush_interval: float = 1.0,
        max_queue_size: int = 100_000,
        overflow: Overflow = "drop_newest",
        block_timeout: float = 1.0,
        compression: Compression = "gzip",
        request_timeout: float = 10.0,
        strict_types: bool = False,
        fetch_schemas: bool = True,
        schema_refresh_interval: float = 300.0,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        max_in_flight: int = 2,
        cache_size: int = 10_000,
        entitlement_timeout: float = 1.0,
        max_stale: float = 86_400.0,
        max_ttl: float | None = None,
        fallbacks: Mapping[str, Any] | None = None,
        stream: bool = True,
        stream_endpoint: str | None = None,
        customer_token: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_fsync: SpoolFsync = "interval",
        on_error: Callable[[MeterlineError], object] | None = None,
        on_usage_threshold: Callable[[UsageThreshold], object] | None = None,
        on_connection_change: Callable[[bool, str], object] | None = None,
    ) -> None:
        # The options were read and checked by NativeClient.__new__; only the process-wide
        # bookkeeping (exit flush, fork hooks, log dispatch) is left.
        _lifecycle.register(self)

    # entitlement(), cached_entitlement(), customer_token() and prime_entitlements() are the
    # native methods themselves (no Python frame on the hot path); see _native.pyi and the
    # README for their documentation.

    def flush(self, timeout: float | None = None) -> None:
        """Sends everything queued so far and waits until the server has answered for it.

        The GIL is released while waiting and Ctrl-C interrupts the wait.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.

        Raises:
            TimeoutError: Not everything was delivered within ``timeout``.
        """
        self._flush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stops accepting events and delivers what is queued. Calling it again is harmless.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes. Events
                still undelivered then are dropped (counted in ``stats().dropped``) — or,
                with ``spool_dir``, stay in the spool for the next client (counted in
                ``stats().spool_length``). The spool directory is released before this
                returns, so a new client can open it at once.

        Raises:
            TimeoutError: The deadline passed with events undelivered.
        """
        self._shutdown(timeout)

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        return _stats(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<meterline.Client {self.endpoint} source={self.source!r} {state}>"


class AsyncClient(NativeClient):
    """:class:`Client` for asyncio: ``entitlement``, ``flush`` and ``shutdown`` are
    coroutines that never block the event loop (``cached_entitlement``, ``customer_token``
    and ``prime_entitlements`` never wait and stay plain calls); ``track`` stays a plain
    call (it never waits on the network — with
    ``overflow="block"`` it may wait up to ``block_timeout`` for room, so prefer the default
    policy in async code). Takes the same arguments as :class:`Client`.
    """

    __slots__ = ()

    def __init__(
        self,
        api_key: str,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        source: str | None = None,
        flush_at: int = 500,
        max_batch_bytes: int = 1_048_576,
        flush_interval: float = 1.0,
        max_queue_size: int = 100_000,
        overflow: Overflow = "drop_newest",
        block_timeout: float = 1.0,
        compression: Compression = "gzip",
        request_timeout: float = 10.0,
        strict_types: bool = False,
        fetch_schemas: bool = True,
        schema_refresh_interval: float = 300.0,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        max_in_flight: int = 2,
        cache_size: int = 10_000,
        entitlement_timeout: float = 1.0,
        max_stale: float = 86_400.0,
        max_ttl: float | None = None,
        fallbacks: Mapping[str, Any] | None = None,
        stream: bool = True,
        stream_endpoint: str | None = None,
        customer_token: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_fsync: SpoolFsync = "interval",
        on_error: Callable[[MeterlineError], object] | None = None,
        on_usage_threshold: Callable[[UsageThreshold], object] | None = None,
        on_connection_change: Callable[[bool, str], object] | None = None,
    ) -> None:
        _lifecycle.register(self)

    async def flush(self, timeout: float | None = None) -> None:
        """Awaits delivery of everything queued so far (see :meth:`Client.flush`)."""
        error = await self._flush_async(timeout)
        if error is not None:
            raise error

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stops accepting events and awaits delivery of what is queued
        (see :meth:`Client.shutdown`)."""
        error = await self._shutdown_async(timeout)
        if error is not None:
            raise error

    # The async form of the native (blocking) method, by design.
    async def entitlement(self, subject: str, feature: str) -> Entitlement:  # type: ignore[override]
        """:meth:`Client.entitlement` for asyncio: a cache hit is answered at once; a miss
        awaits the shared fetch without blocking the event loop."""
        answer = self._entitlement_async(subject, feature)
        if isinstance(answer, Entitlement):
            return answer  # a cache hit: no thread hop, no asyncio future
        return await answer

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        return _stats(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<meterline.AsyncClient {self.endpoint} source={self.source!r} {state}>"
