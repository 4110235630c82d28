"""Fixtures for fetch tests: a hostile host on 127.0.0.1 and quick settings."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sozy.config import CrawlSettings
from tests.servers.hostile import HostileServer

# Small timeouts and backoff so failure paths take fractions of a second.
FAST = CrawlSettings(
    concurrency=16,
    per_host=8,
    connect_timeout_s=2.0,
    read_timeout_s=0.5,
    total_timeout_s=3.0,
    retries=2,
    backoff_base_s=0.02,
    backoff_max_s=2.0,
)


@pytest.fixture
def crawl_settings() -> Callable[..., CrawlSettings]:
    """``crawl_settings(per_host=2, ...)``: FAST with changes."""

    def make(**changes: Any) -> CrawlSettings:
        return dataclasses.replace(FAST, **changes)

    return make


@pytest.fixture
async def hostile(faces_dir: Path) -> AsyncIterator[HostileServer]:
    async with HostileServer(faces_dir) as server:
        yield server
