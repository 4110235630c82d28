"""How long to wait before trying again: one schedule for every retry loop (HTTP requests,
store writes, face engine workers that fail to start)."""

from __future__ import annotations

import random

_RNG = random.Random()


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before retry ``attempt`` (0-based): ``base * 2**attempt`` with equal jitter, capped.

    Half the delay is fixed and half random, so retries of many requests that
    failed together spread out instead of returning in one burst.
    """
    ceiling = min(cap, base * 2.0**attempt)
    return ceiling / 2 + (rng or _RNG).uniform(0, ceiling / 2)
