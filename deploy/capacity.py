"""How much RAM and disk Sozy's Qdrant collection needs for a number of faces.

    python deploy/capacity.py                  # the table in docs/deploy.md
    python deploy/capacity.py --measure 25000  # measure again (about a minute)

The figures are per face and per part of the collection Sozy creates
(src/sozy/store/server_setup.py): the 128-d float32 vector, its int8 quantized
copy, the HNSW graph, the point ids, the keyword payload indexes (name,
image_url, page_url, source, image_sha256, model), the payload and the WAL.
They were measured, not guessed: ``--measure N`` writes N realistic faces
(a ``FaceRecord.payload()`` of a Commons photo) into an embedded store, which
keeps the same Qdrant segment files through qdrant-edge, builds its index
and divides each part's allocated disk blocks by N. RAM is then what a
Qdrant server holds in memory for Sozy's settings: everything but the payload
(``on_disk_payload``), and, with ``on_disk`` vectors, the originals too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sozy.config import Settings, StoreSettings
from sozy.records import VECTOR_SIZE, Box, FaceRecord

GB = 1024**3
# A photo holds 1.3 faces on average in Sozy's test set of real photos; the
# per-photo strings (image URL, page URL, sha256) are shared by its faces.
FACES_PER_PHOTO = 1.3
# Faces per person with crawl.images_per_person = 20 and ~1 usable face a photo.
FACES_PER_PERSON = 15


def example_record(index: int = 0, rng: np.random.Generator | None = None) -> FaceRecord:
    """A face as the crawler stores it from Wikimedia Commons (realistic lengths)."""
    rng = rng or np.random.default_rng(index)
    vector = rng.normal(0.0, 0.09, VECTOR_SIZE).astype(np.float32)
    title = f"President_Barack_Obama_{index:08d}.jpg"
    return FaceRecord(
        vector=vector,
        image_url=f"https://upload.wikimedia.org/wikipedia/commons/thumb/8/8d/{title}/1024px-{title}",
        page_url=f"https://commons.wikimedia.org/wiki/File:{title}",
        name=f"Barack Obama {index // FACES_PER_PERSON:07d}",
        box=Box(312, 188, 498, 374),
        image_width=1024,
        image_height=1280,
        image_sha256=f"{index:064x}",
        faces_in_image=1,
        source="wikidata",
        license="Public domain",
        attribution="Official White House Photo by Pete Souza",
        thumbnail=None,
        model="dlib_resnet_v1+5pt/hog-up1",
        crawled_at="2026-11-25T01:36:00Z",
    )


def payload_json_bytes(record: FaceRecord) -> int:
    return len(json.dumps(record.payload(), ensure_ascii=False, separators=(",", ":")).encode())


# Where each file of a Qdrant segment belongs (paths as qdrant-edge writes them).
CATEGORIES = (
    ("vector_storage/quantized", "quantized"),
    ("vector_storage/", "vector"),
    ("vector_index/", "hnsw"),
    ("id_tracker", "ids"),
    ("payload_index/", "payload_index"),
    ("payload_storage/", "payload"),
    ("wal/", "wal"),
)

# Bytes per face measured with `python deploy/capacity.py --measure 25000`
# (embedded store, qdrant-edge 0.9, HNSW m=16, int8 quantization, 2026-11-25):
# allocated blocks of each part divided by the number of faces.
MEASURED = {
    "vector": 512,
    "quantized": 132,
    "hnsw": 38,
    "ids": 29,
    "payload_index": 804,
    "payload": 528,
    "wal": 1279,
}


def category(relative_path: str) -> str:
    for marker, name in CATEGORIES:
        if marker in relative_path:
            return name
    return "other"


@dataclass(frozen=True)
class PerFace:
    """Bytes one face costs in each part of a Qdrant collection."""

    vector: float  # float32 original, 128 x 4 B
    quantized: float  # int8 copy + its correction term
    hnsw: float  # graph links (compressed)
    ids: float  # UUID <-> internal id map, version
    payload_index: float  # keyword indexes: name, image_url, page_url, source, image_sha256, model
    payload: float  # the JSON payload (on disk: on_disk_payload)
    wal: float = 0.0  # write-ahead log: transient, trimmed as segments flush

    @classmethod
    def from_parts(cls, parts: dict[str, float]) -> PerFace:
        return cls(**{k: parts.get(k, 0.0) for k in cls.__dataclass_fields__})

    @property
    def ram_in_memory(self) -> float:
        """Sozy's default collection: vectors, int8 copy, graph, ids and keyword indexes in RAM."""
        return self.vector + self.quantized + self.hnsw + self.ids + self.payload_index

    @property
    def ram_on_disk_vectors(self) -> float:
        """Original vectors memory-mapped (``on_disk: true``); searches use the int8 copy, rescoring reads the disk."""
        return self.quantized + self.hnsw + self.ids + self.payload_index

    @property
    def disk(self) -> float:
        """What stays on disk once the WAL is trimmed."""
        return self.vector + self.quantized + self.hnsw + self.ids + self.payload_index + self.payload


