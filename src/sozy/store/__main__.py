"""``python -m sozy.store``: inspect, index, take down from (and lift takedowns) and copy face stores.

Exit status: 0 done, 1 could not do it (one line on stderr says why), 2 bad command line
(argparse's usage errors and the commands' own, such as ``delete`` without a field),
130 interrupted (a copy resumes where it stopped when run again). Listings and
results go to stdout; progress and errors to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shlex
import sys
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sozy.config import ConfigError, Settings, load_settings
from sozy.logs import setup_logging
from sozy.progress import ProgressDisplay
from sozy.records import person_key
from sozy.thumbnails import remove_thumbnails

from . import opened_store
from .base import FaceStore, StoreError
from .consensus import ConsensusRule, relabel
from .copy import Checkpoint, CopyProgress, copy_store
from .selectors import DELETE_FIELDS

PROG = "python -m sozy.store"

LOCATIONS = """\
A LOCATION is one of:
  http://HOST:6333, https://...   a Qdrant server (API key from --from-api-key/--to-api-key,
                                  else store.api_key / SOZY_STORE_API_KEY)
  local:PATH                      qdrant-client's local mode in PATH (small stores, tests)
  PATH                            an embedded store directory (the default one is
                                  DATA_DIR/store, e.g. data/store)
"""


EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EXIT_CODES = "exit codes: 0 done, 1 could not do it (one line on stderr says why), 2 bad command line, 130 interrupted"


class CommandError(Exception):
    """The command cannot start or finish; the message is the one line printed."""


class UsageError(CommandError):
    """The command line asks for something that cannot be done (exit 2, as argparse's own errors)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect, index, take down from and copy Sozy face stores.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "The store is the embedded one in DATA_DIR/store unless store.url (--qdrant-url, SOZY_STORE_URL) "
            "names a Qdrant server.\nThe embedded store serves one process at a time: stop the crawler or the "
            "API before using these commands on it.\n\n" + LOCATIONS + "\n" + EXIT_CODES
        ),
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML settings file (default: $SOZY_CONFIG or config/sozy.toml)"
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="data directory; the embedded store is DIR/store (setting data_dir)"
    )
    parser.add_argument(
        "--qdrant-url", metavar="URL", help="use the Qdrant server at URL instead of the embedded store (store.url)"
    )
    # The old spelling, kept working; --qdrant-url is the one the crawler and the API take too.
    parser.add_argument("--url", dest="qdrant_url", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", metavar="KEY", help="API key of that server (store.api_key)")
    parser.add_argument("--collection", metavar="NAME", help="collection name (store.collection, default 'faces')")
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING (default: log_level setting)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stats = commands.add_parser("stats", help="faces, people, models and index state of the store")
    stats.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    commands.add_parser(
        "optimize",
        help="build the embedded store's search index now (the crawler does it when it closes)",
        description="Build the HNSW search index for faces not yet indexed. Embedded store only: "
        "a Qdrant server indexes in the background by itself.",
    )

    commands.add_parser(
        "relabel",
        help="check every face's person by consensus, attach unnamed faces, migrate old stores",
        description="Give faces stored before identities their person_id (from their name); then, "
        "person by person, take the person away from faces outside the majority of that person's own "
        "faces (a photo of someone else in their list), show each person under their most common "
        "spelling, and attach faces of nobody known that clearly match one person. The same rule as "
        "a crawl applies face by face (settings [identity]; docs/store.md). Safe to run again.",
    )

    delete = commands.add_parser(
        "delete",
        help="take down faces: by image URL, page URL, person (name or id) or source",
        description="Delete every face that matches ALL the given fields (at least one is required), "
        "and their thumbnail files. The takedown is recorded: the store refuses matching faces from "
        "then on (a re-crawl, new photos of the person; by --image-url also the same bytes at other "
        "URLs) until it is lifted. --name or --person-id takes a PERSON down: every face of that "
        "identity (any spelling of the name, its Wikidata id), faces within store.takedown_distance of "
        "them whatever their label (group photos), and from then on any new face that close to them; "
        "the removed faces' vectors are kept for that (no photos). Prints how many faces were deleted.",
    )
    _selector_arguments(delete)
    delete.add_argument(
        "--allow-recrawl", action="store_true", help="delete only: record no takedown, so a crawl may store them again"
    )

    takedowns = commands.add_parser(
        "takedowns",
        help="list the recorded takedowns",
        description="List the takedowns the store enforces, oldest first: the fields each one matches.",
    )
    takedowns.add_argument("--json", action="store_true", help="one JSON object per line")

    lift = commands.add_parser(
        "lift",
        help="take a takedown back, so matching faces may be stored again",
        description="Remove the takedown with exactly these fields (as `takedowns` lists it). Faces it "
        "deleted stay deleted; a crawl may store them again.",
    )
    _selector_arguments(lift)
    lift.add_argument("--image-sha256", metavar="HEX", help="a photo's sha256 (recorded by an --image-url takedown)")

    copy = commands.add_parser(
        "copy",
        help="copy all faces from one store to another (embedded -> server and back)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Copy every face, with its id and payload, from one store to another, in batches. "
        "Resumable: after each batch the position goes to a checkpoint file; run the same command again "
        "after an interruption and it goes on from there. Writes are idempotent (same ids), so faces "
        "already in the target are just rewritten.",
        epilog=LOCATIONS,
    )
    copy.add_argument("--from", dest="source", required=True, metavar="LOCATION", help="where the faces are")
    copy.add_argument("--to", dest="target", required=True, metavar="LOCATION", help="where they go")
    copy.add_argument(
        "--from-collection", metavar="NAME", help="source collection (default: --collection / store.collection)"
    )
    copy.add_argument(
        "--to-collection", metavar="NAME", help="target collection (default: the source collection's name)"
    )
    copy.add_argument("--from-api-key", metavar="KEY", help="API key of a source server (default: store.api_key)")
    copy.add_argument("--to-api-key", metavar="KEY", help="API key of a target server (default: store.api_key)")
    copy.add_argument("--batch", type=int, default=1000, metavar="N", help="faces per batch (default 1000)")
    copy.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="checkpoint file (default: DATA_DIR/store-copy-<hash of source and target>.json)",
    )
    copy.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and copy from the start")
    return parser


