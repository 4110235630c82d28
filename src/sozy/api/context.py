"""Everything one app instance works with, created by ``create_app`` and filled in by its lifespan.

Endpoints receive this object instead of reaching for module globals, so any
number of apps (with different settings, engines and stores) can live in one
process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sozy.api.admission import Gate
from sozy.api.errors import ApiError
from sozy.api.metrics import ApiMetrics
from sozy.api.ratelimit import RateLimiter
from sozy.api.remote import RemoteImages
from sozy.api.schemas import Ready, Stats
from sozy.config import Settings

if TYPE_CHECKING:
    from sozy.faces.engine import FaceEngine
    from sozy.store.base import FaceStore


@dataclass
class ApiContext:
    settings: Settings
    gate: Gate  # searches at the face engine
    uploads: Gate  # request bodies being read
    limiter: RateLimiter
    remote: RemoteImages
    metrics: ApiMetrics = field(init=False)
    engine: FaceEngine | None = None
    store: FaceStore | None = None
    # Short-lived caches for the cheap-to-serve, costly-to-compute answers.
    stats_cache: tuple[float, Stats] | None = None
    ready_cache: tuple[float, Ready] | None = None

    def __post_init__(self) -> None:
        self.metrics = ApiMetrics(
            queue_depth=lambda: float(self.gate.pending),
            engine_in_flight=lambda: float(getattr(self.engine, "in_flight", 0) or 0),
            uploads_reading=lambda: float(self.uploads.pending),
        )

    def require_engine(self) -> FaceEngine:
        if self.engine is None:
            raise ApiError(503, "not_ready", "the face engine is not running", {"Retry-After": "5"})
        return self.engine

    def require_store(self) -> FaceStore:
        if self.store is None:
            raise ApiError(503, "not_ready", "the face store is not open", {"Retry-After": "5"})
        return self.store


def monotonic() -> float:
    return time.monotonic()
