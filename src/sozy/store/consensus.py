"""Labels checked by consensus: a source's name is a claim, checked against the person's own faces.

Sources are noisy: a celebrity's Commons category holds co-stars, spouses and posters,
image search is worse. So a face a source names keeps that person only when it looks
like the person's other faces, and a face nobody named (a group photo, a page crawl)
gets a person only when it clearly matches one.

The rule (figures behind each threshold in docs/store.md, measured by
``bench/identity.py --sweep`` on the sample photos and calibrated synthetic faces):

- **Same-person link**: two faces closer than ``link_distance`` (0.6, dlib's own rule).
- **Majority**: the person's faces joined by chains of links into a group of more than
  half of them (``majority``). Without one (fewer than ``min_faces`` faces, or no group
  that large yet) every claim stands until there is one.
- **A new claimed face** is checked against the person's ``neighbours`` nearest faces
  (one k-NN query filtered on ``person_id``: bounded cost per face, whatever the store's
  size). While the person has fewer faces than that, the query sees all of them, so
  the majority is recomputed over the whole person and earlier faces outside it lose
  their label too (a wrong first photo is caught once the right ones arrive); a larger
  person's new face must link to two of its nearest faces of the person.
- **Attachment**: a face without a person (unnamed, or whose claim failed) is attached to
  the person of its nearest named face when that face is closer than
  ``attach_distance`` (0.5, stricter than 0.6), no other person's is, and the face
  passes that person's check as a claim would.
- ``python -m sozy.store relabel`` applies the same rule in bulk, over each whole
  person, which also catches what a neighbourhood cannot see (a co-star who fills a
  large share of someone's photos), and migrates stores written before identities.

Every function takes its inputs (a store, vectors, labels) explicitly, so a crawl spread
over machines decides as one does.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sozy.config import IdentitySettings
from sozy.records import VECTOR_SIZE, FaceHit, FaceRecord, Label

from .base import NAME_FIELD, PERSON_FIELD, FaceStore, identity_payload

log = logging.getLogger(__name__)

_QID = re.compile(r"Q[1-9][0-9]*")
REFERENCE_FIELD = "reference"
# What consensus reads of its neighbours' payloads (a whole payload costs as much as the search).
IDENTITY_FIELDS = (PERSON_FIELD, NAME_FIELD, "label", REFERENCE_FIELD)
# A face that loses its person loses its place as their reference face too.
NOBODY: dict[str, Any] = {PERSON_FIELD: None, NAME_FIELD: None, "label": Label.NONE.value, REFERENCE_FIELD: False}
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
    # The linked group that is the majority holds more than this share of the person's faces.
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


# -- the rule, on plain vectors ----------------------------------------------------------------


def pairwise(vectors: np.ndarray) -> np.ndarray:
    """L2 distances between all rows."""
    v = np.asarray(vectors, np.float64)
    squared = (v**2).sum(1)[:, None] - 2.0 * v @ v.T + (v**2).sum(1)[None, :]
    distances: np.ndarray = np.sqrt(np.maximum(squared, 0.0))
    return distances


def in_majority(vectors: np.ndarray, rule: ConsensusRule, reference: np.ndarray | None = None) -> np.ndarray:
    """Which of one person's faces are the person: the faces joined by same-person links
    (a chain of faces each closer than ``link_distance`` to the next) into a group holding
    more than ``rule.majority`` of them, or, failing that, the largest group of two or more
    when no other group is as large (a person unlucky enough to be sent more photos of
    others than they have of their own, each of someone different).

    ``reference`` marks the person's reference faces (their Wikidata portrait): the group
    holding one is the person unless that majority group is larger, so a person with few
    faces, or no clear majority, is still checked. Without a reference and without a
    majority (fewer than ``rule.min_faces`` faces, or a tie) every claim stands."""
    n = len(vectors)
    refs = np.zeros(n, dtype=bool) if reference is None else np.asarray(reference, dtype=bool)
    if n < (2 if refs.any() else rule.min_faces):
        return np.ones(n, dtype=bool)
    group = _components(pairwise(vectors) < rule.link_distance)
    sizes = np.bincount(group)
    largest, runner_up = [*np.sort(sizes)[::-1].tolist(), 0][:2]
    majority = n >= rule.min_faces and (largest > rule.majority * n or (largest >= 2 and largest > runner_up))
    if refs.any():
        # The portrait's group, unless a majority outnumbers it (a portrait of the person
        # young, in costume, or a group photo whose largest face is someone else).
        portrait = max(set(group[refs].tolist()), key=lambda g: sizes[g])
        if not majority or sizes[portrait] >= largest:
            return np.asarray(group == portrait, dtype=bool)
    if majority:
        # A majority, or at least a group no other matches: the rest are faces of others.
        return np.asarray(group == sizes.argmax(), dtype=bool)
    return np.ones(n, dtype=bool)


def _components(linked: np.ndarray) -> np.ndarray:
    """The connected component of each node of a boolean adjacency matrix, named by its
    smallest node: each node takes the smallest name among its neighbours', then follows
    names to their end (pointer jumping), until nothing changes. Vectorised: one person's
    check is on the path of every face a crawl stores."""
    n = len(linked)
    adjacent = linked | linked.T | np.eye(n, dtype=bool)
    group = np.arange(n)
    while True:
        named = np.where(adjacent, group[None, :], n).min(axis=1)
        while not np.array_equal(jumped := named[named], named):
            named = jumped
        if np.array_equal(named, group):
            return group
        group = named


def supported(distances: Sequence[float], rule: ConsensusRule) -> bool:
    """A face linked to at least two of the person's faces nearest to it (to the one, if the
    person has one): a stranger's face links to none, and one link could be a lookalike
    or a photo misfiled under the person."""
    return sum(1 for d in distances if d < rule.link_distance) >= min(2, len(distances))


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
    # Where each decided record is, by id (an id is a hash: computed once per record).
    index: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    # The decided records' vectors, one row each (compared with every later face of the batch).
    vectors: np.ndarray = field(default_factory=lambda: np.empty((0, VECTOR_SIZE), np.float32))

    def add(self, record: FaceRecord) -> None:
        self.index[record.id] = len(self.records)
        self.ids.append(record.id)
        self.records.append(record)
        self.vectors = np.vstack([self.vectors, np.asarray(record.vector, np.float32)[None, :]])

    def change(self, hit: FaceHit, fields: Mapping[str, Any]) -> None:
        """Change a face: one of this batch's records, or a stored one (an update to write)."""
        if hit.id in self.index:
            i = self.index[hit.id]
            self.records[i] = replace(self.records[i], **fields)
            return
        self.updates[hit.id] = {**self.updates.get(hit.id, {}), **fields}
        self.changed[hit.id] = FaceHit(hit.id, 0.0, {**hit.payload, **fields}, hit.vector)


