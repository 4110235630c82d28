"""A re-run of a URL list that is all done: how long the crawl takes to find nothing new.

    python bench/relist.py               # 100,000 rows: well under a minute on 2 cores
    python bench/relist.py --rows 20000

Lists grow, so every run streams its lists again (``docs/crawl.md``): each
row costs a URL normalisation and one index lookup in the state, and a row
the state knows is not fetched again. This builds a state in which every row
of an N-row list is done, then times, side by side in one run:

1. a run with nothing to read (an empty list, after one that created the
   store): the fixed cost of a crawl (state, embedded store, fetcher; the
   face engine never starts);
2. the re-run of the N-row list, all done.

The last line is the re-run's wall time (goal: seconds, not minutes) and its
CPU time, which a busy machine inflates much less.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from sozy.config import Settings, load_settings  # noqa: E402
from sozy.crawl.plan import CrawlPlan  # noqa: E402
from sozy.crawl.runner import run_crawl, state_path  # noqa: E402
from sozy.crawl.state import DONE, CrawlState, Outcome  # noqa: E402
from sozy.records import Candidate  # noqa: E402

CHUNK = 10_000


def write_list(path: Path, rows: int) -> list[str]:
    # A host that never resolves: a row that were fetched would fail loudly.
    urls = [f"https://photos.invalid/people/{i // 100}/{i}.jpg" for i in range(rows)]
    path.write_text("url,name\n" + "".join(f"{u},Person {i // 100}\n" for i, u in enumerate(urls)))
    return urls


def mark_done(settings: Settings, plan: CrawlPlan, urls: list[str]) -> None:
    with CrawlState(state_path(settings, plan)) as state:
        for start in range(0, len(urls), CHUNK):
            chunk = urls[start : start + CHUNK]
            jobs = state.add_jobs((u, Candidate(image_url=u, source="urls", name="x")) for u in chunk)
            state.record([Outcome(j.url, DONE, faces=1, seq=j.seq) for j in jobs])


async def timed_run(settings: Settings, plan: CrawlPlan) -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds of this process (all its threads: a busy machine inflates
    the first, hardly the second) and the summary of one crawl."""
    started, cpu = time.perf_counter(), time.process_time()
    result = await run_crawl(settings, plan, progress=False, print_summary=False, handle_signals=False)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if result.exit_code != 0:
        raise SystemExit(f"crawl exited {result.exit_code}")
    return seconds, cpu, result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the list (default 100,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sozy-relist-") as tmp:
        root = Path(tmp)
        settings = load_settings(environ={}, overrides={"data_dir": str(root / "data"), "log_level": "WARNING"})
        listed, empty = root / "photos.csv", root / "empty.csv"
        urls = write_list(listed, args.rows)
        empty.write_text("url,name\n")
        plan = CrawlPlan(url_lists=(listed,))

        started = time.perf_counter()
        mark_done(settings, plan, urls)
        print(f"state: {args.rows:,} rows done in {time.perf_counter() - started:.1f} s")

        asyncio.run(timed_run(settings, CrawlPlan(url_lists=(empty,))))  # creates the store: not timed
        empty_s, empty_cpu, _ = asyncio.run(timed_run(settings, CrawlPlan(url_lists=(empty,))))
        rerun_s, rerun_cpu, summary = asyncio.run(timed_run(settings, plan))
        run = summary["run"]
        if run["discovered"] or run["fetched"] or summary["engine"] is not None:
            raise SystemExit(f"the re-run did work it should not have: {run}, engine {summary['engine']}")
        state = summary["state"]
        print(
            f"state after the re-run: {state['done']:,} done, units {state['units']}, discovery {summary['discovery']}"
        )
        print(
            f"nothing to read (empty list): {empty_s:.2f} s, {empty_cpu:.2f} s CPU "
            "(state, store, fetcher; no face engine)"
        )
        print(
            f"re-run, all {args.rows:,} rows done: {rerun_s:.2f} s, {rerun_cpu:.2f} s CPU, "
            f"{args.rows / rerun_s:,.0f} rows/s, {rerun_s - empty_s:.2f} s over the fixed cost"
        )
        print(f"re-run of a {args.rows:,}-row all-done list: {rerun_s:.1f} s ({rerun_cpu:.1f} s CPU)")


if __name__ == "__main__":
    main()
