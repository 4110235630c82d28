"""Labels checked by consensus: a source's name is a claim, checked against the person's own faces.

Sources are noisy: a celebrity's Commons category holds co-stars, spouses and posters,
image search is worse. So a face a source names keeps that person only when it looks
like the person's other faces, and a face nobody named (a group photo, a page crawl)
gets a person only when it clearly matches one.

The rule (figures behind each threshold in docs/store.md, measured by
``bench/identity.py --sweep`` on the sample photos and calibrated synthetic faces):

- **Same-person link**: two faces closer than ``link_distance`` (0.6, dlib's own rule).
- **Majority**: among a person's faces, a face is in the majority when it links to at
  least half of the others. A person with fewer than ``min_faces`` faces has no majority
  yet: every claim stands until there is one.
- **A new claimed face** is checked against the person's ``neighbours`` nearest faces
  (one k-NN query filtered on ``person_id``: bounded cost per face, whatever the store's
  size). While the person has no more faces than that, the query sees all of them, so
  the majority is recomputed over the whole person and earlier faces outside it lose
  their label too (a wrong first photo is caught once the right ones arrive).
- **Attachment**: a face without a person (unnamed, or whose claim failed) is attached to
  the person of its nearest named face when that face is closer than
  ``attach_distance`` (0.5, stricter than 0.6) and no other person's face is.
- ``python -m sozy.store relabel`` applies the same rule in bulk, over each whole
  person, which also catches what a neighbourhood cannot see (a co-star who fills a
  large share of someone's photos), and migrates stores written before identities.

Every function takes its inputs (a store, vectors, labels) explicitly, so a crawl spread
over machines decides as one does.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from sozy.config import IdentitySettings
from sozy.records import VECTOR_SIZE, FaceHit, FaceRecord, Label

from .base import NAME_FIELD, PERSON_FIELD, StoredPoint, identity_payload

log = logging.getLogger(__name__)

_QID = re.compile(r"Q[1-9][0-9]*")
NOBODY: dict[str, Any] = {PERSON_FIELD: None, NAME_FIELD: None, "label": Label.NONE.value}
# Faces of one person compared pairwise in bulk; a larger person is judged against a sample.
MAX_PAIRWISE = 2000
# Points read per page while relabelling.
RELABEL_PAGE = 1024


@dataclass(frozen=True)
class ConsensusRule:
    """The thresholds of the consensus (see the module docstring)."""

    link_distance: float = 0.6
    attach_distance: float = 0.5
    neighbours: int = 16
    min_faces: int = 3
    # A face is in the majority when it links to at least this share of the person's other faces.
    majority: float = 0.5

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> ConsensusRule:
        return cls(
            link_distance=settings.link_distance,
            attach_distance=settings.attach_distance,
            neighbours=settings.neighbours,
            min_faces=settings.min_faces,
            majority=settings.majority,
        )


class ConsensusStore(Protocol):
    """The store calls consensus makes."""

    async def neighbours(
        self, vector: np.ndarray, k: int, *, person_id: str | None = None, named: bool | None = None,
        with_vectors: bool = False,
    ) -> list[FaceHit]: ...

    async def faces_where(self, match: Mapping[str, Any], *, with_vectors: bool = False) -> list[StoredPoint]: ...

    async def set_payloads(self, updates: Mapping[str, Mapping[str, Any]]) -> None: ...

    async def scroll_points(self, offset: str | None, limit: int) -> tuple[list[StoredPoint], str | None]: ...


# -- the rule, on plain vectors ----------------------------------------------------------------


def pairwise(vectors: np.ndarray) -> np.ndarray:
    """L2 distances between all rows."""
    v = np.asarray(vectors, np.float64)
    squared = (v**2).sum(1)[:, None] - 2.0 * v @ v.T + (v**2).sum(1)[None, :]
    return np.sqrt(np.maximum(squared, 0.0))


def in_majority(vectors: np.ndarray, rule: ConsensusRule) -> np.ndarray:
    """Which of one person's faces are in the majority (all of them while there are fewer
    than ``rule.min_faces``)."""
    n = len(vectors)
    if n < rule.min_faces:
        return np.ones(n, dtype=bool)
    links = (pairwise(vectors) < rule.link_distance).sum(1) - 1
    return np.asarray(links >= math.ceil(rule.majority * (n - 1)), dtype=bool)


def supported(distances: Sequence[float], rule: ConsensusRule) -> bool:
    """A face whose ``distances`` to the person's nearest other faces give it a majority."""
    if len(distances) + 1 < rule.min_faces:
        return True
    links = sum(1 for d in distances if d < rule.link_distance)
    return links >= math.ceil(rule.majority * len(distances))


def attachment(hits: Sequence[FaceHit], rule: ConsensusRule) -> FaceHit | None:
    """The named face whose person an unnamed face clearly is, from its nearest named faces
    (ascending): the nearest, when closer than ``attach_distance`` and no other person's is."""
    close = [h for h in hits if h.distance < rule.attach_distance and h.person_id]
    if not close or len({h.person_id for h in close}) > 1:
        return None
    return close[0]


