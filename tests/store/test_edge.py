"""What only the embedded backend does: its lock file, and building the index in a child process."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest
from qdrant_edge import Memory

from sozy.config import Settings
from sozy.store import StoreError
from sozy.store.edge import EmbeddedStore

from .conftest import exact_nearest, make_record, people_vectors

# A tiny indexing threshold (64 KB = 128 faces) so a few thousand faces get a real HNSW index.
SMALL_INDEX_KB = 64


def _settings(tmp_path) -> Settings:
    return Settings(data_dir=str(tmp_path))


async def _filled(
    tmp_path, n_people: int = 100, faces_each: int = 10, **options
) -> tuple[EmbeddedStore, list, np.ndarray]:
    rng = np.random.default_rng(21)
    vectors, owner = people_vectors(rng, n_people, faces_each)
    records = [make_record(v, i, name=f"p{owner[i]}") for i, v in enumerate(vectors)]
    settings = _settings(tmp_path)
    store = await EmbeddedStore.open(
        settings.store_path, settings.store, indexing_threshold_kb=SMALL_INDEX_KB, optimize_every=0, **options
    )
    await store.upsert(records)
    return store, records, vectors


@pytest.mark.slow
async def test_optimize_builds_an_index_that_still_finds_the_exact_neighbours(tmp_path):
    store, records, vectors = await _filled(tmp_path)
    try:
        assert (await store.stats()).indexed == 0
        assert await store.optimize() is True
        stats = await store.stats()
        assert stats.indexed == stats.faces == len(records)
        # The build's own peak memory: a fresh interpreter with the engine loaded, not this
        # process's (which the kernel would report through ru_maxrss after fork and exec).
        assert 20 * 2**20 < store.last_index_peak_bytes < 1024 * 2**20

        rng = np.random.default_rng(5)
        recall = []
        for _ in range(20):
            query = vectors[rng.integers(len(vectors))] + rng.normal(0, 0.02, 128).astype(np.float32)
            hits = await store.search(query, k=10)
            expected, _distances = exact_nearest(vectors, query, 10)
            recall.append(len({h.id for h in hits} & {records[i].id for i in expected}) / 10)
            # Quantized index, rescored with the original vectors: distances are exact.
            for hit in hits:
                index = next(i for i, r in enumerate(records) if r.id == hit.id)
                assert hit.distance == pytest.approx(float(np.linalg.norm(vectors[index] - query)), abs=1e-4)
        assert np.mean(recall) >= 0.95
        people = await store.search_people(vectors[0], k=5, per_person=2)
        assert len({p.name for p in people}) == 5
    finally:
        await store.close()


@pytest.mark.slow
async def test_the_event_loop_keeps_running_while_the_index_is_built(tmp_path):
    store, _, _ = await _filled(tmp_path)
    ticks = 0
    longest_gap = 0.0

    async def ticker() -> None:
        nonlocal ticks, longest_gap
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            longest_gap = max(longest_gap, now - last)
            last = now
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        started = time.perf_counter()
        await store.optimize()
        took = time.perf_counter() - started
    finally:
        task.cancel()
        await store.close()
    assert store.last_index_peak_bytes > 0  # a child process was started and did the work
    assert ticks >= took / 0.01 / 4
    assert longest_gap < 0.5


@pytest.mark.slow
async def test_close_builds_the_index_and_reopening_finds_it(tmp_path):
    store, records, _ = await _filled(tmp_path, n_people=50)
    await store.close()
    settings = _settings(tmp_path)
    reopened = await EmbeddedStore.open(settings.store_path, settings.store, indexing_threshold_kb=SMALL_INDEX_KB)
    try:
        stats = await reopened.stats()
        assert stats.indexed == stats.faces == len(records)
    finally:
        await reopened.close()


@pytest.mark.slow
async def test_open_builds_the_index_a_killed_process_left_undone(tmp_path):
    store, records, _ = await _filled(tmp_path, n_people=50)
    await store.close(optimize=False)  # as if the crawler had been killed
    settings = _settings(tmp_path)
    reopened = await EmbeddedStore.open(settings.store_path, settings.store, indexing_threshold_kb=SMALL_INDEX_KB)
    try:
        assert (await reopened.stats()).indexed == len(records)
    finally:
        await reopened.close()


@pytest.mark.slow
async def test_upserts_build_the_index_every_n_faces(tmp_path):
    settings = _settings(tmp_path)
    store = await EmbeddedStore.open(
        settings.store_path, settings.store, indexing_threshold_kb=SMALL_INDEX_KB, optimize_every=500
    )
    try:
        vectors, _ = people_vectors(np.random.default_rng(3), 60, 10)
        await store.upsert([make_record(v, i) for i, v in enumerate(vectors[:400])])
        assert (await store.stats()).indexed == 0
        await store.upsert([make_record(v, 400 + i) for i, v in enumerate(vectors[400:])])
        assert (await store.stats()).indexed == 600
    finally:
        await store.close()


async def test_the_lock_file_names_the_holder_and_is_released_on_close(tmp_path):
    settings = _settings(tmp_path)
    store = await EmbeddedStore.open(settings.store_path, settings.store)
    lock = settings.store_path / "faces.lock"
    assert f"pid {os.getpid()}" in lock.read_text()
    await store.close()
    again = await EmbeddedStore.open(settings.store_path, settings.store)
    await again.close()


async def test_opening_a_missing_store_without_create_fails(tmp_path):
    settings = _settings(tmp_path)
    with pytest.raises(StoreError, match="no face store"):
        await EmbeddedStore.open(settings.store_path, settings.store, create=False)
    assert not (settings.store_path / "faces").exists()


async def test_a_closed_store_says_so(tmp_path):
    settings = _settings(tmp_path)
    store = await EmbeddedStore.open(settings.store_path, settings.store)
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.count()
    await store.close()  # closing twice is harmless


async def test_url_and_sha256_indexes_live_on_disk_the_searched_ones_in_ram(tmp_path):
    settings = _settings(tmp_path)
    store = await EmbeddedStore.open(settings.store_path, settings.store)
    try:
        schema = (await store._shard.run(lambda shard: shard.info())).payload_schema
        placement = {field: getattr(info.params, "memory", None) for field, info in schema.items()}
    finally:
        await store.close()
    assert placement == {
        "image_url": Memory.Cold,
        "page_url": Memory.Cold,
        "image_sha256": Memory.Cold,
        "name": None,
        "source": None,
        "model": None,
        "person_id": None,
        "label": None,  # in RAM (default)
    }
