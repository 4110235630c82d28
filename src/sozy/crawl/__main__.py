"""``python -m sozy.crawl``: find celebrity photos, embed their faces, store them.

Exit codes: 0 the crawl ran to its end (per-photo failures are in the
summary), 130 stopped by Ctrl-C (state saved, summary written), 1 a stage
broke mid-crawl, 2 bad arguments / config / input, 3 the state or store
could not be opened (e.g. in use), 4 the face engine could not start, 5 every
lookup failed (offline, or a dead endpoint; what was not tried stays pending).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from sozy.config import ConfigError, Device, Settings, load_settings
from sozy.logs import setup_logging
from sozy.sources import UrlListError, read_url_list
from sozy.sources.folders import read_people_file
from sozy.sources.wikidata import occupation_ids

from .plan import CrawlPlan
from .runner import EXIT_USAGE, CrawlStartError, run_crawl
from .shard import Shard
from .urlkey import normalize_url

if TYPE_CHECKING:
    from .cluster import RayCluster

log = logging.getLogger("sozy.crawl")

DESCRIPTION = """\
Crawl photos of people, find their faces and store them for lookalike search.

Give one or more sources. Every photo URL's outcome is kept in a state file in
the data dir, so running the same command again resumes where it stopped
(Ctrl-C, kill, crash): nothing is done twice, nothing is lost.
"""

EPILOG = """\
examples:
  python -m sozy.crawl --names config/names.txt
  python -m sozy.crawl --top 1000 --occupation actor --occupation singer
  python -m sozy.crawl --urls photos.csv --limit 500
  python -m sozy.crawl --pages https://example.org/people/ --thumbnails
  python -m sozy.crawl --folders ~/Pictures/celebrities
  python -m sozy.crawl --names names.txt --shard 2/8 --qdrant-url http://qdrant:6333
  python -m sozy.crawl --urls photos.csv --ray auto
  python -m sozy.crawl --retry-failed

exit codes: 0 finished (per-photo failures are in the summary), 130 interrupted
(state saved), 1 a stage broke mid-crawl, 2 bad arguments/config/input,
3 state or store cannot be opened (in use?), 4 the face engine cannot start,
5 every name/search lookup failed: the host is unreachable (check the network,
or crawl.wikidata_api / crawl.commons_api / crawl.sparql_url); its lookups
stay pending, so the same command resumes them.
"""


class InputError(ValueError):
    """A source given on the command line cannot be used."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sozy.crawl",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("sources (at least one, unless --retry-failed)")
    src.add_argument(
        "--names",
        metavar="FILE",
        type=Path,
        help="a text file with one person a line (a name or a Wikidata Q-id); each is looked "
        "up on Wikidata and their photos taken from Wikimedia Commons",
    )
    src.add_argument(
        "--top",
        metavar="N",
        type=int,
        help="the N people with a photo that most Wikipedias link to (Wikidata SPARQL); needs a "
        "contact of yours in crawl.api_user_agent (SOZY_CRAWL_API_USER_AGENT), as does a "
        "--names file of more than 300 names",
    )
    src.add_argument(
        "--occupation",
        metavar="X",
        action="append",
        default=[],
        help="with --top: only people with this occupation (actor, singer, athlete, "
        "footballer, politician, musician, … or a Q-id); repeat for several",
    )
    src.add_argument(
        "--search-engine",
        action="store_true",
        help="also look each name up on an image search engine (crawl.search_url; opt-in: "
        "results are unlicensed photos and the engine's markup can change)",
    )
    src.add_argument(
        "--urls",
        metavar="FILE",
        type=Path,
        action="append",
        default=[],
        help="a list of photo URLs: .txt (one a line), .csv/.tsv with a header (url, "
        "optional name, page_url, license, attribution) or .jsonl; read as a stream",
    )
    src.add_argument(
        "--pages",
        metavar="URL",
        nargs="+",
        action="extend",
        default=[],
        help="web pages to take photos from (<img>, srcset, og:image), following same-site links to crawl.page_depth",
    )
    src.add_argument(
        "--folders",
        metavar="DIR",
        type=Path,
        action="append",
        default=[],
        help="local photos laid out as DIR/<person name>/<photo>; the folder names the person "
        "(or DIR/people.csv, folder,name, maps short folder names to names); read again "
        "every run for new photos. The sample gallery: examples/faces",
    )

    run = p.add_argument_group("this run")
    run.add_argument(
        "--retry-failed", action="store_true", help="retry only the photos and lookups that failed in earlier runs"
    )
    run.add_argument(
        "--limit", metavar="N", type=int, help="process at most N photos in this run (the rest stays for the next run)"
    )
    run.add_argument(
        "--shard",
        metavar="I/N",
        help="crawl only part I of N (1-based) of the input, split by a hash of each name or "
        "photo URL; run N crawlers with 1/N … N/N to share the work with no overlap",
    )
    run.add_argument(
        "--ray",
        metavar="ADDRESS",
        nargs="?",
        const="auto",
        help="fetch and embed on the Ray cluster at ADDRESS (HOST:PORT of its head, ray://HOST:PORT, "
        "or auto, the default: $RAY_ADDRESS, else the cluster this machine joined); this machine "
        "keeps the state and writes the store; needs pip install 'sozy[ray]'",
    )
    run.add_argument(
        "--summary",
        metavar="PATH",
        type=Path,
        help="where to write the JSON summary (default: DATA_DIR/crawl-summary.json)",
    )
    run.add_argument(
        "--no-progress", action="store_true", help="no live progress display (log lines are still written)"
    )

    cfg = p.add_argument_group("settings (override the config file and SOZY_* variables)")
    cfg.add_argument(
        "--config", metavar="FILE", help="TOML config file (default: $SOZY_CONFIG, else ./config/sozy.toml if present)"
    )
    cfg.add_argument(
        "--data-dir", metavar="DIR", help="where the crawl state, embedded store and thumbnails live (default: ./data)"
    )
    cfg.add_argument(
        "--qdrant-url", metavar="URL", help="store faces in this Qdrant server instead of the embedded store"
    )
    cfg.add_argument("--concurrency", metavar="N", type=int, help="photos fetched at once, in all (crawl.concurrency)")
    cfg.add_argument("--per-host", metavar="N", type=int, help="requests at once to one host (crawl.per_host)")
    cfg.add_argument(
        "--workers",
        metavar="N",
        type=int,
        help="face engine processes (engine.workers; 0 = one per CPU core, or per GPU)",
    )
    cfg.add_argument("--device", choices=get_args(Device), help="where faces are embedded (engine.device)")
    cfg.add_argument(
        "--thumbnails",
        action="store_true",
        default=None,
        help="also write a small JPEG of each face to DATA_DIR/thumbnails/",
    )
    cfg.add_argument(
        "--no-robots",
        action="store_true",
        help="ignore robots.txt and X-Robots-Tag (only for sites you own or may crawl anyway)",
    )
    cfg.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="DEBUG, INFO, WARNING or ERROR",
    )
    return p


