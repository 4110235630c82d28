"""The crawl's memory between runs: one SQLite file in the data dir.

What it records:

- ``urls``: every photo URL the crawl has been given (keyed by its
  normalized form, see ``urlkey``), in discovery order (``seq``), with what
  the sources said about it and its outcome: ``pending``, ``done`` (faces
  stored), ``failed`` (reason, attempts, last error) or ``skipped`` (why).
- ``content``: which URL owns each photo content (sha256), so the same bytes
  at a second URL are not stored twice. A URL whose source named the person
  beats one without a name; between equals the URL discovered first wins,
  whatever order the photos finish in, which keeps crawls reproducible.
- ``units``: discovery work done once — a name looked up, a URL list read to
  its end, a page walked — so a resumed crawl does not repeat it.

Crash safety comes from ordering, not from fsync: a URL is marked ``done``
only after its faces were upserted in the store (the pipeline's job), and
each batch of outcomes is one transaction. After ``kill -9`` every URL is
either still pending (processed again, with the same deterministic point
ids) or done with its points in the store. WAL with ``synchronous=NORMAL``
loses no committed transaction when the process dies; only a power cut can
drop the last few, which again just leaves them pending.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sozy.records import Candidate, utc_now


class Status(StrEnum):
    """Where a URL or a discovery unit stands; stored as its value."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # URLs only: not a face photo we may store (see ``SKIP_REASONS``)


PENDING, DONE, FAILED, SKIPPED = Status.PENDING, Status.DONE, Status.FAILED, Status.SKIPPED
STATUSES = tuple(Status)


class UnitKind(StrEnum):
    """The kinds of discovery work; stored as their value."""

    NAME = "name"  # a person's name or Wikidata id
    SEARCH = "search"  # a name's image-search lookup
    TOP = "top"  # the top-people query
    URL_LIST = "urls"  # a URL list file
    PAGE = "page"  # a page to crawl
    FOLDER = "folders"  # a folder of photos


SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS urls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed', 'skipped')),
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sha256 TEXT,
    faces INTEGER,
    duplicate_of TEXT,
    source TEXT NOT NULL,
    page_url TEXT,
    name TEXT,
    person_id TEXT,
    license TEXT,
    attribution TEXT,
    alt TEXT,
    page_title TEXT,
    license_url TEXT,
    fetch_policy TEXT,
    attribution_required INTEGER,
    restrictions TEXT,
    reference INTEGER,
    discovered_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX IF NOT EXISTS urls_by_status ON urls (status, seq);
