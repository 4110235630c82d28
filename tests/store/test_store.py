"""The FaceStore contract, one suite run on both backends (embedded qdrant-edge, Qdrant server API)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from sozy.config import ApiSettings
from sozy.records import FaceRecord, sha256_hex
from sozy.store import StoreInUse, StoreMismatch

from .conftest import Backend, exact_nearest, exact_people, make_record, people_vectors

# dlib's own same-person threshold on the L2 distance between descriptors, the API's default.
SAME_PERSON_DISTANCE = ApiSettings().same_person_threshold


def _records(seed: int = 0, people: int = 30, faces_each: int = 6) -> list[FaceRecord]:
    rng = np.random.default_rng(seed)
    vectors, owner = people_vectors(rng, people, faces_each)
    return [make_record(v, i, name=f"person {owner[i]:02d}") for i, v in enumerate(vectors)]


async def test_reupserting_the_same_faces_changes_nothing(store):
    records = _records()
    await store.upsert(records)
    assert await store.count() == len(records)
    # A re-crawl: same photos and boxes (so same ids), newer crawl time.
    again = [dataclasses.replace(r, crawled_at="2025-06-01T00:00:00Z") for r in records]
    await store.upsert(again)
    assert await store.count() == len(records)
    stored = await store.get(records[0].id)
    assert stored is not None and stored.crawled_at == "2025-06-01T00:00:00Z"


async def test_search_matches_exact_numpy_order_and_distances(store):
    records = _records(seed=1)
    await store.upsert(records)
    vectors = np.stack([r.vector for r in records])
    rng = np.random.default_rng(7)
    for _ in range(5):
        query = vectors[rng.integers(len(vectors))] + rng.normal(0, 0.03, 128).astype(np.float32)
        hits = await store.search(query, k=10)
        expected, distances = exact_nearest(vectors, query, 10)
        assert [h.id for h in hits] == [records[i].id for i in expected]
        np.testing.assert_allclose([h.distance for h in hits], distances, rtol=1e-5, atol=1e-5)
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)
        assert hits[0].payload["image_url"] == records[expected[0]].image_url


async def test_search_people_gives_distinct_people_with_their_nearest_faces(store):
    rng = np.random.default_rng(2)
    records = _records(seed=2, people=20, faces_each=4)
    query = rng.normal(0, 0.06, 128).astype(np.float32)
    # One person owns 80 faces right around the query: a naive top-k would be all theirs.
    crowd = [make_record(query + rng.normal(0, 0.01, 128), 1000 + i, name="crowd") for i in range(80)]
    # Nameless faces (several people in one photo) near the query: each is a person of its own.
    nameless = [make_record(query + rng.normal(0, 0.02, 128), 2000 + i) for i in range(3)]
    everything = records + crowd + nameless
    await store.upsert(everything)

    # By default only named people, each once: the nameless faces are not offered.
    people = await store.search_people(query, k=6, per_person=3)
    expected = exact_people(everything, query, k=6, per_person=3)
    assert [(p.name, [f.id for f in p.faces]) for p in people] == expected
    assert all(p.person_id is not None and p.name is not None for p in people)
    assert len({p.person_id for p in people}) == 6
    assert people[0].name == "crowd" and len(people[0].faces) == 3
    assert [p.distance for p in people] == sorted(p.distance for p in people)

    # Asked for, each nameless face is a person of its own, marked by person_id None.
    people = await store.search_people(query, k=6, per_person=3, unnamed=True)
    expected = exact_people(everything, query, k=6, per_person=3, unnamed=True)
    assert [(p.name, [f.id for f in p.faces]) for p in people] == expected
    assert sum(p.person_id is None for p in people) == 3
    assert all(len(p.faces) == 1 and p.name is None for p in people if p.person_id is None)
    assert [p.distance for p in people] == sorted(p.distance for p in people)


async def test_spellings_of_one_person_are_one_person(store):
    rng = np.random.default_rng(21)
    vectors, _ = people_vectors(rng, 2, 3)
    spellings = ["ROSE_LESLIE", "rose-leslie", "Rose Leslie"]
    records = [make_record(v, i, name=spellings[i] if i < 3 else "Kit Harington") for i, v in enumerate(vectors)]
    await store.upsert(records)
    people = await store.search_people(vectors[0], k=5, per_person=3)
    assert [p.person_id for p in people] == ["rose leslie", "kit harington"]
    assert len(people[0].faces) == 3
    assert (await store.stats()).people == 2


async def test_search_people_fills_per_person_beyond_the_first_round(store):
    # The query's nearest person has faces far apart: their third-nearest face lies behind many
    # other people's faces, so it is not among the first faces the search sees.
    rng = np.random.default_rng(3)
    records = _records(seed=3, people=60, faces_each=2)
    query = rng.normal(0, 0.06, 128).astype(np.float32)
    far = [make_record(query + rng.normal(0, s, 128), 3000 + i, name="spread") for i, s in enumerate((0.005, 0.3, 0.3))]
    everything = records + far
    await store.upsert(everything)
    people = await store.search_people(query, k=2, per_person=3)
    assert [(p.name, [f.id for f in p.faces]) for p in people] == exact_people(everything, query, 2, 3)
    assert len(people[0].faces) == 3


async def test_search_people_when_there_are_fewer_people_than_asked(store):
    records = _records(seed=4, people=3, faces_each=5)
    await store.upsert(records)
    people = await store.search_people(records[0].vector, k=10, per_person=2)
    assert sorted(p.name for p in people) == ["person 00", "person 01", "person 02"]
    assert all(len(p.faces) == 2 for p in people)


async def test_empty_store_searches_return_nothing(store):
    query = np.zeros(128, dtype=np.float32)
    assert await store.search(query, k=5) == []
    assert await store.search_people(query, k=5) == []
    assert await store.count() == 0


async def test_get_returns_the_stored_record(store):
    records = _records(seed=5, people=4, faces_each=2)
    await store.upsert(records)
    original = records[3]
    stored = await store.get(original.id)
    assert stored is not None
    assert stored.payload() == original.payload()
    np.testing.assert_array_equal(stored.vector, original.vector)
    assert stored.id == original.id
    assert await store.get("6f1d9a3e-0000-4000-8000-000000000000") is None
    assert await store.get("not a uuid") is None


@pytest.mark.parametrize("field", ["image_url", "page_url", "name", "source"])
async def test_delete_by_each_takedown_field(store, field):
    rng = np.random.default_rng(6)
    vectors, owner = people_vectors(rng, 4, 6)
    records = [
        make_record(
            v,
            i,
            name=f"person {owner[i]}",
            image_url=f"https://photos.example/{i % 5}.jpg",  # several faces per photo
            page_url=f"https://pages.example/{i % 3}",
            source=("pages", "urls")[i % 2],
        )
        for i, v in enumerate(vectors)
    ]
    await store.upsert(records)
    value = getattr(records[0], field)
    doomed = {r.id for r in records if getattr(r, field) == value}
    assert 1 < len(doomed) < len(records)

    deleted = await store.delete(**{field: value})

    assert sorted(deleted) == sorted(doomed)
    assert await store.count() == len(records) - len(doomed)
    for r in records:
        assert (await store.get(r.id) is None) == (r.id in doomed)
    assert await store.delete(**{field: value}) == []


async def test_delete_with_several_fields_needs_all_to_match(store):
    records = [
        make_record(
            np.full(128, 0.01 * i, np.float32), i, name=("ann", "bob")[i % 2], source=("pages", "urls")[i // 2 % 2]
        )
        for i in range(8)
    ]
    await store.upsert(records)
    doomed = [r for r in records if r.name == "ann" and r.source == "pages"]
    assert sorted(await store.delete(name="ann", source="pages")) == sorted(r.id for r in doomed)
    assert len(doomed) == 2
    assert await store.count() == 6


async def test_delete_refuses_an_empty_selector(store):
    await store.upsert(_records(seed=8, people=2, faces_each=2))
    with pytest.raises(ValueError, match="at least one"):
        await store.delete()
    with pytest.raises(ValueError):
        await store.delete(name="")
    assert await store.count() == 4


async def test_bad_vectors_are_refused_with_a_clear_error(store):
    good = _records(seed=9, people=2, faces_each=2)
    bad = make_record(np.ones(64, np.float32), 99)
    with pytest.raises(ValueError, match=r"photos.example/99.jpg.*128"):
        await store.upsert([*good, bad])
    assert await store.count() == 0  # checked before anything is written
    nan = np.full(128, np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN"):
        await store.search(nan)
    with pytest.raises(ValueError, match="k must be"):
        await store.search(np.zeros(128, np.float32), k=0)
    with pytest.raises(ValueError, match="per_person"):
        await store.search_people(np.zeros(128, np.float32), k=3, per_person=0)


async def test_stats_counts_faces_people_and_models(store):
    records = _records(seed=10, people=5, faces_each=3)
    records += [make_record(np.full(128, 0.5, np.float32), 500, model="other-model")]  # nameless
    await store.upsert(records)
    stats = await store.stats()
    assert stats.faces == 16
    assert stats.people == 5
    assert stats.models == sorted({"dlib_resnet_v1+5pt/hog-up0..1", "other-model"})
    assert stats.backend == store.backend
    assert stats.collection == "faces"
    # Counts are true right after a takedown (the engine's facet keeps emptied values at count 0).
    await store.delete(name="person 00")
    assert (await store.stats()).people == 4
    await store.delete(image_url=records[-1].image_url)
    assert (await store.stats()).models == ["dlib_resnet_v1+5pt/hog-up0..1"]


async def test_faces_persist_across_close_and_reopen(backend: Backend):
    records = _records(seed=11, people=4, faces_each=3)
    first = await backend.open(persistent=True)
    await first.upsert(records)
    await first.delete(name="person 00")
    await first.close()

    second = await backend.open(persistent=True)
    try:
        assert await second.count() == 9
        stored = await second.get(records[5].id)
        assert stored is not None and stored.payload() == records[5].payload()
        hits = await second.search(records[5].vector, k=1)
        assert hits[0].id == records[5].id and hits[0].distance == pytest.approx(0.0, abs=1e-5)
    finally:
        await second.close()


async def test_a_second_process_gets_a_clear_in_use_error(backend: Backend):
    opened = await backend.open(persistent=True)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "sozy.store", *backend.cli_args(), "stats"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        await opened.close()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "in use" in lines[0]
    assert "store.url" in lines[0] or "Qdrant server" in lines[0]


async def test_a_second_open_in_the_same_process_is_refused_too(backend: Backend):
    opened = await backend.open(persistent=True)
    try:
        with pytest.raises(StoreInUse, match="in use"):
            await backend.open(persistent=True)
    finally:
        await opened.close()
    reopened = await backend.open(persistent=True)  # the lock went with the close
    await reopened.close()


async def test_a_collection_of_other_vectors_is_refused(backend: Backend, foreign_collection):
    await foreign_collection(backend, size=64, distance="Euclid")
    with pytest.raises(StoreMismatch, match=r"64-d.*128-d Euclid"):
        await backend.open(persistent=True)


async def test_a_collection_with_another_distance_is_refused(backend: Backend, foreign_collection):
    await foreign_collection(backend, size=128, distance="Cosine")
    with pytest.raises(StoreMismatch, match=r"Cosine"):
        await backend.open(persistent=True)


async def test_nearest_person_to_an_unseen_obama_photo_is_obama(store, shared_embeddings, face_photos, faces_dir):
    held_out = "obama/obama.jpg"
    records = []
    for photo in face_photos:
        rel = str(photo.path.relative_to(faces_dir))
        if rel == held_out:
            continue
        found = shared_embeddings[rel]
        for _n, face in enumerate(found.faces):
            records.append(
                FaceRecord(
                    vector=face.vector,
                    image_url=photo.path.as_uri(),
                    box=face.box,
                    image_width=found.width,
                    image_height=found.height,
                    image_sha256=sha256_hex(rel.encode()),
                    faces_in_image=len(found.faces),
                    source="folder",
                    model=found.model,
                    # The crawler's rule, simplified: a one-face photo names its person.
                    name=photo.person if len(found.faces) == 1 else None,
                )
            )
    await store.upsert(records)
    query = shared_embeddings[held_out].faces[0].vector

    people = await store.search_people(query, k=3, per_person=2)

    named = [p for p in people if p.name is not None]
    assert named[0].name == "obama"
    assert named[0].distance < SAME_PERSON_DISTANCE
    assert all(p.name != "obama" for p in named[1:])
    assert all(p.distance >= SAME_PERSON_DISTANCE for p in named[1:])
    faces = await store.search(query, k=1)
    assert faces[0].distance == pytest.approx(people[0].distance)


async def test_stats_count_faces_named_before_identities(store):
    """A face written by an older Sozy (a name, no person_id) is counted, so the API and
    `sozy.store stats` can say that `relabel` is needed."""
    await store.upsert([make_record(np.full(128, 0.1, np.float32), 1, name="Ann")])
    assert (await store.stats()).without_identity == 0
    await store.set_payloads({make_record(np.zeros(128), 1, name="Ann").id: {"person_id": None, "label": None}})
    assert (await store.stats()).without_identity == 1
