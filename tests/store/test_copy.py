"""Copying stores: embedded → server → embedded with identical points, and resuming after a failure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from sozy.config import Settings
from sozy.store import FaceStore, StoredPoint, StoreError, open_store
from sozy.store.copy import Checkpoint, CopyProgress, copy_store
from sozy.store.selectors import Takedown

from .conftest import make_record, people_vectors


def _embedded(root: Path) -> Settings:
    return Settings(data_dir=str(root))


def _local_server(root: Path) -> Settings:
    return Settings(data_dir=str(root)).replace(**{"store.url": f"local:{root / 'qdrant'}"})


async def _fill(store: FaceStore, n_people: int, faces_each: int, seed: int = 0) -> None:
    vectors, owner = people_vectors(np.random.default_rng(seed), n_people, faces_each)
    records = [
        make_record(v, i, name=None if i % 7 == 0 else f"person {owner[i]}", page_url=f"https://pages.example/{i % 4}")
        for i, v in enumerate(vectors)
    ]
    await store.upsert(records)


async def _all_points(store: FaceStore) -> dict[str, StoredPoint]:
    points: dict[str, StoredPoint] = {}
    offset = None
    while True:
        page, offset = await store.scroll_points(offset, 17)
        points.update((p.id, p) for p in page)
        if offset is None:
            return points


def _assert_identical(a: dict[str, StoredPoint], b: dict[str, StoredPoint]) -> None:
    assert a.keys() == b.keys()
    for point_id, point in a.items():
        assert b[point_id].payload == point.payload
        np.testing.assert_array_equal(b[point_id].vector, point.vector)


@pytest.mark.slow
async def test_embedded_to_server_and_back_keeps_every_point_identical(tmp_path):
    source = await open_store(_embedded(tmp_path / "a"))
    await _fill(source, n_people=12, faces_each=5)
    server = await open_store(_local_server(tmp_path / "b"))
    back = await open_store(_embedded(tmp_path / "c"))
    try:
        assert await copy_store(source, server, batch=16) == 60
        assert await copy_store(server, back, batch=25) == 60
        original = await _all_points(source)
        assert len(original) == 60
        _assert_identical(original, await _all_points(server))
        _assert_identical(original, await _all_points(back))
        assert (await back.stats()).people == (await source.stats()).people
    finally:
        for store in (source, server, back):
            await store.close()


async def test_the_takedowns_go_along_with_the_faces(tmp_path):
    source = await open_store(_embedded(tmp_path / "a"))
    await _fill(source, n_people=4, faces_each=3)
    await source.delete(name="person 1")
    server = await open_store(Settings().replace(**{"store.url": "local::memory:"}))
    try:
        assert await copy_store(source, server) == await source.count()
        (copied,) = await server.takedowns()
        assert copied.selector == {"person_id": "person 1"} and len(copied.vectors) == 3
        assert await server.taken_down({"person_id": "person 1"})
    finally:
        await source.close()
        await server.close()


class FailingTarget:
    """A real target store that stops accepting writes after ``allowed`` batches, like a
    server going away mid-copy."""

    def __init__(self, store: FaceStore, allowed: int) -> None:
        self.store = store
        self.allowed = allowed

    async def upsert_points(self, points: Sequence[StoredPoint]) -> list[str]:
        if self.allowed == 0:
            raise StoreError("Qdrant at http://gone:6333: writing to collection 'faces' failed: connection reset")
        self.allowed -= 1
        return await self.store.upsert_points(points)

    async def add_takedowns(self, takedowns: Sequence[Takedown]) -> int:
        return await self.store.add_takedowns(takedowns)


async def test_an_interrupted_copy_resumes_from_its_checkpoint(tmp_path):
    source = await open_store(_embedded(tmp_path / "a"))
    await _fill(source, n_people=10, faces_each=10)
    target = await open_store(_embedded(tmp_path / "b"))
    checkpoint = Checkpoint(tmp_path / "copy.json", "a", "b")
    try:
        with pytest.raises(StoreError, match="connection reset"):
            await copy_store(source, FailingTarget(target, allowed=3), batch=20, checkpoint=checkpoint)  # type: ignore[arg-type]
        assert checkpoint.path.is_file()
        offset, copied = checkpoint.load()
        assert copied == 60 and offset is not None
        assert await target.count() == 60

        seen: list[CopyProgress] = []
        total = await copy_store(source, target, batch=20, checkpoint=checkpoint, on_progress=seen.append)

        assert total == 100
        assert seen[0].copied == 80 and seen[-1].copied_now == 40  # it went on, not back to the start
        assert not checkpoint.path.exists()
        _assert_identical(await _all_points(source), await _all_points(target))
    finally:
        await source.close()
        await target.close()


def test_a_checkpoint_of_another_copy_is_refused(tmp_path):
    Checkpoint(tmp_path / "copy.json", "a", "b").save("6f1d9a3e-0000-4000-8000-000000000000", 10)
    with pytest.raises(StoreError, match="belongs to a copy from a to b"):
        Checkpoint(tmp_path / "copy.json", "a", "c").load()


def test_a_damaged_checkpoint_says_how_to_recover(tmp_path):
    (tmp_path / "copy.json").write_text("{not json")
    with pytest.raises(StoreError, match="--restart"):
        Checkpoint(tmp_path / "copy.json", "a", "b").load()