CREATE INDEX IF NOT EXISTS urls_by_owner ON urls (duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE TABLE IF NOT EXISTS content (
    sha256 TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    url TEXT NOT NULL,
    faces INTEGER NOT NULL,
    named INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS units (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    found INTEGER,
    updated_at TEXT,
    UNIQUE (kind, key)
);
CREATE INDEX IF NOT EXISTS units_by_status ON units (status, id);
"""

_CANDIDATE_COLUMNS = (
    "source",
    "page_url",
    "name",
    "person_id",
    "license",
    "attribution",
    "alt",
    "page_title",
    "license_url",
    "fetch_policy",
    "attribution_required",
    "restrictions",
    "reference",
)
# Columns added to ``urls`` after schema 1 was first written: added in place when an older file
# opens (NULL for the photos already there).
_ADDED_COLUMNS = {
    "person_id": "TEXT",
    "license_url": "TEXT",
    "fetch_policy": "TEXT",
    "attribution_required": "INTEGER",
    "restrictions": "TEXT",
    "reference": "INTEGER",
}
_INSERT_JOB = (
    f"INSERT INTO urls (url, {', '.join(_CANDIDATE_COLUMNS)}, discovered_at)"
    f" VALUES ({', '.join('?' * (len(_CANDIDATE_COLUMNS) + 2))}) ON CONFLICT (url) DO NOTHING RETURNING seq"
)


class StateError(Exception):
    """The crawl state cannot be used (corrupt, newer schema, unwritable)."""


class StateInUse(StateError):
    """Another crawl holds this state file."""


@dataclass(frozen=True, slots=True)
class Job:
    """A photo URL to process: its state key, discovery order and candidate."""

    seq: int
    url: str
    candidate: Candidate
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one URL; ``record`` writes a batch of these at once.

    ``attempt`` is False when the outcome is a consequence of another URL's
    (a photo that lost its content to an earlier-discovered copy).
    """

    url: str
    status: Status
    reason: str | None = None
    error: str | None = None
    sha256: str | None = None
    faces: int | None = None
    duplicate_of: str | None = None
    seq: int | None = None
    named: bool = False
    attempt: bool = True


@dataclass(frozen=True, slots=True)
class ContentOwner:
    """The URL whose faces stand for a photo content."""

    seq: int
    url: str
    faces: int
    named: bool = False

    @property
    def rank(self) -> tuple[int, int]:
        """Lower wins: named before unnamed, then earlier discovered."""
        return content_rank(self.named, self.seq)


def content_rank(named: bool, seq: int) -> tuple[int, int]:
    """How strongly a URL claims a content it shares with others (lower wins)."""
    return (0 if named else 1, seq)


@dataclass(frozen=True, slots=True)
class Unit:
    """A piece of discovery work: ``kind`` ("name", "search", "urls", "page", ...), ``key``, ``label``."""

    id: int
    kind: UnitKind
    key: str
    label: str
    status: Status
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class UrlRow:
    """Everything the state knows about one URL (for reports and tests)."""

    seq: int
    url: str
    status: Status
    reason: str | None
    attempts: int
    last_error: str | None
    sha256: str | None
    faces: int | None
    duplicate_of: str | None
    candidate: Candidate


class CrawlState:
    """The crawl state file. Synchronous and single-threaded: the pipeline
    calls it from one dedicated thread.

    Opening takes an exclusive lock on ``<path>.lock`` so two crawls never
    work from one state (``StateInUse``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._setup()
        except sqlite3.DatabaseError as exc:
            os.close(self._lock_fd)
            raise StateError(f"crawl state {self.path} cannot be used: {exc}") from None
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _setup(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: commits are not fsynced one by one; safe against a killed process (see module doc).
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.executescript(_SCHEMA)
        self._add_columns()
        version = self.get_meta("schema")
        if version is None:
            self.set_meta("schema", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise StateError(
                f"crawl state {self.path} has schema {version}, this Sozy reads {SCHEMA_VERSION}; "
                "use a new --data-dir or the matching Sozy version"
            )

    def _add_columns(self) -> None:
        """Bring a state written before the newer candidate columns up to date."""
        have = {row["name"] for row in self._db.execute("PRAGMA table_info(urls)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE urls ADD COLUMN {column} {kind}")
                if column == "fetch_policy":
                    # Photos Wikidata found before policies were recorded are Commons media.
                    self._db.execute("UPDATE urls SET fetch_policy = 'wikimedia_media' WHERE source = 'wikidata'")

    def close(self) -> None:
        """Close the database and release the lock (idempotent)."""
        if self._lock_fd < 0:
            return
        try:
            self._db.close()
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> CrawlState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- meta -------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def folder_roots(self) -> dict[str, Path]:
        """The crawled folders by the name their photos' URLs carry (``file:<name>/…``)."""
        rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'folder:%'").fetchall()
        return {str(row["key"])[len("folder:") :]: Path(row["value"]) for row in rows}

    def name_folder(self, root: Path) -> str:
        """The name ``root``'s photo URLs carry: its own name, made unique among the crawled folders."""
        known = self.folder_roots()
        for name, path in known.items():
            if path == root:
                return name
        base = root.name or "folder"
        name, n = base, 1
        while name in known:
            n += 1
            name = f"{base}-{n}"
        self.set_meta(f"folder:{name}", str(root))
        return name

    # --- urls -------------------------------------------------------------------

    def add_jobs(self, candidates: Iterable[tuple[str, Candidate]]) -> list[Job]:
        """Record new candidates (``(url key, candidate)``) as pending, in one transaction.

        Returns the Jobs for URLs not seen before; a URL already known (in any
        status) is left as it is, keeping what the first source said about it.
        """
        with self._transaction():
            return self._insert_jobs(candidates)

    def _insert_jobs(self, candidates: Iterable[tuple[str, Candidate]]) -> list[Job]:
        now = utc_now()
        new: list[Job] = []
        for url, cand in candidates:
            row = self._db.execute(_INSERT_JOB, (url, *(getattr(cand, c) for c in _CANDIDATE_COLUMNS), now)).fetchone()
            if row is not None:
                new.append(Job(seq=int(row["seq"]), url=url, candidate=cand))
        return new

    def jobs(self, status: Status, *, after_seq: int = 0, upto_seq: int | None = None, limit: int = 500) -> list[Job]:
        """URLs in ``status`` with ``after_seq < seq <= upto_seq``, oldest first (keyset paging)."""
        upto = upto_seq if upto_seq is not None else 2**62
        rows = self._db.execute(
            "SELECT * FROM urls WHERE status = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (status, after_seq, upto, limit),
        ).fetchall()
        return [Job(seq=r["seq"], url=r["url"], candidate=_candidate(r), attempts=r["attempts"]) for r in rows]

    def max_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) AS m FROM urls").fetchone()
        return int(row["m"])

    def url(self, url: str) -> UrlRow | None:
        row = self._db.execute("SELECT * FROM urls WHERE url = ?", (url,)).fetchone()
        return None if row is None else _url_row(row)

    def urls(self) -> list[UrlRow]:
        """Every URL, in discovery order (reports and tests; not for huge states)."""
        return [_url_row(r) for r in self._db.execute("SELECT * FROM urls ORDER BY seq")]

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write a batch of outcomes in one transaction.

        ``done`` and ``no_face`` outcomes with a sha256 also claim the content
        for their URL unless a URL of better rank (``content_rank``) owns it.
        """
        if not outcomes:
            return
        now = utc_now()
        with self._transaction():
            for o in outcomes:
                if o.status not in (DONE, FAILED, SKIPPED):
                    raise ValueError(f"not an outcome status: {o.status!r}")
                owner = o.duplicate_of
                if owner is not None:
                    # Point at the content's final owner, never at another copy: no chains.
                    row = self._db.execute(
                        "SELECT duplicate_of FROM urls WHERE url = ? AND duplicate_of IS NOT NULL", (owner,)
                    ).fetchone()
                    owner = row["duplicate_of"] if row is not None else owner
                self._db.execute(
                    "UPDATE urls SET status = ?, reason = ?, last_error = ?, sha256 = COALESCE(?, sha256),"
                    " faces = ?, duplicate_of = ?, attempts = attempts + ?, updated_at = ? WHERE url = ?",
                    (o.status, o.reason, o.error, o.sha256, o.faces, owner, 1 if o.attempt else 0, now, o.url),
                )
                if owner is not None:
                    # A URL that just lost its content hands its copies to the new owner.
                    self._db.execute("UPDATE urls SET duplicate_of = ? WHERE duplicate_of = ?", (owner, o.url))
                if o.sha256 and o.seq is not None and o.faces is not None and o.duplicate_of is None:
                    self._db.execute(
                        "INSERT INTO content (sha256, seq, url, faces, named) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (sha256) DO UPDATE SET seq = excluded.seq, url = excluded.url,"
                        " faces = excluded.faces, named = excluded.named"
                        " WHERE (1 - excluded.named, excluded.seq) <= (1 - content.named, content.seq)",
                        (o.sha256, o.seq, o.url, o.faces, int(o.named)),
                    )

    def content_owner(self, sha256: str) -> ContentOwner | None:
        row = self._db.execute("SELECT seq, url, faces, named FROM content WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None:
            return None
        return ContentOwner(seq=row["seq"], url=row["url"], faces=row["faces"], named=bool(row["named"]))

    def url_counts(self) -> dict[str, Counter[str]]:
        """``{status: Counter(reason → URLs)}``; reason ``""`` where there is none (pending, done)."""
        counts: dict[str, Counter[str]] = {s: Counter() for s in STATUSES}
        for row in self._db.execute(
            "SELECT status, COALESCE(reason, '') AS reason, COUNT(*) AS n FROM urls GROUP BY status, reason"
        ):
            counts[row["status"]][row["reason"]] += row["n"]
        return counts

    # --- discovery units ------------------------------------------------------------

    def add_units(self, kind: UnitKind, keyed: Iterable[tuple[str, str]]) -> int:
        """Record ``(key, label)`` units of ``kind`` as pending; known keys are left alone.
        Returns how many were new."""
        with self._transaction():
            return self._add_units(kind, keyed)

    def _add_units(self, kind: UnitKind, keyed: Iterable[tuple[str, str]]) -> int:
        added = 0
        for key, label in keyed:
            cur = self._db.execute(
                "INSERT INTO units (kind, key, label) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO NOTHING",
                (kind, key, label),
            )
            added += cur.rowcount
        return added

    def unit(self, kind: UnitKind, key: str) -> Unit | None:
        row = self._db.execute("SELECT * FROM units WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return None if row is None else _unit(row)

    def units(self, kinds: Sequence[UnitKind], status: Status, *, after_id: int = 0, limit: int = 500) -> list[Unit]:
        """Units of the given kinds in ``status``, in the order they were added (keyset paging)."""
        marks = ",".join("?" * len(kinds))
        rows = self._db.execute(
            f"SELECT * FROM units WHERE status = ? AND kind IN ({marks}) AND id > ? ORDER BY id LIMIT ?",
            (status, *kinds, after_id, limit),
        ).fetchall()
        return [_unit(r) for r in rows]

    def finish_unit(
        self, kind: UnitKind, key: str, candidates: Iterable[tuple[str, Candidate]] = (), *, label: str | None = None
    ) -> list[Job]:
        """Add a unit's last candidates and mark it done, atomically; returns the new Jobs."""
        with self._transaction():
            jobs = self._insert_jobs(candidates)
            self._db.execute(
                "INSERT INTO units (kind, key, label) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO NOTHING",
                (kind, key, label if label is not None else key),
            )
            self._db.execute(
                "UPDATE units SET status = 'done', reason = NULL, last_error = NULL, attempts = attempts + 1,"
                " found = COALESCE(found, 0) + ?, updated_at = ? WHERE kind = ? AND key = ?",
                (len(jobs), utc_now(), kind, key),
            )
            return jobs

    def fail_unit(self, kind: UnitKind, key: str, reason: str, error: str = "", *, label: str | None = None) -> None:
        """Mark a unit failed (it is tried again by ``--retry-failed``)."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO units (kind, key, label) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO NOTHING",
                (kind, key, label if label is not None else key),
            )
            self._db.execute(
                "UPDATE units SET status = 'failed', reason = ?, last_error = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE kind = ? AND key = ?",
                (reason, error[:500], utc_now(), kind, key),
            )

    def requeue_units(self, kind: UnitKind, keys: Sequence[str]) -> None:
        """Failed units back to pending, for the next run (their host was down, not they wrong)."""
        with self._transaction():
            self._db.executemany(
                "UPDATE units SET status = 'pending', updated_at = ? WHERE kind = ? AND key = ? AND status = 'failed'",
                [(utc_now(), kind, key) for key in keys],
            )

    def unit_counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {status: units}}``."""
        counts: dict[str, dict[str, int]] = {}
        for row in self._db.execute("SELECT kind, status, COUNT(*) AS n FROM units GROUP BY kind, status"):
            counts.setdefault(row["kind"], {})[row["status"]] = row["n"]
        return counts

    def failed_unit_reasons(self) -> Counter[str]:
        return Counter(
            {
                f"{r['kind']}:{r['reason']}": r["n"]
                for r in self._db.execute(
                    "SELECT kind, reason, COUNT(*) AS n FROM units WHERE status = 'failed' GROUP BY kind, reason"
                )
            }
        )

    # --- plumbing ---------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")


def _lock(path: Path) -> int:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateInUse(
            f"crawl state {path} is in use by another crawl; wait for it to finish or use another --data-dir"
        ) from None
    return fd


def _candidate(row: sqlite3.Row) -> Candidate:
    values = {c: row[c] for c in _CANDIDATE_COLUMNS}
    required = values.pop("attribution_required")  # SQLite keeps a bool as 0 / 1
    reference = bool(values.pop("reference"))  # NULL in rows written before the column
    return Candidate(
        image_url=row["url"],
        attribution_required=None if required is None else bool(required),
        reference=reference,
        **values,
    )


def _url_row(row: sqlite3.Row) -> UrlRow:
    return UrlRow(
        seq=row["seq"],
        url=row["url"],
        status=Status(row["status"]),
        reason=row["reason"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        sha256=row["sha256"],
        faces=row["faces"],
        duplicate_of=row["duplicate_of"],
        candidate=_candidate(row),
    )


def _unit(row: sqlite3.Row) -> Unit:
    return Unit(
        id=row["id"],
        kind=UnitKind(row["kind"]),
        key=row["key"],
        label=row["label"],
        status=Status(row["status"]),
        attempts=row["attempts"],
    )
