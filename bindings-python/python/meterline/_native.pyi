import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Literal, final
from uuid import UUID

from typing_extensions import Self

from meterline._types import UsageThreshold
from meterline.errors import MeterlineError

__version__: Final[str]
#: Deepest nesting of objects/arrays accepted inside ``data`` (also stops cyclic structures).
MAX_DEPTH: Final[int]

class NativeClient:
    def __new__(
        cls,
        api_key: str,
        endpoint: str = "http://127.0.0.1:8080",
        *,
        source: str | None = None,
        flush_at: int = 500,
        max_batch_bytes: int = 1_048_576,
        flush_interval: float = 1.0,
        max_queue_size: int = 100_000,
        overflow: Literal["drop_newest", "drop_oldest", "block", "reject"] = "drop_newest",
        block_timeout: float = 1.0,
        compression: Literal["gzip", "zstd", "identity"] = "gzip",
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
        spool_fsync: Literal["always", "interval", "never"] = "interval",
        on_error: Callable[[MeterlineError], object] | None = None,
        on_usage_threshold: Callable[[UsageThreshold], object] | None = None,
        on_connection_change: Callable[[bool, str], object] | None = None,
    ) -> Self: ...
    def track(
        self,
        type: str,
        subject: str,
        data: Mapping[str, Any],
        *,
        id: str | UUID | None = None,
        time: datetime | str | None = None,
    ) -> str | None: ...
    # Whether ``subject`` may use ``feature`` (see the README): a cache hit at once; a
    # miss waits (GIL released) at most ``entitlement_timeout``, then the fallback.
    # Raises ``ValidationError`` (``path`` ``/subject`` or ``/feature``) and
    # ``ClosedError`` only; network trouble gives ``stale``/``fallback`` answers.
    def entitlement(self, subject: str, feature: str) -> Entitlement: ...
    def _entitlement_async(
        self, subject: str, feature: str
    ) -> Entitlement | Awaitable[Entitlement]: ...
    # The cached answer without ever waiting; on a miss the fallback (reason
    # ``"not cached yet: fetching in the background"``) while one fetch fills the cache.
    def cached_entitlement(self, subject: str, feature: str) -> Entitlement: ...
    # A customer token (HS256 JWT) for ``subject`` valid for ``ttl`` (seconds or a
    # ``timedelta``; more than 0, at most 30 days). Needs a secret key (else
    # ``ConfigError``); offline.
    def customer_token(self, subject: str, ttl: float | timedelta) -> str: ...
    # Caches the server's entitlements JSON body (``GET
    # /v1/customers/{subject}/entitlements``) as if just fetched.
    def prime_entitlements(self, payload: Mapping[str, Any]) -> None: ...
    def _flush(self, timeout: float | None = None) -> None: ...
    def _shutdown(self, timeout: float | None = None) -> None: ...
    def _flush_async(self, timeout: float | None = None) -> Awaitable[MeterlineError | None]: ...
    def _shutdown_async(self, timeout: float | None = None) -> Awaitable[MeterlineError | None]: ...
    def _stats(self) -> dict[str, int | bool]: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def closed(self) -> bool: ...

# One feature's entitlement for one subject, as ``entitlement()`` answers it.
# Immutable. ``bool(answer)`` is not ``has_access`` (it is always true, as for any
# object): test ``answer.has_access``.
@final
class Entitlement:
    @property
    def subject(self) -> str: ...
    @property
    def feature(self) -> str: ...
    @property
    def kind(self) -> Literal["boolean", "metered", "config"] | None: ...
    @property
    def has_access(self) -> bool: ...
    @property
    def limit(self) -> float | None: ...
    @property
    def usage(self) -> float | None: ...
    @property
    def remaining(self) -> float | None: ...
    @property
    def value(self) -> Any: ...
    @property
    def period_end(self) -> str | None: ...
    @property
    def version(self) -> int | None: ...
    @property
    def source(self) -> Literal["fresh", "cache", "stale", "fallback"]: ...
    @property
    def reason(self) -> str | None: ...
    def to_dict(self) -> dict[str, Any]: ...

def _take_notices(
    timeout: float,
) -> list[
    tuple[Literal["log"], int, str]
    | tuple[Literal["error"], Callable[[MeterlineError], object], MeterlineError]
    | tuple[
        Literal["threshold"],
        Callable[[UsageThreshold], object],
        tuple[int, str, str, float, float, float],
    ]
    | tuple[Literal["connection"], Callable[[bool, str], object], tuple[bool, str]]
]: ...
def _wake_notices() -> None: ...
def _close_notices() -> None: ...
def _set_log_level(level: int) -> None: ...
def _before_fork() -> None: ...
def _after_fork_in_parent() -> None: ...
def _after_fork_in_child() -> None: ...
def _retry_decision(
    outcome: int | Literal["network", "timeout"],
    retry: int,
    retry_after: str | None,
    now_http_date: str,
    jitter: float,
    *,
    initial_delay_ms: int = 100,
    max_delay_ms: int = 30_000,
    max_retry_after_ms: int = 300_000,
    max_retries: int | None = None,
) -> tuple[Literal["done", "give_up", "retry"], float | None]: ...

class _EntitlementCache:
    def __init__(
        self, settings: Mapping[str, Any], payloads: Mapping[str, Any] | None = None
    ) -> None: ...
    def step(self, step: Mapping[str, Any]) -> Any: ...