def load(args: argparse.Namespace) -> Settings:
    """Settings from the config file, the environment and the flags."""
    overrides = {
        "data_dir": args.data_dir,
        "log_level": args.log_level,
        "store.url": args.qdrant_url,
        "crawl.concurrency": args.concurrency,
        "crawl.per_host": args.per_host,
        "crawl.thumbnails": args.thumbnails,
        "crawl.respect_robots": False if args.no_robots else None,
        "engine.workers": args.workers,
        "engine.device": args.device,
    }
    return load_settings(args.config, overrides=overrides)


def make_plan(args: argparse.Namespace) -> CrawlPlan:
    """The sources and limits of this run, each checked so a bad one fails now, not mid-crawl."""
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    if args.top is not None and args.top < 1:
        raise InputError(f"--top must be at least 1, got {args.top}")
    if args.occupation and not args.top:
        raise InputError("--occupation needs --top N")
    if args.search_engine and not (args.names or args.top):
        raise InputError("--search-engine looks names up: give --names or --top too")
    if args.occupation:
        occupation_ids(args.occupation)  # ValueError names the known ones
    if args.names is not None:
        _check_readable(args.names, "--names")
    for path in args.urls:
        _check_readable(path, "--urls")
    for folder in args.folders:
        if not folder.is_dir():
            raise InputError(
                f"--folders: {folder} is not a directory (give a folder of <person>/<photo>; "
                "the repository's sample gallery is examples/faces)"
            )
        read_people_file(folder)  # a PeopleFileError (a ValueError) says what to fix
    for url in args.pages:
        if normalize_url(url) is None or not url.strip().lower().startswith(("http://", "https://")):
            raise InputError(f"--pages: not an http(s) URL: {url!r}")
    shard = None
    if args.shard is not None:
        shard = Shard.parse(args.shard)
        if args.ray is not None:
            raise InputError("--shard and --ray: a --ray crawl spreads the whole input over the cluster; give one")
    plan = CrawlPlan(
        names_file=args.names,
        top=args.top or 0,
        occupations=tuple(args.occupation),
        search_engine=args.search_engine,
        url_lists=tuple(args.urls),
        pages=tuple(args.pages),
        folders=tuple(args.folders),
        retry_failed=args.retry_failed,
        limit=args.limit,
        shard=shard,
    )
    if not plan.has_sources and not plan.retry_failed:
        raise InputError("no sources given: use --names, --top, --urls, --pages or --folders (see --help)")
    return plan


def _check_readable(path: Path, flag: str) -> None:
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except IsADirectoryError:
        raise InputError(f"{flag}: {path} is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None


async def _check_url_lists(paths: Sequence[Path]) -> None:
    """A list whose header has no url column fails here, before anything opens."""
    for path in paths:
        try:
            async for _ in read_url_list(path):
                break
        except UrlListError as exc:
            raise InputError(f"--urls: {exc}") from None


async def _main(args: argparse.Namespace, settings: Settings, plan: CrawlPlan, cluster: RayCluster | None) -> int:
    await _check_url_lists(plan.url_lists)
    if not settings.crawl.respect_robots:
        log.warning("--no-robots: robots.txt and X-Robots-Tag are IGNORED; crawl only sites that allow it")
    if plan.retry_failed and plan.has_sources:
        log.warning("--retry-failed: the sources given are not read in this run, only earlier failures retried")
    result = await run_crawl(settings, plan, summary_path=args.summary, progress=not args.no_progress, cluster=cluster)
    return result.exit_code


def _cluster(address: str | None) -> RayCluster | None:
    """The cluster ``--ray`` names, checked (and ``ray`` imported) only when it is given."""
    if address is None:
        return None
    from .cluster import ClusterAddressError, RayCluster, ray_available, resolve_address

    if not ray_available():
        raise InputError("--ray needs Ray: pip install 'sozy[ray]'")
    try:
        return RayCluster(resolve_address(address))
    except ClusterAddressError as exc:
        raise InputError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load(args)
        plan = make_plan(args)
        cluster = _cluster(args.ray)
    except (ConfigError, ValueError) as exc:  # InputError is a ValueError
        print(f"sozy.crawl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(settings.log_level)
    try:
        return asyncio.run(_main(args, settings, plan, cluster))
    except InputError as exc:
        print(f"sozy.crawl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CrawlStartError as exc:
        print(f"sozy.crawl: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
