"""People from faces: the nearest distinct people, for an engine without server-side group-by
(the embedded one), and a server's groups merged with faces of nobody known."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

from sozy.records import FaceHit, PersonHit

from .base import check_k

# nearest(limit, exclude_people, exclude_ids, only_person) -> nearest faces, ascending distance.
# The caller's search decides whether faces of nobody known take part.
NearestFaces = Callable[[int, Collection[str], Collection[str], "str | None"], Awaitable[list[FaceHit]]]


def _person_of(hit: FaceHit) -> str | tuple[str, str]:
    # A face of nobody known is its own person: key it by its point id.
    return hit.person_id if hit.person_id is not None else ("id", hit.id)


async def group_people(nearest: NearestFaces, k: int, per_person: int, first_limit: int) -> list[PersonHit]:
    """The ``k`` nearest distinct people (by ``person_id``), each with up to ``per_person`` nearest
    faces, from a plain nearest-faces search (for engines without server-side group-by).

    Round one asks for ``first_limit`` faces. Faces come best first, so the people met in that
    list, in order, are the nearest people. When there are fewer than ``k`` of them (one person
    owns many near faces), the next round excludes everyone already found, so it can only
    return new people: no round is wasted on the same crowd, and the loop ends after at most
    ``k`` rounds. People short of ``per_person`` faces get them from a search filtered on their
    ``person_id``.
    """
    check_k(k)
    check_k(per_person, "per_person")
    people: dict[str | tuple[str, str], list[FaceHit]] = {}
    exclude_people: set[str] = set()
    exclude_ids: set[str] = set()
    limit = max(first_limit, k * per_person)
    saw_everything = False
    first_round = True
    while len(people) < k:
        hits = await nearest(limit, exclude_people, exclude_ids, None)
        for hit in hits:
            people.setdefault(_person_of(hit), []).append(hit)
        if len(hits) < limit:
            # The search ran out of faces: every face not excluded was seen.
            saw_everything = first_round
            break
        for key in people:
            if isinstance(key, tuple):
                exclude_ids.add(key[1])
            else:
                exclude_people.add(key)
        first_round = False
        limit = min(limit * 2, max(limit, 1024))
    chosen = sorted(list(people.items())[:k], key=lambda item: item[1][0].distance)
    result = []
    for key, faces in chosen:
        if isinstance(key, str) and len(faces) < per_person and not saw_everything:
            faces = await nearest(per_person, (), (), key)
        result.append(person_hit(faces[:per_person]))
    return result


def person_hit(faces: Sequence[FaceHit]) -> PersonHit:
    """A person from their nearest faces (best first): the nearest face's name shows them."""
    return PersonHit(
        name=faces[0].name if faces[0].person_id else None, faces=list(faces), person_id=faces[0].person_id
    )


def merge_people(named: Sequence[PersonHit], unnamed: Sequence[FaceHit], k: int) -> list[PersonHit]:
    """People (from a server-side group-by, which skips faces without a ``person_id``) merged with
    unnamed faces (each its own person), nearest first, ``k`` in all."""
    people = list(named) + [PersonHit(name=None, faces=[hit], person_id=None) for hit in unnamed]
    people.sort(key=lambda person: person.distance)
    return people[:k]
