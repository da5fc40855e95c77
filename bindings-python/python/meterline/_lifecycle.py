"""Process-wide bookkeeping: log and ``on_error`` delivery, exit flush, fork hooks.

* **Delivery.** The core's background thread never calls into Python. It queues log records,
  background errors and stream notices in the native module; one daemon thread here
  (``meterline-dispatch``) takes them and calls the standard ``logging`` logger
  ``"meterline"`` and the clients' ``on_error``, ``on_usage_threshold`` and
  ``on_connection_change`` callbacks. An exception raised by a callback
  is logged and ignored.
* **Exit.** Clients still open when the interpreter exits are shut down (``EXIT_TIMEOUT``
  seconds each), then the dispatcher delivers what is left and stops. Forked
  ``multiprocessing`` children leave through ``os._exit`` without running ``atexit``; a
  ``multiprocessing`` finalizer does the same there.
* **Fork.** ``os.register_at_fork`` hooks keep the native module's state consistent across
  ``fork()``; in the child every client starts a fresh background sender on first use, and
  the parent's pending events stay the parent's to deliver.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from multiprocessing import util as _mp_util
from typing import TYPE_CHECKING

from meterline import _native
from meterline._types import UsageThreshold

if TYPE_CHECKING:
    from meterline._native import NativeClient

__all__ = ["EXIT_TIMEOUT", "logger", "register"]

logger = logging.getLogger("meterline")

#: Seconds each client may take to deliver its pending events at interpreter exit (the
#: core's exit-flush grace, the same in every language).
EXIT_TIMEOUT: float = _native.EXIT_FLUSH_GRACE

#: Longest wait of one ``_take_notices`` call; bounds how long stopping the dispatcher takes.
_POLL_SECONDS = 0.5

_clients: weakref.WeakSet[NativeClient] = weakref.WeakSet()
_dispatcher: _Dispatcher | None = None
_dispatcher_lock = threading.Lock()


class _Dispatcher(threading.Thread):
    """Takes queued notices from the native module and hands them to Python."""

    def __init__(self) -> None:
        super().__init__(name="meterline-dispatch", daemon=True)
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            try:
                _deliver(_native._take_notices(_POLL_SECONDS))
            except Exception:  # never let the dispatcher die
                logger.exception("meterline: delivering background notices failed")

    def stop(self) -> None:
        self.stopping = True
        _native._wake_notices()
        self.join(timeout=2 * _POLL_SECONDS)


def _deliver(notices: Sequence[tuple[object, ...]]) -> None:
    for notice in notices:
        match notice:
            case ("log", int(level), str(message)):
                logger.log(level, "%s", message)
            case ("error", callback, error) if callable(callback):
                try:
                    callback(error)
                except Exception:
                    logger.exception(
                        "meterline: the on_error callback raised while handling %r; ignored",
                        error,
                    )
            case ("threshold", callback, tuple(fields)) if callable(callback):
                event = UsageThreshold(*fields)
                try:
                    callback(event)
                except Exception:
                    logger.exception(
                        "meterline: the on_usage_threshold callback raised while handling %r;"
                        " ignored",
                        event,
                    )
            case ("connection", callback, (bool(connected), str(reason))) if callable(callback):
                try:
                    callback(connected, reason)
                except Exception:
                    logger.exception(
                        "meterline: the on_connection_change callback raised (connected=%s,"
                        " reason=%r); ignored",
                        connected,
                        reason,
                    )


def _start_dispatcher() -> None:
    global _dispatcher
    with _dispatcher_lock:
        if _dispatcher is None or not _dispatcher.is_alive():
            _dispatcher = _Dispatcher()
            _dispatcher.start()


def _stop_dispatcher() -> None:
    global _dispatcher
    with _dispatcher_lock:
        dispatcher, _dispatcher = _dispatcher, None
    if dispatcher is not None:
        dispatcher.stop()
    # Whatever arrived meanwhile is delivered from this thread.
    _deliver(_native._take_notices(0.0))


def register(client: NativeClient) -> None:
    """Called by every new client: exit flush, log level, delivery thread."""
    _clients.add(client)
    # INFO and above always reach the logger (which filters as configured); DEBUG records
    # are produced only when the logger is enabled for them when a client is created.
    _native._set_log_level(min(logging.INFO, logger.getEffectiveLevel()))
    _start_dispatcher()


def _shutdown_all() -> None:
    for client in list(_clients):
        try:
            client._shutdown(EXIT_TIMEOUT)
        except Exception as error:
            logger.warning("meterline: pending events not delivered at exit: %s", error)


def _at_exit() -> None:
    _shutdown_all()
    _stop_dispatcher()
    _native._close_notices()


atexit.register(_at_exit)


def _after_fork_in_child() -> None:
    global _dispatcher, _dispatcher_lock
    _native._after_fork_in_child()
    # The parent's dispatcher thread does not exist here; the lock may have been held by it.
    _dispatcher_lock = threading.Lock()
    running, _dispatcher = _dispatcher is not None, None
    if running:
        _start_dispatcher()


os.register_at_fork(
    before=_native._before_fork,
    after_in_parent=_native._after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


class _ForkedChildExit:
    """Anchor for ``multiprocessing.util.register_after_fork`` (it keeps a weak reference)."""

    def registered(self) -> None:
        _mp_util.Finalize(None, _at_exit, exitpriority=100)


_FORKED_CHILD_EXIT = _ForkedChildExit()
_mp_util.register_after_fork(_FORKED_CHILD_EXIT, _ForkedChildExit.registered)
