"""When to retry and how long to wait: exponential backoff with jitter, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from sozy.backoff import backoff_seconds

# 408 Request Timeout and 429 Too Many Requests are the 4xx worth another try;
# every 5xx is (a server having a bad moment), except "this will never work" ones.
_RETRY_4XX = frozenset({408, 429})
_NEVER_5XX = frozenset({501, 505})


def is_retryable_status(status: int) -> bool:
    return status in _RETRY_4XX or (500 <= status <= 599 and status not in _NEVER_5XX)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def retry_delay(attempt: int, retry_after: float | None, base: float, cap: float, rng: random.Random) -> float:
    """The server's Retry-After when it gave one (never above ``cap``), else backoff."""
    if retry_after is not None:
        return min(retry_after, cap)
    return backoff_seconds(attempt, base, cap, rng)
