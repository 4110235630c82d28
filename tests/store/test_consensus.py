"""The consensus rule on plain vectors, and the store calls it makes, on both backends."""

from __future__ import annotations

import numpy as np

from sozy.records import FaceHit, Label
from sozy.store.consensus import Consensus, ConsensusRule, attachment, display_name, in_majority

from .conftest import make_record, people_vectors

RULE = ConsensusRule()


def _hit(i: int, distance: float, person: str | None) -> FaceHit:
    return FaceHit(str(i), distance, {"person_id": person, "name": person})


def test_a_face_outside_the_persons_majority_is_out_and_a_small_person_keeps_every_claim():
    rng = np.random.default_rng(1)
    vectors, owner = people_vectors(rng, 2, 5)
    person = np.concatenate([vectors[owner == 0], vectors[owner == 1][:1]])  # one of person 1 among person 0's
    assert in_majority(person, RULE).tolist() == [True] * 5 + [False]
    # Two faces that disagree: no majority yet, both claims stand.
    assert in_majority(np.stack([vectors[0], vectors[5]]), RULE).tolist() == [True, True]


def test_an_unnamed_face_is_attached_only_when_it_clearly_is_one_person():
    assert attachment([_hit(1, 0.30, "ann"), _hit(2, 0.45, "ann"), _hit(3, 0.70, "bob")], RULE).person_id == "ann"
    assert attachment([_hit(1, 0.30, "ann"), _hit(2, 0.45, "bob")], RULE) is None  # two people that close
    assert attachment([_hit(1, 0.55, "ann")], RULE) is None  # a lookalike at 0.55, not clearly her


def test_the_display_name_is_the_most_common_spelling_and_the_same_in_every_process():
    assert display_name(["ROSE_LESLIE", "Rose Leslie", "rose-leslie", "Rose Leslie"]) == "Rose Leslie"
    assert display_name(["rose leslie", "Rose Leslie"]) == "Rose Leslie"  # a tie: as people write it
    assert display_name(["b b", "a a"]) == display_name(["a a", "b b"]) == "a a"
    assert display_name([None, ""]) is None


async def test_a_batch_is_checked_against_the_store_and_against_itself(store):
    rng = np.random.default_rng(7)
    vectors, owner = people_vectors(rng, 3, 4)
    ann, bob = vectors[owner == 0], vectors[owner == 1]
    # Stored: three faces of Ann, one of Bob filed as Ann first among them.
    stored = [make_record(bob[0], 0, name="Ann")] + [make_record(v, 1 + i, name="Ann") for i, v in enumerate(ann[:3])]
    await store.upsert(stored)
    new = [
        make_record(ann[3], 10, name="ann"),  # another spelling, her face
        make_record(bob[1], 11, name="Bob"),
        make_record(bob[2], 12),  # Bob, unnamed
        make_record(vectors[owner == 2][0], 13),  # nobody known
    ]
    result = await Consensus(store).check(new)
    labels = [(r.person_id, r.name, r.label) for r in result.records]
    assert labels == [
        ("ann", "Ann", Label.SOURCE.value),  # her most common spelling
        ("bob", "Bob", Label.SOURCE.value),
        ("bob", "Bob", Label.CONSENSUS.value),  # attached to Bob, decided in the same batch
        (None, None, Label.NONE.value),
    ]
    # The stored misfiled face left Ann's majority, and then was attached to Bob.
    assert result.updates == {stored[0].id: {"person_id": "bob", "name": "Bob", "label": Label.CONSENSUS.value}}
    await store.upsert(result.records)
    await store.set_payloads(result.updates)
    people = await store.search_people(bob[0], k=2)
    assert [p.person_id for p in people] == ["bob", "ann"] and people[0].faces[0].id == stored[0].id
    # Crawled again (a resumed crawl re-checks photos not marked done): the same decisions,
    # nothing more to change; a face never counts as its own neighbour.
    again = await Consensus(store).check(new)
    assert [(r.person_id, r.name, r.label) for r in again.records] == labels
    assert again.updates == {}