class Consensus:
    """Checks new faces against the store before they are written (``check``); faces of the
    same batch see each other.

    Each face costs one k-NN search of the whole store, without vectors (its neighbourhood,
    read for the attachment of a face of nobody and for the unnamed faces a confirmed one
    adopts) and, for a claimed face, one search filtered on its person, with vectors, which
    the ``person_id`` keyword index answers from that person's few faces. An attachment whose
    person shows a single link in the neighbourhood asks for the person's own faces too (they
    may have just one); an adoption candidate costs its own neighbourhood."""

    def __init__(self, store: FaceStore, rule: ConsensusRule | None = None) -> None:
        self.store = store
        self.rule = rule or ConsensusRule()

    async def check(self, records: Sequence[FaceRecord]) -> ConsensusResult:
        result = ConsensusResult(records=[])
        for record in records:
            near = await self._nearest(record.vector, result, own=record.id)
            decided = await self._decide(record, near, result)
            result.add(decided)
            if decided.person_id and decided.label == Label.SOURCE.value:
                await self._adopt(decided, near, result)
        return result

    async def _decide(self, record: FaceRecord, near: list[FaceHit], result: ConsensusResult) -> FaceRecord:
        if record.person_id and record.label != Label.NONE.value:
            kept = await self._check_claim(record, result)
            if kept is not None:
                return kept
            result.rejected += 1
            record = replace(record, person_id=None, name=None, label=Label.NONE.value, reference=False)
        target = await self._attachment(record.id, record.vector, near, result)
        if target is None:
            return record
        result.attached += 1
        return replace(record, person_id=target.person_id, name=target.name, label=Label.CONSENSUS.value)

    async def attachment_of(self, face_id: str, vector: np.ndarray) -> FaceHit | None:
        """The person a stored face of nobody clearly is (``_attachment``), or None."""
        result = ConsensusResult(records=[])
        near = await self._nearest(vector, result, own=face_id)
        return await self._attachment(face_id, vector, near, result)

    async def _attachment(
        self, own: str, vector: np.ndarray, near: list[FaceHit], result: ConsensusResult
    ) -> FaceHit | None:
        """The person a face of nobody clearly is, from its neighbourhood ``near``: the nearest
        named faces point to one person (``attachment``), and the face links to two of that
        person's faces (to the one, if they have one): a photo misfiled under someone, not yet
        outvoted, cannot pull the faces that look like it into the wrong person."""
        target = attachment([h for h in near if h.person_id], self.rule)
        if target is None or not target.person_id:
            return None
        theirs = [h.distance for h in near if h.person_id == target.person_id]
        if sum(1 for d in theirs if d < self.rule.link_distance) < 2:
            # One link seen: enough only if it is the person's one face.
            found = await self._nearest(vector, result, own=own, person_id=target.person_id, limit=2)
            theirs = [h.distance for h in found]
        return target if supported(theirs, self.rule) else None

    async def _check_claim(self, record: FaceRecord, result: ConsensusResult) -> FaceRecord | None:
        """The record (with the person's display name) if its claim holds, else None."""
        person = str(record.person_id)
        others = await self._nearest(record.vector, result, own=record.id, person_id=person, with_vectors=True)
        if not self._holds(record, others, result):
            return None
        # Q-ids carry their Wikidata label; a key person shows their most common spelling.
        name = record.name if _QID.fullmatch(person) else display_name([record.name, *[h.name for h in others]])
        return replace(record, name=name or record.name)

    def _holds(self, record: FaceRecord, others: list[FaceHit], result: ConsensusResult) -> bool:
        """Whether a claimed face belongs with ``others``, its person's nearest faces. While the
        person has fewer faces than a query returns, it is seen whole: the majority is taken
        over all of them (their reference face, if any, counts for it), and earlier faces
        outside it lose their person."""
        others = [h for h in others if h.vector is not None]
        if len(others) >= self.rule.neighbours:
            return supported([h.distance for h in others], self.rule)
        vectors = np.stack([record.vector, *(h.vector for h in others if h.vector is not None)])
        reference = np.array([record.reference, *(bool(h.payload.get(REFERENCE_FIELD)) for h in others)])
        majority = in_majority(vectors, self.rule, reference)
        for hit, ok in zip(others, majority[1:], strict=True):
            if not ok:
                result.change(hit, NOBODY)
                result.rejected += 1
        return bool(majority[0])

    async def _adopt(self, record: FaceRecord, near: list[FaceHit], result: ConsensusResult) -> None:
        """Faces of nobody near a newly confirmed face (a group photo crawled before the
        portraits), from its neighbourhood, are attached now if they clearly are someone:
        one search for each face close enough to be a candidate."""
        for hit in near:
            if hit.distance >= self.rule.attach_distance:
                break
            if hit.person_id:
                continue
            # The neighbourhood comes without vectors: only a candidate's is needed, read on its own.
            vector = hit.vector
            if vector is None:
                stored = await self.store.get(hit.id)
                if stored is None:
                    continue
                vector = stored.vector
            theirs = await self._nearest(vector, result, own=hit.id)
            target = await self._attachment(hit.id, vector, theirs, result)
            if target is None:
                continue
            adopted = FaceHit(hit.id, hit.distance, hit.payload, vector)
            result.change(
                adopted, {PERSON_FIELD: target.person_id, NAME_FIELD: target.name, "label": Label.CONSENSUS.value}
            )
            result.attached += 1

    async def _nearest(
        self,
        vector: np.ndarray,
        result: ConsensusResult,
        *,
        own: str,
        person_id: str | None = None,
        limit: int | None = None,
        with_vectors: bool = False,
    ) -> list[FaceHit]:
        """The ``limit`` (``rule.neighbours``) nearest faces (of ``person_id``, or of anyone),
        stored or decided earlier in this batch, with what this batch changed applied; never
        the face ``own`` itself. Vectors of stored faces only ``with_vectors``; those of this
        batch's faces always (they are at hand)."""
        k = limit or self.rule.neighbours
        # One more than needed: the face itself may be stored already (a photo crawled again).
        stored = await self.store.neighbours(
            vector, k + 1, person_id=person_id, with_vectors=with_vectors, fields=IDENTITY_FIELDS
        )
        hits = [h for h in stored if h.id not in result.changed and h.id not in result.index and h.id != own]
        # This batch's faces, as decided: one numpy pass, and hits made only of the nearest.
        if result.records:
            distances = np.linalg.norm(result.vectors - vector, axis=1)
            if person_id is not None:
                theirs = np.fromiter((r.person_id == person_id for r in result.records), bool, len(result.records))
                distances[~theirs] = np.inf
            for i in np.argsort(distances)[: k + 1].tolist():
                r = result.records[i]
                if not np.isfinite(distances[i]) or result.ids[i] == own:
                    continue
                payload = {
                    PERSON_FIELD: r.person_id,
                    NAME_FIELD: r.name,
                    "label": r.label,
                    REFERENCE_FIELD: r.reference,
                }
                hits.append(FaceHit(result.ids[i], float(distances[i]), payload, r.vector))
        # The stored faces this batch changed, as they are now.
        for h in result.changed.values():
            if h.vector is not None and h.id != own and (person_id is None or h.person_id == person_id):
                hits.append(FaceHit(h.id, float(np.linalg.norm(h.vector - vector)), h.payload, h.vector))
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
    store: FaceStore, rule: ConsensusRule | None = None, progress: Callable[[str], None] | None = None
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


