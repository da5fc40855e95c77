"""``Client`` and ``AsyncClient``: the native client with Python's idioms on top."""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import TracebackType
from typing import TYPE_CHECKING, Any

from meterline import _lifecycle
from meterline._native import Entitlement, NativeClient

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack  # in typing from Python 3.11 / 3.12 on

    from meterline._options import ClientOptions

__all__ = ["AsyncClient", "Client", "Stats"]


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
    opted_out: int = 0
    """Events not kept because the user opted out: refused by ``track()`` while opted out,
    or discarded from the queue by ``opt_out()``."""
    token_provider_failures: int = 0
    """``token_provider`` calls that raised or returned no customer token."""


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
        endpoint: Server base URL; default: the ``METERLINE_ENDPOINT`` environment variable,
            else required.
        **options: The options of :class:`~meterline._options.ClientOptions` (the core's
            option table: ``flush_at``, ``flush_interval`` in seconds, ``overflow``, ...,
            and the callbacks ``on_error``, ``on_usage_threshold``, ``on_connection_change``).

    Raises:
        ConfigError: An option is missing, unknown, of the wrong type or out of range
            (``field`` names it).
    """

    __slots__ = ()

    def __init__(
        self, api_key: str, endpoint: str | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        # The options were read and checked by NativeClient.__new__ (the core's option
        # table); only the process-wide bookkeeping (exit flush, fork hooks, log dispatch)
        # is left.
        _lifecycle.register(self)

    # entitlement(), cached_entitlement(), customer_token() and prime_entitlements() are the
    # native methods themselves (no Python frame on the hot path); see _native.pyi and the
    # README for their documentation.

    def flush(self, timeout: float | None = None) -> None:
        """Sends everything queued so far and waits until the server has answered for it.

        The GIL is released while waiting and Ctrl-C interrupts the wait.

        Args:
            timeout: Seconds to wait at most (default 10). What is not delivered by then
                stays queued.

        Raises:
            TimeoutError: Not everything was delivered within ``timeout``.
            ArgumentError: ``timeout`` is not a finite number of seconds ≥ 0.
        """
        self._flush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stops accepting events and delivers what is queued. Calling it again is harmless.

        Args:
            timeout: Seconds to wait at most (default 10). Events still undelivered then
                are dropped (counted in ``stats().dropped``) — or,
                with ``spool_dir``, stay in the spool for the next client (counted in
                ``stats().spool_length``). The spool directory is released before this
                returns, so a new client can open it at once.

        Raises:
            TimeoutError: The deadline passed with events undelivered.
            ArgumentError: ``timeout`` is not a finite number of seconds ≥ 0.
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
        self, api_key: str, endpoint: str | None = None, **options: Unpack[ClientOptions]
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