def _selector_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-url", metavar="URL", help="faces from this image URL")
    parser.add_argument("--page-url", metavar="URL", help="faces from photos found on this page")
    parser.add_argument("--name", metavar="NAME", help="a person, by name (any spelling of it) or Wikidata label")
    parser.add_argument("--person-id", metavar="ID", help="a person, by identity (a Q-id, or the key of a name)")
    parser.add_argument(
        "--source", metavar="SOURCE", help="faces from this source (wikidata, urls, pages, search, folder)"
    )


def location_settings(settings: Settings, location: str, collection: str, api_key: str | None) -> Settings:
    """Settings whose store is ``location`` (see LOCATIONS)."""
    changes: dict[str, Any] = {"store.collection": collection}
    if location.startswith(("http://", "https://", "local:")):
        changes["store.url"] = location
        if api_key is not None:
            changes["store.api_key"] = api_key
    else:
        changes["store.url"] = ""
        changes["store.path"] = str(Path(location).expanduser().resolve())
    return settings.replace(**changes)


def describe(settings: Settings) -> str:
    where = settings.store.url or str(settings.store_path)
    return f"{where}#{settings.store.collection}"


def _print_stats(store: FaceStore, stats: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(stats)))
        return
    print(f"backend:    {stats.backend} ({getattr(store, 'path', None) or getattr(store, 'where', '')})")
    print(f"collection: {stats.collection}")
    print(f"faces:      {stats.faces:,}")
    print(f"people:     {stats.people:,} distinct names")
    print(f"models:     {', '.join(stats.models) or '-'}")
    if stats.without_identity:
        print(f"identity:   {stats.without_identity:,} named faces from before identities: run `{PROG} relabel`")
    if stats.indexed is not None:
        print(f"indexed:    {stats.indexed:,} of {stats.faces:,} faces in the search index{_index_note(store, stats)}")


def _index_note(store: FaceStore, stats: Any) -> str:
    """Why faces are not in the index, when the engine leaves them out on purpose."""
    threshold = getattr(store, "index_threshold", None)
    unindexed = stats.faces - (stats.indexed or 0)
    if threshold is None or unindexed <= 0:
        return ""
    if unindexed < threshold:
        return (
            f"; the other {unindexed:,} are searched exactly, which is as fast at this size "
            f"(the engine indexes {threshold:,} or more new faces, when a crawl closes or on `optimize`)"
        )
    return f"; {unindexed:,} wait for an index build (`{PROG} optimize`, or the next crawl's close)"


def _existing_store(settings: Settings) -> AbstractAsyncContextManager[FaceStore]:
    """The store as the commands open it: never created, never indexed on the way in or out."""
    return opened_store(settings, create=False, optimize=False, optimize_on_open=False, optimize_every=0)


async def run_stats(settings: Settings, as_json: bool) -> None:
    async with _existing_store(settings) as store:
        _print_stats(store, await store.stats(), as_json)


async def run_optimize(settings: Settings) -> None:
    if settings.store.url:
        raise UsageError("optimize is for the embedded store: a Qdrant server indexes in the background by itself")
    async with _existing_store(settings) as store:
        started = time.perf_counter()
        built = await store.optimize()
        count = await store.count()
    what = "built" if built else "already up to date"
    print(f"search index of {count:,} faces {what} ({time.perf_counter() - started:.1f} s)")


async def run_relabel(settings: Settings) -> None:
    started = time.perf_counter()
    async with _existing_store(settings) as store:
        report = await relabel(
            store, ConsensusRule.from_settings(settings.identity), lambda line: print(line, file=sys.stderr, flush=True)
        )
    print(
        f"relabelled {report.faces:,} faces of {report.people:,} people in {time.perf_counter() - started:.1f} s: "
        f"{report.migrated:,} given an identity, {report.rejected:,} taken from a person they do not look like, "
        f"{report.attached:,} unnamed faces attached, {report.renamed:,} renamed to their person's display name"
    )