def display_name(spellings: Iterable[str | None]) -> str | None:
    """The most common spelling; among equals, one with capitals and spaces (as people write
    names), then the first in sort order, so every process picks the same."""
    counts = Counter(s for s in spellings if s)
    if not counts:
        return None
    return max(counts, key=lambda s: (counts[s], s != s.lower() and s != s.upper(), " " in s, _reverse(s)))


def _reverse(text: str) -> tuple[int, ...]:
    # max() of this picks the smallest string.
    return tuple(-ord(c) for c in text)


# -- incremental: a crawl's batch ------------------------------------------------------------


@dataclass
class ConsensusResult:
    """What a batch becomes: its records (labels decided) and changes to faces already stored."""

    records: list[FaceRecord]
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: int = 0
    attached: int = 0
    # Stored faces this batch changed, as they are now (later faces of the batch see them so).
    changed: dict[str, FaceHit] = field(default_factory=dict)

    def change(self, hit: FaceHit, fields: Mapping[str, Any]) -> None:
        """Change a face: one of this batch's records, or a stored one (an update to write)."""
        for i, pending in enumerate(self.records):
            if pending.id == hit.id:
                self.records[i] = replace(pending, **fields)
                return
        self.updates[hit.id] = {**self.updates.get(hit.id, {}), **fields}
        self.changed[hit.id] = FaceHit(hit.id, 0.0, {**hit.payload, **fields}, hit.vector)


class Consensus:
    """Checks new faces against the store before they are written (``check``), one k-NN
    query per face; faces of the same batch see each other."""

    def __init__(self, store: ConsensusStore, rule: ConsensusRule | None = None) -> None:
        self.store = store
        self.rule = rule or ConsensusRule()

    async def check(self, records: Sequence[FaceRecord]) -> ConsensusResult:
        result = ConsensusResult(records=[])
        for record in records:
            decided = await self._decide(record, result)
            result.records.append(decided)
            if decided.person_id and decided.label == Label.SOURCE.value:
                await self._adopt(decided, result)
        return result

    async def _decide(self, record: FaceRecord, result: ConsensusResult) -> FaceRecord:
        if record.person_id and record.label != Label.NONE.value:
            kept = await self._check_claim(record, result)
            if kept is not None:
                return kept
            result.rejected += 1
            record = replace(record, person_id=None, name=None, label=Label.NONE.value)
        hits = await self._nearest(record.vector, result, own=record.id, named=True)
        target = attachment(hits, self.rule)
        if target is None:
            return record
        result.attached += 1
        return replace(record, person_id=target.person_id, name=target.name, label=Label.CONSENSUS.value)

    async def _check_claim(self, record: FaceRecord, result: ConsensusResult) -> FaceRecord | None:
        """The record (with the person's display name) if its claim holds, else None."""
        rule = self.rule
        person = str(record.person_id)
        others = await self._nearest(record.vector, result, own=record.id, person_id=person)
        others = [h for h in others if h.vector is not None]
        if len(others) < rule.neighbours:
            # The whole person is in view: the majority over all of them, earlier faces included.
            vectors = np.stack([record.vector, *[h.vector for h in others if h.vector is not None]])
            majority = in_majority(vectors, rule)
            for hit, ok in zip(others, majority[1:], strict=True):
                if not ok:
                    result.change(hit, NOBODY)
                    result.rejected += 1
            keep = bool(majority[0])
        else:
            keep = supported([h.distance for h in others], rule)
        if not keep:
            return None
        # Q-ids carry their Wikidata label; a key person shows their most common spelling.
        name = record.name if _QID.fullmatch(person) else display_name([record.name, *[h.name for h in others]])
        return replace(record, name=name or record.name)

    async def _adopt(self, record: FaceRecord, result: ConsensusResult) -> None:
        """Faces of nobody near a newly confirmed face (a group photo crawled before the
        portraits) are attached now if they clearly are someone: one query for them, and one
        per face close enough to be a candidate."""
        near = await self._nearest(record.vector, result, own=record.id, named=False)
        for hit in near:
            if hit.distance >= self.rule.attach_distance or hit.vector is None:
                break
            target = attachment(await self._nearest(hit.vector, result, own=hit.id, named=True), self.rule)
            if target is None:
                continue
            result.change(hit, {PERSON_FIELD: target.person_id, NAME_FIELD: target.name, "label": Label.CONSENSUS.value})
            result.attached += 1

    async def _nearest(
        self,
        vector: np.ndarray,
        result: ConsensusResult,
        *,
        own: str,
        person_id: str | None = None,
        named: bool | None = None,
    ) -> list[FaceHit]:
        """The ``rule.neighbours`` nearest faces (of ``person_id``, of someone or of nobody:
        ``named``), stored or decided earlier in this batch, with what this batch changed applied;
        never the face ``own`` itself."""
        k = self.rule.neighbours
        # One more than needed: the face itself may be stored already (a photo crawled again).
        stored = await self.store.neighbours(vector, k + 1, person_id=person_id, named=named, with_vectors=True)
        batch = {r.id for r in result.records}
        hits = [h for h in stored if h.id not in result.changed and h.id not in batch and h.id != own]
        candidates = [
            FaceHit(r.id, 0.0, {PERSON_FIELD: r.person_id, NAME_FIELD: r.name, "label": r.label}, r.vector)
            for r in result.records
        ] + list(result.changed.values())
        for face in candidates:
            wanted = (
                face.person_id == person_id if person_id is not None
                else named is None or bool(face.person_id) == named
            )
            if wanted and face.vector is not None and face.id != own:
                distance = float(np.linalg.norm(face.vector - vector))
                hits.append(FaceHit(face.id, distance, face.payload, face.vector))
        hits.sort(key=lambda h: h.distance)
        return hits[:k]


