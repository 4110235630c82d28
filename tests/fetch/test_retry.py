"""Retry policy: which statuses, Retry-After parsing, backoff bounds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from sozy.backoff import backoff_seconds
from sozy.fetch.retry import is_retryable_status, retry_after_seconds, retry_delay


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (501, False),
        (400, False),
        (403, False),
        (404, False),
    ],
)
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


def test_retry_after_seconds_and_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0.0
    for junk in (None, "", "soon", "-5", "1.5e9"):
        assert retry_after_seconds(junk) is None


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for attempt in range(6):
        ceiling = min(5.0, 0.5 * 2**attempt)
        delays = [backoff_seconds(attempt, 0.5, 5.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant


def test_retry_after_wins_but_is_capped() -> None:
    rng = random.Random(1)
    assert retry_delay(0, 3.0, 0.5, 30.0, rng) == 3.0
    assert retry_delay(0, 300.0, 0.5, 30.0, rng) == 30.0
    assert 0.25 <= retry_delay(0, None, 0.5, 30.0, rng) <= 0.5