async def _judge_person(store: FaceStore, person: str, rule: ConsensusRule, report: RelabelReport) -> None:
    faces = await store.faces_where({PERSON_FIELD: [person]}, with_vectors=True)
    if not faces:
        return
    vectors = np.stack([f.vector for f in faces])
    majority = _majority_of(vectors, rule, np.array([bool(f.payload.get(REFERENCE_FIELD)) for f in faces]))
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


def _majority_of(vectors: np.ndarray, rule: ConsensusRule, reference: np.ndarray) -> np.ndarray:
    """``in_majority`` over a whole person; a very large one is judged against a sample of
    its faces, so memory and time stay bounded."""
    if len(vectors) <= MAX_PAIRWISE:
        return in_majority(vectors, rule, reference)
    chosen = np.random.default_rng(len(vectors)).choice(len(vectors), MAX_PAIRWISE, replace=False)
    sample = vectors[chosen]
    core = sample[in_majority(sample, rule, reference[chosen])].astype(np.float64)
    ok = np.empty(len(vectors), dtype=bool)
    for start in range(0, len(vectors), MAX_PAIRWISE):
        chunk = vectors[start : start + MAX_PAIRWISE].astype(np.float64)
        d = np.sqrt(np.maximum((chunk**2).sum(1)[:, None] - 2 * chunk @ core.T + (core**2).sum(1)[None, :], 0))
        ok[start : start + MAX_PAIRWISE] = (d < rule.link_distance).sum(1) >= min(2, len(core))
    return ok


async def _attach_unnamed(
    store: FaceStore, rule: ConsensusRule, report: RelabelReport, progress: Callable[[str], None] | None
) -> None:
    unnamed = await store.faces_where({"label": [Label.NONE.value]}, with_vectors=True)
    if progress:
        progress(f"attaching: {len(unnamed):,} faces of nobody known")
    updates: dict[str, dict[str, Any]] = {}
    consensus = Consensus(store, rule)
    for face in unnamed:
        if face.vector.shape != (VECTOR_SIZE,):
            continue
        # Decided against the store as it was: attachments made here do not attract more.
        target = await consensus.attachment_of(face.id, face.vector)
        if target is not None:
            updates[face.id] = {PERSON_FIELD: target.person_id, NAME_FIELD: target.name, "label": Label.CONSENSUS.value}
    await store.set_payloads(updates)
    report.attached += len(updates)
