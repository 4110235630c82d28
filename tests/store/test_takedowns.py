"""Takedowns stay down: recorded by delete, enforced on every write, on both backends."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sozy.store import StoreError
from sozy.store.selectors import Takedown
from sozy.store.takedowns import TakedownList, takedowns_for

from .conftest import Backend, make_record


def _face(index: int, **fields):
    rng = np.random.default_rng(index)
    return make_record(rng.normal(0, 0.06, 128).astype(np.float32), index, **fields)


# -- the list itself ---------------------------------------------------------------------------


def test_a_takedown_matches_only_when_every_field_matches() -> None:
    takedowns = TakedownList([Takedown({"name": "ann", "source": "pages"}, "t")])
    assert takedowns.blocks({"name": "ann", "source": "pages", "image_url": "https://x/1.jpg"})
    assert not takedowns.blocks({"name": "ann", "source": "urls"})
    assert not takedowns.blocks({"name": "ann"})  # a missing field is no match
    assert not takedowns.blocks({"name": None, "source": "pages"})


def test_the_same_selector_is_recorded_once_and_removed_exactly() -> None:
    takedowns = TakedownList()
    assert takedowns.add(Takedown({"name": "ann"}, "t1"))
    assert not takedowns.add(Takedown({"name": "ann"}, "t2"))
    assert takedowns.add(Takedown({"name": "bob"}, "t3"))
    assert takedowns.remove({"name": "nobody"}) is None
    assert takedowns.remove({"name": "ann"}) is not None
    assert not takedowns.blocks({"name": "ann"}) and takedowns.blocks({"name": "bob"})
    assert len(takedowns) == 1


def test_an_image_url_takedown_also_records_the_photos_bytes() -> None:
    by_url = takedowns_for({"image_url": "https://x/1.jpg"}, ["ab" * 32, "ab" * 32, ""])
    assert [t.selector for t in by_url] == [{"image_url": "https://x/1.jpg"}, {"image_sha256": "ab" * 32}]
    by_name = takedowns_for({"name": "ann"}, ["ab" * 32])
    assert [t.selector for t in by_name] == [{"name": "ann"}]


def test_a_selector_with_unknown_or_empty_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown takedown fields"):
        Takedown.from_dict({"selector": {"colour": "red"}})
    with pytest.raises(ValueError, match="non-empty"):
        Takedown.from_dict({"selector": {"name": ""}})


# -- both backends -----------------------------------------------------------------------------


async def test_a_taken_down_face_is_refused_when_written_again(store) -> None:
    ann = [_face(i, name="ann") for i in range(3)]
    bob = [_face(10 + i, name="bob") for i in range(2)]
    assert await store.upsert(ann + bob) == []
    assert sorted(await store.delete(name="ann")) == sorted(r.id for r in ann)

    # A re-crawl of the same photos, and a new photo of her.
    new_photo = _face(20, name="ann")
    refused = await store.upsert([*ann, new_photo, *bob])
    assert sorted(refused) == sorted([r.id for r in ann] + [new_photo.id])
    assert await store.count() == len(bob)
    assert await store.taken_down({"person_id": "ann", "source": "urls"})
    assert not await store.taken_down({"person_id": "bob"})
    (takedown,) = await store.takedowns()
    assert takedown.selector == {"person_id": "ann"} and len(takedown.vectors) == 3


async def test_a_person_taken_down_stays_down_by_face_whatever_the_label(store) -> None:
    rng = np.random.default_rng(40)
    centre = rng.normal(0, 0.06, 128).astype(np.float32)
    ann = [make_record(centre + rng.normal(0, 0.015, 128), i, name="Ann Example") for i in range(3)]
    # Ann in a group photo nobody named, and in a photo filed under someone else.
    unnamed = make_record(centre + rng.normal(0, 0.015, 128), 10)
    misfiled = make_record(centre + rng.normal(0, 0.015, 128), 11, name="Bob")
    bob = [make_record(rng.normal(0, 0.06, 128), 20 + i, name="Bob") for i in range(2)]
    await store.upsert([*ann, unnamed, misfiled, *bob])

    deleted = await store.delete(name="ANN_EXAMPLE")  # another spelling of her key
    assert sorted(deleted) == sorted(r.id for r in [*ann, unnamed, misfiled])
    assert sorted(h.id for h in await store.search(centre, k=10)) == sorted(r.id for r in bob)
    assert (await store.stats()).people == 1

    # New photos of her: unnamed, under another name, under hers; and Bob's new photo.
    new_faces = [
        make_record(centre + rng.normal(0, 0.015, 128), 30),
        make_record(centre + rng.normal(0, 0.015, 128), 31, name="Somebody Else"),
        make_record(centre + rng.normal(0, 0.015, 128), 32, name="ann example"),
    ]
    new_bob = make_record(bob[0].vector + rng.normal(0, 0.01, 128), 33, name="Bob")
    assert sorted(await store.upsert([*new_faces, new_bob])) == sorted(r.id for r in new_faces)

    assert await store.lift({"person_id": "ann example"})
    assert await store.upsert(new_faces) == []


async def test_a_wikidata_person_is_taken_down_by_label_or_q_id(store) -> None:
    obama = [_face(i, name="Barack Obama", person_id="Q76") for i in range(2)]
    other = _face(5, name="Barack Obama Sr.", person_id="Q649593")
    await store.upsert([*obama, other])
    assert sorted(await store.delete(name="Barack Obama")) == sorted(r.id for r in obama)
    assert [t.selector for t in await store.takedowns()] == [{"person_id": "Q76"}, {"person_id": "barack obama"}]
    assert await store.upsert([_face(9, name="President Obama", person_id="q76")]) != []
    assert await store.delete(person_id="Q649593") == [other.id]
    assert await store.count() == 0


async def test_a_photo_taken_down_by_url_stays_out_at_another_url(store) -> None:
    photo = _face(1, name="ann", image_url="https://a.example/photo.jpg")
    other = _face(2, name="ann", image_url="https://a.example/other.jpg")
    await store.upsert([photo, other])
    assert await store.delete(image_url=photo.image_url) == [photo.id]
    mirror = dataclasses.replace(photo, image_url="https://mirror.example/copy.jpg")
    assert await store.upsert([mirror]) == [mirror.id]  # same bytes (sha256), other URL
    assert await store.taken_down({"image_sha256": photo.image_sha256})
    assert await store.count() == 1  # the person's other photo was not taken down


async def test_delete_without_block_lets_a_recrawl_store_them_again(store) -> None:
    faces = [_face(i, source="pages") for i in range(3)]
    await store.upsert(faces)
    assert len(await store.delete(source="pages", block=False)) == 3
    assert await store.takedowns() == []
    assert await store.upsert(faces) == []
    assert await store.count() == 3


async def test_a_lifted_takedown_lets_faces_back_in(store) -> None:
    face = _face(1, name="ann")
    await store.upsert([face])
    await store.delete(name="ann")
    assert await store.lift({"person_id": "ann"})
    assert not await store.lift({"person_id": "ann"})  # already lifted
    assert await store.upsert([face]) == []
    assert await store.count() == 1


async def test_add_takedowns_records_without_deleting(store) -> None:
    face = _face(1, name="ann")
    await store.upsert([face])
    takedown = Takedown({"name": "ann"}, "2026-01-01T00:00:00Z")
    assert await store.add_takedowns([takedown]) == 1
    assert await store.add_takedowns([takedown]) == 0
    assert await store.count() == 1  # nothing deleted
    assert await store.upsert([face]) == [face.id]


async def test_takedowns_persist_across_close_and_reopen(backend: Backend) -> None:
    face = _face(1, name="ann", page_url="https://pages.example/ann")
    first = await backend.open(persistent=True)
    await first.upsert([face])
    await first.delete(page_url="https://pages.example/ann")
    await first.close()
    second = await backend.open(persistent=True)
    try:
        assert [t.selector for t in await second.takedowns()] == [{"page_url": "https://pages.example/ann"}]
        assert await second.upsert([face]) == [face.id]
    finally:
        await second.close()


async def test_a_damaged_takedown_file_stops_the_embedded_store(tmp_path) -> None:
    """Opening with an empty list would let taken-down faces back in: refuse, and say which file."""
    backend = Backend("embedded", tmp_path)
    store = await backend.open()
    await store.upsert([_face(1, name="ann")])
    await store.delete(name="ann")
    await store.close()
    path = tmp_path / "store" / "faces.takedowns.json"
    assert path.is_file()
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match=r"faces\.takedowns\.json"):
        await backend.open()
