"""meterline: usage metering for Python.

``track()`` validates each billable event at once and queues it without waiting on the
network; a background thread (Rust) batches, compresses and delivers the events to a
meterline server, retrying with the same event ids so each one is stored exactly once.

    import meterline

    with meterline.Client("ml_sk_...", "http://127.0.0.1:8080") as client:
        client.track("api.call", "customer-42", {"tokens": 1234, "model": "m-large"})
        if client.entitlement("customer-42", "api_calls").has_access:
            ...

See the package README for the options, asyncio, errors, logging and fork safety.
"""

from meterline import errors as _errors
from meterline._client import AsyncClient, Client, Stats
from meterline._native import Entitlement, __version__
from meterline._types import UsageThreshold
from meterline.errors import *  # noqa: F403  (every class of errors.__all__)

__all__ = [
    "AsyncClient",
    "Client",
    "Entitlement",
    "Stats",
    "UsageThreshold",
    "__version__",
    *_errors.__all__,
]
