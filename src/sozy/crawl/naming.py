"""Which face in a photo gets the name the source gave the photo.

A source says "this is a photo of X", not which face is X. The rule: the
name goes to the face when the photo has one face, or to the largest face
when it has at least twice the area of the next one (the portrait subject
with people in the background). Otherwise no face is named: a group photo
of equals says nothing about who is who.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sozy.records import Box, Candidate, Label, person_key

# The largest face must have this many times the area of the next one.
SUBJECT_AREA_RATIO = 2.0


def face_names(name: str | None, boxes: Sequence[Box]) -> list[str | None]:
    """One name (or None) per box, in the order given."""
    names: list[str | None] = [None] * len(boxes)
    if not name or not boxes:
        return names
    if len(boxes) == 1:
        return [name]
    order = sorted(range(len(boxes)), key=lambda i: boxes[i].area, reverse=True)
    largest, second = boxes[order[0]].area, boxes[order[1]].area
    if largest > 0 and largest >= SUBJECT_AREA_RATIO * second:
        names[order[0]] = name
    return names


@dataclass(frozen=True, slots=True)
class FacePerson:
    """Who a face is, as the source claims it: the display name, the identity and why."""

    name: str | None
    person_id: str | None
    label: str
    # The person's reference face (the subject of their Wikidata portrait).
    reference: bool = False


NOBODY = FacePerson(None, None, Label.NONE.value)


def candidate_person(candidate: Candidate) -> FacePerson:
    """The person a source names: its Q-id when it knows one, else the key of the name.

    The display name is the source's spelling (for Wikidata, the item's label); a name
    whose key is empty (only punctuation) names nobody."""
    name = (candidate.name or "").strip() or None
    person_id = candidate.person_id or (person_key(name) if name else None)
    if not person_id:
        return NOBODY
    return FacePerson(name or person_id, person_id, Label.SOURCE.value, reference=candidate.reference)


def face_people(candidate: Candidate, boxes: Sequence[Box]) -> list[FacePerson]:
    """One claim per box: the photo's subject (see ``face_names``) gets the source's person,
    every other face nobody (consensus may attach it later)."""
    person = candidate_person(candidate)
    subject = face_names(person.person_id, boxes)
    return [person if who is not None else NOBODY for who in subject]
