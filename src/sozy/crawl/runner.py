"""One crawl from start to summary: open everything, run, handle Ctrl-C, report.

``run_crawl`` is what ``python -m sozy.crawl`` runs once its arguments are
checked; tests and benchmarks call it directly. Resources open in the order
that fails fastest and cheapest (state file, store, then the engine, whose
workers take seconds to load their models), and close in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sozy.config import Settings
from sozy.faces import FaceEngineError
from sozy.fetch import Fetcher
from sozy.records import utc_now
from sozy.store import FaceStore, StoreError, open_store

from .contact import ContactMissing, check_contact
from .lazyengine import EngineStartFailed, LazyEngine
from .pipeline import Crawler
from .plan import CrawlPlan
from .progress import Progress
from .state import CrawlState, StateError
from .stats import CrawlStats
from .summary import build_summary, format_summary, write_summary

if TYPE_CHECKING:
    from .cluster import ClusterEngine, RayCluster
    from .cluster.crawler import ClusterCrawler

log = logging.getLogger("sozy.crawl")

EXIT_OK = 0
EXIT_FAILED = 1  # the crawl started but a stage broke (e.g. the state file became unwritable)
EXIT_USAGE = 2  # bad arguments, config or input files
EXIT_STORE = 3  # the state or the store could not be opened (in use, unreachable, mismatched)
EXIT_ENGINE = 4  # the face engine could not start
EXIT_LOOKUPS_FAILED = 5  # every lookup failed (offline, or a dead endpoint): nothing could be discovered
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

SUMMARY_FILE = "crawl-summary.json"
# Seconds the final store statistics may take before the summary goes without them.
STATS_TIMEOUT_S = 30.0


class CrawlStartError(Exception):
    """The crawl could not start; ``exit_code`` says which part failed."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class CrawlResult:
    exit_code: int
    summary: dict[str, Any]
    summary_path: Path | None


def state_path(settings: Settings, plan: CrawlPlan) -> Path:
    """The state file of this crawl: one per shard."""
    name = settings.crawl.state_file
    if plan.shard is not None:
        name = plan.shard.state_file(name)
    return settings.data_path / name


def default_summary_path(settings: Settings, plan: CrawlPlan) -> Path:
    name = plan.shard.state_file(SUMMARY_FILE) if plan.shard is not None else SUMMARY_FILE
    return settings.data_path / name


async def run_crawl(
    settings: Settings,
    plan: CrawlPlan,
    *,
    summary_path: Path | None = None,
    progress: bool = True,
    print_summary: bool = True,
    handle_signals: bool = True,
    cluster: RayCluster | None = None,
) -> CrawlResult:
    """Crawl ``plan`` with ``settings``; raises ``CrawlStartError`` if it cannot start.

    With ``handle_signals``, the first SIGINT/SIGTERM stops gracefully (exit
    code 130 with a summary) and a second one exits the process at once;
    what was written stays consistent either way. With ``cluster`` the photos
    are fetched and embedded on a Ray cluster's nodes (``sozy.crawl.cluster``).
    """
    try:
        check_contact(settings.crawl, plan)
    except ContactMissing as exc:
        raise CrawlStartError(str(exc), EXIT_USAGE) from None
    started_at = utc_now()
    stats = CrawlStats()
    summary_path = summary_path or default_summary_path(settings, plan)
    async with _opened(settings, plan, cluster) as res:
        state, store, engine, fetcher = res.state, res.store, res.engine, res.fetcher
        # Rates count from here: opening the store and starting the engine is startup.
        startup_s = stats.elapsed
        stats.started = time.monotonic()
        crawler = _crawler(settings, plan, res, cluster, stats)
        display = Progress(stats) if progress else None
        interrupted = False

        def on_signal(signum: int) -> None:
            nonlocal interrupted
            if interrupted:
                sys.stderr.write(
                    "\nInterrupted again: exiting now. The state is consistent; run the same command to resume.\n"
                )
                sys.stderr.flush()
                os._exit(EXIT_INTERRUPTED)
            interrupted = True
            sys.stderr.write(
                f"\n{signal.Signals(signum).name}: stopping after the photos in progress (again to exit at once)…\n"
            )
            sys.stderr.flush()
            crawler.stop()

        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for signum in signals:
            loop.add_signal_handler(signum, on_signal, signum)
        log.info(
            "crawl: %s; state %s; store %s; %s",
            ", ".join(plan.describe()) or "nothing new",
            state.path,
            _store_where(settings),
            f"engine {engine.workers} worker(s) on {engine.device}"
            if engine.workers
            else "the face engine starts with the first photo",
        )
        if display is not None:
            display.start()
        exit_code = EXIT_OK
        try:
            await crawler.run()
        except EngineStartFailed as exc:  # with the first photo: that photo stays pending
            log.error("%s", exc)
            exit_code = EXIT_ENGINE
        except Exception as exc:  # a stage broke: report it, still write what we know
            log.error("crawl failed: %s", exc)
            exit_code = EXIT_FAILED
        finally:
            if display is not None:
                await display.stop()
            for signum in signals:
                loop.remove_signal_handler(signum)
        if interrupted and exit_code == EXIT_OK:
            exit_code = EXIT_INTERRUPTED
            # Building the search index can take minutes: the next run (or search) does it.
            res.optimize_on_close = False
        elif exit_code == EXIT_OK and crawler.every_lookup_failed:
            exit_code = EXIT_LOOKUPS_FAILED
        store_stats = await _store_stats(store)
        summary = build_summary(
            stats,
            status=_status(exit_code),
            exit_code=exit_code,
            started_at=started_at,
            state_counts=state.url_counts(),
            unit_counts=state.unit_counts(),
            store=store_stats,
            engine={"workers": engine.workers, "device": engine.device, "model": engine.model_id}
            if engine.workers
            else None,
            shard=str(plan.shard) if plan.shard else None,
            sources=plan.describe(),
            discovery=dict(crawler.discovery),
            fetch={k: v for k, v in fetcher.counters.items() if v},
            startup_s=startup_s,
            lookups=dict(crawler.lookups),
            sources_down={kind: down.to_dict() for kind, down in crawler.sources_down.items()},
        )
        written: Path | None = None
        try:
            written = write_summary(summary_path, summary)
        except OSError as exc:
            log.error("could not write the summary to %s: %s", summary_path, exc)
        if print_summary:
            print(format_summary(summary))
            if written is not None:
                print(f"  summary: {written}")
    return CrawlResult(exit_code, summary, written)


