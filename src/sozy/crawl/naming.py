"""Which face in a photo gets the name the source gave the photo.

A source says "this is a photo of X", not which face is X. The rule: the
name goes to the face when the photo has one face, or to the largest face
when it has at least twice the area of the next one (the portrait subject
with people in the background). Otherwise no face is named: a group photo
of equals says nothing about who is who.
"""

from __future__ import annotations

from collections.abc import Sequence

from sozy.records import Box

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
