"""Token buckets per client, and the engine queue's refusals."""

from __future__ import annotations

import pytest

from sozy.api.admission import engine_gate
from sozy.api.errors import ApiError
from sozy.api.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(60, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(1.0)
    assert limiter.acquire("b") == 0.0  # other clients have their own bucket
    clock.now += 0.5
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    clock.now += 3600
    assert [limiter.acquire("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refills up to the burst only


def test_zero_means_unlimited():
    limiter = RateLimiter(0)
    assert not limiter.enabled
    assert all(limiter.acquire("a") == 0.0 for _ in range(10_000))


def test_memory_is_bounded():
    limiter = RateLimiter(10, max_clients=100)
    for i in range(1000):
        limiter.acquire(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._buckets) == 100


def test_gate_refuses_beyond_its_limit_and_frees_slots():
    gate = engine_gate(limit=2, workers=1)
    gate.observe(2.0)
    with gate.slot(), gate.slot():
        assert gate.pending == 2
        with pytest.raises(ApiError) as caught, gate.slot():
            pass
        assert caught.value.status == 503
        assert int(caught.value.headers["Retry-After"]) >= 1
    assert gate.pending == 0
    with pytest.raises(RuntimeError), gate.slot():
        raise RuntimeError("a failed search still frees its slot")
    assert gate.pending == 0
