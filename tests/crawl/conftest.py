"""Crawl test fixtures: the local servers, quick settings, and readers for what a crawl left."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sozy.config import Settings, load_settings
from sozy.crawl.plan import CrawlPlan
from sozy.crawl.runner import CrawlResult, run_crawl, state_path
from sozy.crawl.state import CrawlState, UrlRow
from sozy.store import StoredPoint, open_store
from tests.servers.celebrity import CelebritySite, celebrity_site
from tests.servers.hostile import HostileServer
from tests.servers.wikimedia import WikimediaServer, wikimedia_server

REPO_ROOT = Path(__file__).resolve().parents[2]

# Small timeouts and backoff: failure paths take fractions of a second; two engine workers.
QUICK: dict[str, Any] = {
    "engine.workers": 2,
    "crawl.concurrency": 16,
    "crawl.per_host": 8,
    "crawl.connect_timeout_s": 2.0,
    "crawl.read_timeout_s": 1.0,
    "crawl.total_timeout_s": 5.0,
    "crawl.retries": 1,
    "crawl.backoff_base_s": 0.02,
    "crawl.backoff_max_s": 1.0,
    "crawl.max_image_bytes": 8 * 1024 * 1024,
}


@pytest.fixture
async def site(faces_dir: Path) -> AsyncIterator[CelebritySite]:
    async with celebrity_site(faces_dir) as s:
        yield s


@pytest.fixture
async def wikimedia(faces_dir: Path) -> AsyncIterator[WikimediaServer]:
    async with wikimedia_server(faces_dir) as w:
        yield w


@pytest.fixture
async def hostile(faces_dir: Path) -> AsyncIterator[HostileServer]:
    async with HostileServer(faces_dir) as h:
        yield h


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """``make_settings(**{"crawl.page_depth": 2})``: quick settings, data dir in tmp_path, no config file."""

    def make(data_dir: Path | None = None, **overrides: Any) -> Settings:
        values = {**QUICK, "data_dir": str(data_dir or tmp_path / "data"), **overrides}
        return load_settings(environ={}, overrides=values)

    return make


@pytest.fixture
def crawl() -> Callable[..., Any]:
    """``await crawl(settings, plan)``: a whole crawl in this process, quietly."""

    async def run(settings: Settings, plan: CrawlPlan, **kwargs: Any) -> CrawlResult:
        kwargs = {"progress": False, "print_summary": False, "handle_signals": False, **kwargs}
        return await run_crawl(settings, plan, **kwargs)

    return run


def state_rows(settings: Settings, plan: CrawlPlan | None = None) -> dict[str, UrlRow]:
    """Every URL in the state file, by URL."""
    with CrawlState(state_path(settings, plan or CrawlPlan())) as state:
        return {row.url: row for row in state.urls()}


async def stored_points(settings: Settings) -> list[StoredPoint]:
    """Every point in the store the settings name."""
    store = await open_store(settings, create=False, optimize_on_open=False)
    try:
        points: list[StoredPoint] = []
        offset: str | None = None
        while True:
            page, offset = await store.scroll_points(offset, 256)
            points.extend(page)
            if offset is None:
                return points
    finally:
        await store.close(optimize=False)


def cli_env() -> dict[str, str]:
    """Environment for ``python -m sozy.crawl`` subprocesses: this checkout first, no config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOZY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT), *sys.path])
    return env


def cli_args(settings: Settings) -> list[str]:
    """Flags that make a CLI crawl use the same quick settings (via a TOML file beside the data dir)."""
    data = Path(settings.data_dir)
    config = data.parent / f"{data.name}.toml"
    c, e = settings.crawl, settings.engine
    config.write_text(
        "[engine]\n"
        f"workers = {e.workers}\n"
        "[crawl]\n"
        f"concurrency = {c.concurrency}\nper_host = {c.per_host}\n"
        f"connect_timeout_s = {c.connect_timeout_s}\nread_timeout_s = {c.read_timeout_s}\n"
        f"total_timeout_s = {c.total_timeout_s}\nretries = {c.retries}\n"
        f"backoff_base_s = {c.backoff_base_s}\nbackoff_max_s = {c.backoff_max_s}\n"
        f"max_image_bytes = {c.max_image_bytes}\npage_depth = {c.page_depth}\n"
    )
    return [sys.executable, "-m", "sozy.crawl", "--config", str(config), "--data-dir", str(data), "--no-progress"]