async def run_delete(settings: Settings, fields: dict[str, str | None], block: bool) -> None:
    if not any(fields.values()):
        flags = ", ".join(f"--{field.replace('_', '-')}" for field in DELETE_FIELDS)
        raise UsageError(f"delete needs at least one of {flags}")
    async with _existing_store(settings) as store:
        ids = await store.delete(**fields, block=block)
    removed = remove_thumbnails(settings.data_path, ids)
    print(f"deleted {len(ids):,} faces" + (f" and {removed:,} thumbnail files" if removed else ""))
    if block:
        print(f"taken down: matching faces are refused from now on (undo: {PROG} lift with the same fields)")


async def run_takedowns(settings: Settings, as_json: bool) -> None:
    async with _existing_store(settings) as store:
        takedowns = await store.takedowns()
    for takedown in takedowns:
        if as_json:
            print(json.dumps(takedown.to_dict(), ensure_ascii=False))
        else:
            fields = " ".join(
                f"--{field.replace('_', '-')} {shlex.quote(value)}" for field, value in takedown.selector.items()
            )
            faces = f"  ({len(takedown.vectors)} face vectors)" if len(takedown.vectors) else ""
            print(f"{takedown.created_at}  {fields}{faces}")
    if not as_json:
        print(f"{len(takedowns):,} takedowns")


async def run_lift(settings: Settings, selector: dict[str, str | None]) -> None:
    given = {field: value for field, value in selector.items() if value is not None}
    if "name" in given and "person_id" not in given:
        # A person is taken down by identity: --name lifts the takedown of that name's key.
        given["person_id"] = person_key(given.pop("name"))
    if not given:
        raise UsageError("lift needs the fields of a takedown, as `takedowns` lists them")
    async with _existing_store(settings) as store:
        lifted = await store.lift(given)
    if not lifted:
        raise CommandError(f"no takedown has exactly these fields: {given} (see `{PROG} takedowns`)")
    print("lifted: matching faces may be stored again")


class ProgressLine:
    """Copy progress on stderr: a line every few seconds (redrawn in place on a terminal)."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.display = ProgressDisplay(every_s=every_s)

    def __call__(self, progress: CopyProgress) -> None:
        share = f" ({100 * progress.copied / progress.total:.0f}%)" if progress.total else ""
        line = f"copied {progress.copied:,} of {progress.total:,} faces{share}, {progress.rate:,.0f} faces/s"
        self.display.show([line], final=progress.copied >= progress.total)


async def run_copy(settings: Settings, args: argparse.Namespace) -> None:
    source_collection = args.from_collection or settings.store.collection
    source = location_settings(settings, args.source, source_collection, args.from_api_key)
    target = location_settings(settings, args.target, args.to_collection or source_collection, args.to_api_key)
    if describe(source) == describe(target):
        raise UsageError(f"--from and --to are the same store ({describe(source)})")
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    key = hashlib.sha256(f"{describe(source)}\n{describe(target)}".encode()).hexdigest()[:12]
    checkpoint_path = Path(args.checkpoint) if args.checkpoint else settings.data_path / f"store-copy-{key}.json"
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint(checkpoint_path, describe(source), describe(target))
    if args.restart:
        checkpoint.clear()
    async with (
        _existing_store(source) as src,
        # The target indexes once, when it closes, rather than after every 200k faces.
        opened_store(target, optimize_on_open=False, optimize_every=0) as dst,
    ):
        print(f"copying {describe(source)} -> {describe(target)}", file=sys.stderr)
        copied = await copy_store(src, dst, batch=args.batch, checkpoint=checkpoint, on_progress=ProgressLine())
        if dst.backend == "embedded":
            print("building the target's search index...", file=sys.stderr, flush=True)
    print(f"copied {copied:,} faces to {describe(target)}")


def _selector(args: argparse.Namespace) -> dict[str, str | None]:
    return {field: getattr(args, field) for field in DELETE_FIELDS}


async def run(args: argparse.Namespace) -> None:
    overrides = {
        "data_dir": args.data_dir,
        "log_level": args.log_level,
        "store.url": args.qdrant_url,
        "store.api_key": args.api_key,
        "store.collection": args.collection,
    }
    settings = load_settings(args.config, overrides=overrides)
    setup_logging(settings.log_level if args.log_level else "WARNING")
    if args.command == "stats":
        await run_stats(settings, args.json)
    elif args.command == "optimize":
        await run_optimize(settings)
    elif args.command == "relabel":
        await run_relabel(settings)
    elif args.command == "delete":
        await run_delete(settings, _selector(args), block=not args.allow_recrawl)
    elif args.command == "takedowns":
        await run_takedowns(settings, args.json)
    elif args.command == "lift":
        await run_lift(settings, {**_selector(args), "image_sha256": args.image_sha256})
    elif args.command == "copy":
        await run_copy(settings, args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        hint = "; run the same command again to resume" if args.command == "copy" else ""
        print(f"{PROG}: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, StoreError, ConfigError, ValueError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
