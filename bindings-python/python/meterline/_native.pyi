from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

from typing_extensions import Self

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
        overflow: Literal["drop_newest", "drop_oldest", "block"] = "drop_newest",
        block_timeout: float = 1.0,
        compression: Literal["gzip", "zstd", "identity"] = "gzip",
        request_timeout: float = 10.0,
        strict_types: bool = False,
        fetch_schemas: bool = True,
        schema_refresh_interval: float = 300.0,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        max_in_flight: int = 2,
        on_error: Callable[[MeterlineError], object] | None = None,
    ) -> Self: ...
    def track(
        self,
        type: str,
        subject: str,
        data: Mapping[str, Any],
        *,
        id: str | UUID | None = None,
        time: datetime | str | None = None,
    ) -> str: ...
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

def _take_notices(
    timeout: float,
) -> list[
    tuple[Literal["log"], int, str]
    | tuple[Literal["error"], Callable[[MeterlineError], object], MeterlineError]
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