def table(cost: PerFace, sizes: Sequence[int] = (1_000_000, 10_000_000, 100_000_000)) -> str:
    lines = [
        f"per face: vector {cost.vector:.0f} B, int8 copy {cost.quantized:.0f} B, HNSW links {cost.hnsw:.0f} B, "
        f"ids {cost.ids:.0f} B, keyword indexes {cost.payload_index:.0f} B, payload {cost.payload:.0f} B, "
        f"WAL {cost.wal:.0f} B (transient)",
        f"per face: RAM {cost.ram_in_memory:.0f} B (vectors in RAM) / {cost.ram_on_disk_vectors:.0f} B "
        f"(vectors on disk); disk {cost.disk:.0f} B",
        f"faces per GB: RAM {GB / cost.ram_in_memory / 1e6:.2f}M (vectors in RAM), "
        f"{GB / cost.ram_on_disk_vectors / 1e6:.2f}M (vectors on disk); disk {GB / cost.disk / 1e6:.2f}M",
        "",
        "| faces | RAM, vectors in RAM | RAM, vectors on disk (mmap) | disk, one copy | disk, replication_factor 2 |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sizes:
        lines.append(
            f"| {n / 1e6:g}M | {n * cost.ram_in_memory / GB:.1f} GB | {n * cost.ram_on_disk_vectors / GB:.1f} GB "
            f"| {n * cost.disk / GB:.0f} GB | {2 * n * cost.disk / GB:.0f} GB |"
        )
    return "\n".join(lines)


def allocated_by_category(root: Path) -> dict[str, int]:
    """Allocated bytes (blocks, not apparent sizes: segment files are sparse) per category."""
    totals: dict[str, int] = {}
    for path in root.rglob("*"):
        if path.is_file():
            name = category(path.relative_to(root).as_posix())
            totals[name] = totals.get(name, 0) + path.stat().st_blocks * 512
    return totals


async def measure_embedded(faces: int, batch: int = 1000, indexing_threshold_kb: int = 1_000) -> PerFace:
    """Per-face bytes of an embedded store holding ``faces`` example faces, index built.

    The low indexing threshold (2,000 vectors) makes a small test store index
    its segments as a large one does; the default would leave <20,000 faces unindexed.
    """
    from sozy.store import open_store

    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="sozy-capacity-") as tmp:
        settings = Settings(data_dir=tmp, store=StoreSettings(path="store"))
        store = await open_store(settings, indexing_threshold_kb=indexing_threshold_kb)
        try:
            for start in range(0, faces, batch):
                await store.upsert([example_record(i, rng) for i in range(start, min(faces, start + batch))])
            stored = await store.count()
        finally:
            await store.close()  # builds the HNSW index and flushes
        totals = allocated_by_category(settings.store_path)
    return PerFace.from_parts({k: v / stored for k, v in totals.items()})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--measure",
        type=int,
        default=0,
        metavar="N",
        help="measure an embedded store of N faces (25000: about a minute)",
    )
    args = parser.parse_args(argv)
    print(
        f"payload: {payload_json_bytes(example_record())} B of JSON for one face "
        "(FaceRecord.payload(), Commons photo, no thumbnail)"
    )
    cost = PerFace.from_parts(MEASURED)
    if args.measure > 0:
        cost = asyncio.run(measure_embedded(args.measure))
        print(f"measured: embedded store of {args.measure} faces")
    else:
        print("from MEASURED (an embedded store of 25000 faces); --measure N to measure again")
    print(table(cost))
    print(f"faces per GB of RAM (vectors in RAM): {GB / cost.ram_in_memory / 1e6:.2f}M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