def _status(exit_code: int) -> str:
    return {EXIT_OK: "finished", EXIT_INTERRUPTED: "interrupted", EXIT_LOOKUPS_FAILED: "incomplete"}.get(
        exit_code, "failed"
    )


def _crawler(
    settings: Settings, plan: CrawlPlan, res: _Resources, cluster: RayCluster | None, stats: CrawlStats
) -> Crawler | ClusterCrawler:
    """The crawler for the engine: the local one, or the cluster's."""
    if isinstance(res.engine, LazyEngine):
        return Crawler(
            settings, plan, state=res.state, fetcher=res.fetcher, engine=res.engine, store=res.store, stats=stats
        )
    assert cluster is not None, "a cluster engine comes from a cluster"
    return cluster.crawler(
        settings, plan, state=res.state, fetcher=res.fetcher, engine=res.engine, store=res.store, stats=stats
    )


@dataclass
class _Resources:
    state: CrawlState
    store: FaceStore
    engine: LazyEngine | ClusterEngine
    fetcher: Fetcher
    optimize_on_close: bool = True


@contextlib.asynccontextmanager
async def _opened(settings: Settings, plan: CrawlPlan, cluster: RayCluster | None) -> AsyncIterator[_Resources]:
    """The crawl's resources, closed in reverse order: fetcher, engine, store, state. The store
    builds its search index on the way out only after a crawl that ended normally."""
    res: _Resources | None = None
    async with contextlib.AsyncExitStack() as stack:
        try:
            state = CrawlState(state_path(settings, plan))
        except StateError as exc:
            raise CrawlStartError(str(exc), EXIT_STORE) from None
        except OSError as exc:
            raise CrawlStartError(f"cannot open the crawl state in {settings.data_path}: {exc}", EXIT_STORE) from None
        stack.callback(state.close)
        try:
            store = await open_store(settings)
        except StoreError as exc:
            raise CrawlStartError(str(exc), EXIT_STORE) from None
        except OSError as exc:
            raise CrawlStartError(f"cannot open the face store: {exc}", EXIT_STORE) from None

        async def close_store() -> None:
            await store.close(optimize=res is not None and res.optimize_on_close)

        stack.push_async_callback(close_store)
        _check_store_pairing(state, settings)
        # A cluster starts now (it checks the nodes); the local engine with the first photo.
        engine: LazyEngine | ClusterEngine
        if cluster is not None:
            engine = cluster.engine(settings)
            try:
                await engine.start()
            except (FaceEngineError, ValueError, OSError) as exc:
                raise CrawlStartError(f"the face engine could not start: {exc}", EXIT_ENGINE) from None
        else:
            engine = LazyEngine(settings.engine)
        stack.push_async_callback(engine.close)
        fetcher = await stack.enter_async_context(Fetcher(settings.crawl))
        res = _Resources(state, store, engine, fetcher)
        try:
            yield res
        except BaseException:
            res.optimize_on_close = False
            raise


def _check_store_pairing(state: CrawlState, settings: Settings) -> None:
    """The state says which URLs are in *a* store: warn when it is not the same one."""
    where = f"{_store_where(settings)}#{settings.store.collection}"
    known = state.get_meta("store")
    if known is None:
        state.set_meta("store", where)
    elif known != where:
        log.warning(
            "this crawl state (%s) was used with the store %s, now %s: photos done there are not "
            "crawled again into this one (use another --data-dir for a fresh crawl)",
            state.path,
            known,
            where,
        )


def _store_where(settings: Settings) -> str:
    return settings.store.url or str(settings.store_path.resolve())


async def _store_stats(store: FaceStore) -> dict[str, Any] | None:
    try:
        s = await asyncio.wait_for(store.stats(), STATS_TIMEOUT_S)
    except Exception as exc:  # the summary is still useful without them
        log.warning("could not read the store's statistics: %r", exc)
        return None
    return {
        "faces": s.faces,
        "people": s.people,
        "backend": s.backend,
        "collection": s.collection,
        "models": list(s.models),
    }
