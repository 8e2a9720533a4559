"""Backoff with full jitter, and the Retry-After header."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying again.

    ``max_retries`` counts the tries after the first one. The wait before retry
    n (0-based) is uniform in [0, min(max_delay, base_delay * 2**n)] ("full
    jitter"), so many clients failing together do not come back together.
    A server's Retry-After is obeyed as given, up to ``max_retry_after``;
    longer waits are not slept through: the error is raised with it instead.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_retry_after: float = 60.0

    def backoff(self, retry: int, random: Callable[[], float]) -> float:
        return random() * min(self.max_delay, self.base_delay * 2.0 ** retry)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a zone-less one is read as such
        return None
    return max(0.0, when.timestamp() - now)
