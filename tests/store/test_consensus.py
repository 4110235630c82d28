"""The consensus rule on plain vectors, and the store calls it makes, on both backends."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sozy.records import FaceHit, Label
from sozy.store.consensus import Consensus, ConsensusRule, attachment, display_name, in_majority, relabel

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


def test_a_portrait_checks_a_person_with_few_faces_unless_a_majority_outnumbers_it():
    rng = np.random.default_rng(2)
    vectors, owner = people_vectors(rng, 3, 4)
    ann, bob = vectors[owner == 0], vectors[owner == 1]
    portrait_first = np.array([True, False])
    # Her portrait and a co-star's photo filed under her: without the portrait both claims stand.
    assert in_majority(np.stack([ann[0], bob[0]]), RULE).tolist() == [True, True]
    assert in_majority(np.stack([ann[0], bob[0]]), RULE, portrait_first).tolist() == [True, False]
    assert in_majority(np.stack([ann[0], ann[1]]), RULE, portrait_first).tolist() == [True, True]
    # Three faces of three people: no majority, the portrait's group is the person.
    three = np.stack([ann[0], bob[0], vectors[owner == 2][0]])
    assert in_majority(three, RULE).tolist() == [True, True, True]
    assert in_majority(three, RULE, np.array([True, False, False])).tolist() == [True, False, False]
    # A portrait that shows someone else (a group photo's larger face) is outvoted by a majority.
    outvoted = np.stack([bob[0], *ann])
    assert in_majority(outvoted, RULE, np.array([True] + [False] * 4)).tolist() == [False] + [True] * 4


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
    assert result.updates == {
        stored[0].id: {"person_id": "bob", "name": "Bob", "label": Label.CONSENSUS.value, "reference": False}
    }
    await store.upsert(result.records)
    await store.set_payloads(result.updates)
    people = await store.search_people(bob[0], k=2)
    assert [p.person_id for p in people] == ["bob", "ann"] and people[0].faces[0].id == stored[0].id
    # Crawled again (a resumed crawl re-checks photos not marked done): the same decisions,
    # nothing more to change; a face never counts as its own neighbour.
    again = await Consensus(store).check(new)
    assert [(r.person_id, r.name, r.label) for r in again.records] == labels
    assert again.updates == {}


async def test_a_wrong_photo_of_a_person_with_a_portrait_loses_its_label_in_either_order(store):
    rng = np.random.default_rng(3)
    vectors, owner = people_vectors(rng, 3, 3)
    ann, bob, cat = vectors[owner == 0], vectors[owner == 1], vectors[owner == 2]
    portrait = replace(make_record(ann[0], 0, person_id="Q1", name="Ann"), reference=True)
    # Stored first: her portrait. Then a photo of Bob filed under her: it is refused her name.
    await store.upsert([portrait])
    result = await Consensus(store).check([make_record(bob[0], 1, person_id="Q1", name="Ann")])
    assert [(r.person_id, r.label, r.reference) for r in result.records] == [(None, Label.NONE.value, False)]
    assert result.rejected == 1 and result.updates == {}
    # The other order: Cat's photo stored under Ann before her portrait comes.
    await store.upsert([make_record(cat[0], 2, person_id="Q2", name="Dee")])
    result = await Consensus(store).check([replace(make_record(ann[1], 3, person_id="Q2", name="Dee"), reference=True)])
    assert [(r.person_id, r.label, r.reference) for r in result.records] == [("Q2", Label.SOURCE.value, True)]
    misfiled = make_record(cat[0], 2).id
    nobody = {"person_id": None, "name": None, "label": Label.NONE.value, "reference": False}
    assert result.updates == {misfiled: nobody}
    await store.upsert(result.records)
    await store.set_payloads(result.updates)
    # A search with Cat's face finds nobody named Dee: her one face left is the portrait, far away.
    people = await store.search_people(cat[1], k=3)
    assert "Q2" not in [p.person_id for p in people if p.distance < 0.6]
    # Without portraits, two faces that disagree both keep their names (nothing to outvote).
    plain = await Consensus(store).check([make_record(bob[1], 4, name="Eve"), make_record(cat[1], 5, name="Eve")])
    assert [r.person_id for r in plain.records] == ["eve", "eve"]


async def test_relabel_takes_a_wrong_photo_from_a_person_with_a_portrait(store):
    rng = np.random.default_rng(4)
    vectors, owner = people_vectors(rng, 2, 2)
    ann, bob = vectors[owner == 0], vectors[owner == 1]
    # Written as a crawl without consensus writes them: every source claim trusted.
    portrait = replace(make_record(ann[0], 0, person_id="Q1", name="Ann"), reference=True)
    wrong = make_record(bob[0], 1, person_id="Q1", name="Ann")
    await store.upsert([portrait, wrong, make_record(ann[1], 2, person_id="Q9", name="Zed")])
    report = await relabel(store)
    assert report.rejected == 1
    assert (await store.get(wrong.id)).person_id is None
    kept = await store.get(portrait.id)
    assert (kept.person_id, kept.label, kept.reference) == ("Q1", Label.SOURCE.value, True)


async def test_a_face_of_nobody_stored_before_the_persons_first_named_face_is_adopted_by_it(store):
    rng = np.random.default_rng(5)
    vectors, owner = people_vectors(rng, 2, 3)
    ann, bob = vectors[owner == 0], vectors[owner == 1]
    # A group photo crawled first: Ann's face and Bob's, nobody named.
    group = [make_record(ann[0], 0), make_record(bob[0], 1)]
    await store.upsert(group)
    result = await Consensus(store).check([make_record(ann[1], 2, name="Ann")])
    assert [(r.person_id, r.label) for r in result.records] == [("ann", Label.SOURCE.value)]
    # Her face in the group photo is hers now; Bob's stays nobody's.
    assert result.updates == {group[0].id: {"person_id": "ann", "name": "Ann", "label": Label.CONSENSUS.value}}
    assert result.attached == 1