# -- bulk: python -m sozy.store relabel --------------------------------------------------------


@dataclass
class RelabelReport:
    faces: int = 0
    migrated: int = 0
    people: int = 0
    rejected: int = 0
    attached: int = 0
    renamed: int = 0


async def relabel(
    store: ConsensusStore, rule: ConsensusRule | None = None, progress: Callable[[str], None] | None = None
) -> RelabelReport:
    """Every face judged by the rule, person by person: migrate payloads written before
    identities, reject claims outside each person's majority, give each person its display
    name, then attach faces of nobody that clearly match one person."""
    rule = rule or ConsensusRule()
    report = RelabelReport()
    people: set[str] = set()
    offset: str | None = None
    while True:
        points, offset = await store.scroll_points(offset, RELABEL_PAGE)
        updates: dict[str, dict[str, Any]] = {}
        for point in points:
            report.faces += 1
            before = {f: point.payload.get(f) for f in (PERSON_FIELD, "label")}
            after = identity_payload(dict(point.payload))
            if {f: after.get(f) for f in before} != before:
                updates[point.id] = {PERSON_FIELD: after[PERSON_FIELD], "label": after["label"]}
            if after[PERSON_FIELD]:
                people.add(str(after[PERSON_FIELD]))
        await store.set_payloads(updates)
        report.migrated += len(updates)
        if offset is None:
            break
    if progress:
        progress(f"{report.faces:,} faces read, {report.migrated:,} given an identity; judging {len(people):,} people")
    for person in sorted(people):
        report.people += 1
        await _judge_person(store, person, rule, report)
    await _attach_unnamed(store, rule, report, progress)
    return report


async def _judge_person(store: ConsensusStore, person: str, rule: ConsensusRule, report: RelabelReport) -> None:
    faces = await store.faces_where({PERSON_FIELD: [person]}, with_vectors=True)
    if not faces:
        return
    vectors = np.stack([f.vector for f in faces])
    majority = _majority_of(vectors, rule)
    updates: dict[str, dict[str, Any]] = {}
    for face, ok in zip(faces, majority, strict=True):
        if not ok:
            updates[face.id] = dict(NOBODY)
    kept = [f for f, ok in zip(faces, majority, strict=True) if ok]
    sourced = [f.payload.get(NAME_FIELD) for f in kept if f.payload.get("label") == Label.SOURCE.value]
    name = display_name(sourced) or display_name(f.payload.get(NAME_FIELD) for f in kept)
    for face in kept:
        if name and face.payload.get(NAME_FIELD) != name:
            updates[face.id] = {NAME_FIELD: name}
            report.renamed += 1
    report.rejected += sum(1 for ok in majority if not ok)
    await store.set_payloads(updates)


def _majority_of(vectors: np.ndarray, rule: ConsensusRule) -> np.ndarray:
    """``in_majority`` over a whole person; a very large one is judged against a sample of
    its faces, so memory and time stay bounded."""
    if len(vectors) <= MAX_PAIRWISE:
        return in_majority(vectors, rule)
    sample = vectors[np.random.default_rng(len(vectors)).choice(len(vectors), MAX_PAIRWISE, replace=False)]
    ok = np.empty(len(vectors), dtype=bool)
    for start in range(0, len(vectors), MAX_PAIRWISE):
        chunk = vectors[start : start + MAX_PAIRWISE].astype(np.float64)
        d = np.sqrt(np.maximum((chunk**2).sum(1)[:, None] - 2 * chunk @ sample.T + (sample**2).sum(1)[None, :], 0))
        ok[start : start + MAX_PAIRWISE] = (d < rule.link_distance).sum(1) >= math.ceil(rule.majority * len(sample))
    return ok


async def _attach_unnamed(
    store: ConsensusStore, rule: ConsensusRule, report: RelabelReport, progress: Callable[[str], None] | None
) -> None:
    unnamed = await store.faces_where({"label": [Label.NONE.value]}, with_vectors=True)
    if progress:
        progress(f"attaching: {len(unnamed):,} faces of nobody known")
    updates: dict[str, dict[str, Any]] = {}
    for face in unnamed:
        if face.vector.shape != (VECTOR_SIZE,):
            continue
        target = attachment(await store.neighbours(face.vector, rule.neighbours, named=True), rule)
        if target is not None:
            updates[face.id] = {PERSON_FIELD: target.person_id, NAME_FIELD: target.name, "label": Label.CONSENSUS.value}
    await store.set_payloads(updates)
    report.attached += len(updates)
