"""Plain data types handed to callbacks."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UsageThreshold"]


@dataclass(frozen=True, slots=True)
class UsageThreshold:
    """A metered feature of a cached subject crossed a threshold of its limit (a stream
    ``usage.threshold`` message), as passed to ``on_usage_threshold``. After a reconnect the
    same crossing may be delivered again: deduplicate by ``seq``."""

    seq: int
    """The stream message's sequence number."""
    subject: str
    """The customer."""
    feature: str
    """The metered feature."""
    threshold: float
    """The threshold crossed, as a fraction of the limit (``0.8``, ``1.0``)."""
    usage: float
    """Usage after the crossing."""
    limit: float
    """The limit."""
