"""The exceptions meterline raises (and passes to ``on_error``).

Every error of the Rust core names its class (the one list is the core's ``ErrorClass``,
written as data in ``tests/vectors/errors.json``; Node has the same classes); the binding
raises the class of that name from here. ``code`` is the core's stable error code, spelled
as in the HTTP API's ``{"code": ...}`` bodies. Every class takes its details as keyword
arguments with defaults, so exceptions pickle (they cross ``multiprocessing`` boundaries
intact).
"""

from __future__ import annotations

import builtins

__all__ = [
    "ArgumentError",
    "AuthError",
    "ClosedError",
    "CodecError",
    "ConfigError",
    "ForbiddenError",
    "MeterlineError",
    "NetworkError",
    "QueueFullError",
    "RejectedError",
    "ServerError",
    "SpoolError",
    "StreamError",
    "TimeoutError",
    "ValidationError",
]


class MeterlineError(Exception):
    """Base class of every meterline error.

    Attributes:
        message: What went wrong, for people.
        code: Stable machine-readable code (``schema_violation``, ``timeout``, ...).
        status: The HTTP status when the error is the server's answer, else ``None``.
    """

    code: str
    message: str
    status: int | None

    def __init__(
        self, message: str = "", *, code: str = "meterline_error", status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class ValidationError(MeterlineError, ValueError):
    """An event was refused by ``track()`` before it was queued (or, as
    :class:`RejectedError`, by the server).

    Attributes:
        code: ``invalid_event``, ``schema_violation``, ``unknown_type`` or ``event_too_large``.
        path: JSON pointer of the offending value inside the CloudEvent, e.g. ``/data/tokens``
            (``""`` for the event as a whole).
    """

    path: str

    def __init__(self, message: str = "", *, code: str = "invalid_event", path: str = "") -> None:
        super().__init__(message, code=code)
        self.path = path


class RejectedError(ValidationError):
    """The server refused one event of a batch (the rest was stored); never retried.
    Delivered to ``on_error``.

    Attributes:
        event_id: The refused event's id, when the server could read it.
        index: The event's position in its batch.
    """

    event_id: str | None
    index: int

    def __init__(
        self,
        message: str = "",
        *,
        code: str = "invalid_event",
        path: str = "",
        event_id: str | None = None,
        index: int = 0,
    ) -> None:
        super().__init__(message, code=code, path=path)
        self.event_id = event_id
        self.index = index


class ArgumentError(ValidationError, TypeError):
    """A method argument other than an event is wrong (``invalid_argument``): of the wrong
    type, empty, too long or out of range — a ``subject``, ``feature``, ``ttl``, ``timeout``
    or ``payload``. Also a :class:`ValueError` and a :class:`TypeError`.

    Attributes:
        argument: The parameter at fault (``subject``, ``ttl``, ``timeout``, ``payload`` ...).
        path: JSON pointer naming it, and where inside it for a structured one
            (``/payload/entitlements/sso``).
    """

    argument: str

    def __init__(
        self,
        message: str = "",
        *,
        code: str = "invalid_argument",
        path: str = "",
        argument: str = "",
    ) -> None:
        super().__init__(message, code=code, path=path)
        self.argument = argument


class ConfigError(MeterlineError, ValueError):
    """An option passed to ``Client(...)`` is unknown, of the wrong type or out of range.

    Attributes:
        field: The option's name (``flush_at``, ``endpoint``, ...).
    """

    field: str

    def __init__(self, message: str = "", *, code: str = "invalid_config", field: str = "") -> None:
        super().__init__(message, code=code)
        self.field = field


class AuthError(MeterlineError):
    """The server refused the API key (HTTP 401): unknown, revoked or malformed."""

    def __init__(
        self, message: str = "", *, code: str = "unauthorized", status: int | None = 401
    ) -> None:
        super().__init__(message, code=code, status=status)


class ForbiddenError(AuthError):
    """The key is valid but lacks the scope for the call (HTTP 403)."""

    def __init__(
        self, message: str = "", *, code: str = "forbidden", status: int | None = 403
    ) -> None:
        super().__init__(message, code=code, status=status)


class TimeoutError(MeterlineError, builtins.TimeoutError):
    """A call did not finish in time (``flush``/``shutdown`` deadlines, request timeouts).
    Also a :class:`builtins.TimeoutError`.

    Attributes:
        timeout: The deadline that passed, in seconds.
    """

    timeout: float

    def __init__(self, message: str = "", *, code: str = "timeout", timeout: float = 0.0) -> None:
        super().__init__(message, code=code)
        self.timeout = timeout


class QueueFullError(MeterlineError):
    """The queue held ``max_queue_size`` events and the overflow policy dropped this one.

    Attributes:
        capacity: ``max_queue_size``.
        policy: The overflow policy that applied (``reject`` when raised by ``track()``;
            ``drop_newest`` or ``block`` when reported to ``on_error``).
    """

    capacity: int
    policy: str

    def __init__(
        self, message: str = "", *, code: str = "queue_full", capacity: int = 0, policy: str = ""
    ) -> None:
        super().__init__(message, code=code)
        self.capacity = capacity
        self.policy = policy


class ClosedError(MeterlineError):
    """The client was shut down; it accepts no more events."""

    def __init__(self, message: str = "", *, code: str = "client_closed") -> None:
        super().__init__(message, code=code)


class NetworkError(MeterlineError):
    """The server could not be reached or the connection broke (after the retries)."""

    def __init__(self, message: str = "", *, code: str = "network_error") -> None:
        super().__init__(message, code=code)


class ServerError(MeterlineError):
    """The server answered with an error status that has no more specific class.

    Attributes:
        status: The HTTP status.
    """

    status: int | None

    def __init__(
        self, message: str = "", *, code: str = "server_error", status: int | None = None
    ) -> None:
        super().__init__(message, code=code, status=status)


class CodecError(MeterlineError):
    """A body could not be encoded, decoded or decompressed, or a schema is not valid JSON
    Schema (``code``: ``invalid_json``, ``invalid_schema``, ``payload_too_large``, ...)."""

    def __init__(self, message: str = "", *, code: str = "codec_error") -> None:
        super().__init__(message, code=code)


class StreamError(MeterlineError):
    """The realtime entitlement stream reported a problem (passed to ``on_error``, never
    raised by a call): the server's ``error`` message or an unexpected close.

    Attributes:
        code: The server's code (``bad_message``, ``too_many_subjects``, ...) or
            ``stream_unavailable``.
    """

    def __init__(self, message: str = "", *, code: str = "stream_error") -> None:
        super().__init__(message, code=code)


class SpoolError(MeterlineError):
    """The disk spool (``spool_dir``) could not store an event (disk full, I/O error); the
    event was not accepted."""

    def __init__(self, message: str = "", *, code: str = "spool_error") -> None:
        super().__init__(message, code=code)
