"""Store test fixtures: every test of the shared suite runs on both backends.

``embedded`` is the qdrant-edge store in a temporary directory; ``server`` is the Qdrant
server backend on qdrant-client's local mode (in memory, or in a directory where a test
needs persistence or a lock), which speaks the same client API as a real server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from sozy.config import Settings
from sozy.records import Box, FaceRecord, Label, person_key
from sozy.store import FaceStore, open_store

BACKENDS = ("embedded", "server")


@dataclass
class Backend:
    """How to open one backend's store in a test's directory."""

    name: str
    root: Path

    def settings(self, *, persistent: bool = False, collection: str = "faces") -> Settings:
        base = Settings(data_dir=str(self.root)).replace(**{"store.collection": collection})
        if self.name == "embedded":
            return base
        # Local mode persists every point with its own commit (~50 points/s here), so only
        # tests about persistence or locking use a directory.
        url = f"local:{self.root / 'qdrant'}" if persistent else "local::memory:"
        return base.replace(**{"store.url": url})

    async def open(self, *, persistent: bool = False, collection: str = "faces") -> FaceStore:
        return await open_store(self.settings(persistent=persistent, collection=collection))

    def cli_args(self) -> list[str]:
        """``python -m sozy.store`` options naming this backend's persistent store."""
        if self.name == "embedded":
            return ["--data-dir", str(self.root)]
        return ["--data-dir", str(self.root), "--url", f"local:{self.root / 'qdrant'}"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path)


@pytest_asyncio.fixture
async def store(backend: Backend) -> AsyncIterator[FaceStore]:
    opened = await backend.open()
    yield opened
    await opened.close()


def make_record(
    vector: np.ndarray,
    index: int,
    *,
    name: str | None = None,
    person_id: str | None = None,
    image_url: str | None = None,
    page_url: str | None = None,
    source: str = "urls",
    model: str = "dlib_resnet_v1+5pt/hog-up0..1",
) -> FaceRecord:
    """A face record with a readable payload; ``index`` makes its photo (and so its id) unique."""
    return FaceRecord(
        vector=np.asarray(vector, dtype=np.float32),
        image_url=image_url or f"https://photos.example/{index}.jpg",
        page_url=page_url,
        box=Box(10, 20, 110, 120),
        image_width=640,
        image_height=480,
        image_sha256=f"{index:064x}",
        faces_in_image=1,
        source=source,
        model=model,
        name=name,
        person_id=(person_id or person_key(name)) if name else person_id,
        label=(Label.SOURCE if name or person_id else Label.NONE).value,
        license="CC BY-SA 4.0",
        attribution=f"photographer {index}",
        crawled_at="2025-01-02T03:04:05Z",
    )


def people_vectors(rng: np.random.Generator, people: int, faces_each: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectors shaped like dlib's: a centre per person plus noise, so faces of one person lie
    about 0.45 apart and different people about 1.0 (the shared photos: 0.05–0.52 and ≥ 0.66).
    Returns ``(vectors, person index of each)``."""
    centres = rng.normal(0.0, 0.06, size=(people, 128)).astype(np.float32)
    owner = np.repeat(np.arange(people), faces_each)
    noise = rng.normal(0.0, 0.02, size=(people * faces_each, 128)).astype(np.float32)
    return centres[owner] + noise, owner


def exact_nearest(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by L2, numpy: ``(indices, distances)``."""
    distances = np.sqrt(((vectors.astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1))
    order = np.argsort(distances, kind="stable")[:k]
    return order, distances[order]


def exact_people(
    records: Sequence[FaceRecord], query: np.ndarray, k: int, per_person: int, *, unnamed: bool = False
) -> list[tuple[str | None, list[str]]]:
    """Exact grouping by numpy: the k nearest distinct people (by person_id; a face of nobody
    known is its own person with ``unnamed``, else left out) with their per_person nearest face ids."""
    vectors = np.stack([r.vector for r in records])
    order, _ = exact_nearest(vectors, query, len(records))
    people: dict[object, list[str]] = {}
    names: dict[object, str | None] = {}
    for i in order:
        record = records[int(i)]
        if record.person_id is None and not unnamed:
            continue
        key = record.person_id if record.person_id is not None else ("id", record.id)
        people.setdefault(key, []).append(record.id)
        names.setdefault(key, record.name)
    return [(names[key], ids[:per_person]) for key, ids in list(people.items())[:k]]


@pytest.fixture
def foreign_collection():
    """Create, where ``backend`` keeps its persistent store, a collection of other vectors
    (as another application, or an older Sozy, might have left there)."""

    async def create(backend: Backend, *, size: int, distance: str) -> None:
        if backend.name == "embedded":
            import qdrant_edge as qe

            shard_dir = backend.settings().store_path / "faces"
            params = qe.EdgeVectorParams(size=size, distance=getattr(qe.Distance, distance))
            qe.EdgeShard.create(str(shard_dir), qe.EdgeConfig(vectors=params)).close()
            return
        from qdrant_client import AsyncQdrantClient
        from qdrant_client import models as m

        client = AsyncQdrantClient(path=str(backend.root / "qdrant"))
        try:
            await client.create_collection(
                "faces", vectors_config=m.VectorParams(size=size, distance=m.Distance(distance))
            )
        finally:
            await client.close()

    return create
