"""deploy/capacity.py: the per-face sizes behind docs/deploy.md's capacity table."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy"))
import capacity  # noqa: E402

sys.path.remove(str(REPO / "deploy"))

from sozy.records import Box, FaceRecord  # noqa: E402


def test_example_payload_is_the_size_of_a_real_one(face_photos) -> None:
    photo = next(p for p in face_photos if p.faces == 1)
    data = photo.path.read_bytes()
    example = capacity.example_record()
    real = FaceRecord(
        vector=example.vector,
        image_url=example.image_url,
        page_url=example.page_url,
        name=photo.person,
        box=Box(100, 120, 260, 280),
        image_width=photo.width,
        image_height=photo.height,
        image_sha256=hashlib.sha256(data).hexdigest(),
        faces_in_image=photo.faces,
        source="wikidata",
        license=example.license,
        attribution=example.attribution,
        model=example.model,
    )
    measured = capacity.payload_json_bytes(example)
    assert measured == len(json.dumps(example.payload(), separators=(",", ":")).encode())
    assert set(example.payload()) == set(real.payload())  # every payload field is counted
    assert abs(measured - capacity.payload_json_bytes(real)) / measured < 0.1
    assert 400 < measured < 1000


def test_parts_are_classified_by_segment_path() -> None:
    assert capacity.category("faces/segments/abc/vector_storage/matrix.dat") == "vector"
    assert capacity.category("faces/segments/abc/vector_storage/quantized.data") == "quantized"
    assert capacity.category("faces/segments/abc/vector_index/links_compressed.bin") == "hnsw"
    assert capacity.category("faces/segments/abc/payload_index/x-name-map/values_to_points.bin") == "payload_index"
    assert capacity.category("faces/segments/abc/payload_storage/page_0.dat") == "payload"
    assert capacity.category("faces/segments/abc/id_tracker.mappings") == "ids"
    assert capacity.category("faces/wal/open-1") == "wal"


def test_ram_and_disk_add_up() -> None:
    cost = capacity.PerFace.from_parts(capacity.MEASURED)
    m = capacity.MEASURED
    assert cost.ram_in_memory == m["vector"] + m["quantized"] + m["hnsw"] + m["ids"] + m["payload_index"]
    assert cost.ram_on_disk_vectors == cost.ram_in_memory - m["vector"]
    assert cost.disk == cost.ram_in_memory + m["payload"]
    assert m["vector"] == 128 * 4  # float32 128-d, nothing hidden
    rows = [line for line in capacity.table(cost).splitlines() if re.match(r"^\| \d", line)]
    assert [r.split("|")[1].strip() for r in rows] == ["1M", "10M", "100M"]
    gb_100m = 100_000_000 * cost.ram_in_memory / capacity.GB
    assert f"{gb_100m:.1f} GB" in rows[2]


@pytest.mark.slow
async def test_measuring_a_real_embedded_store_matches_the_recorded_figures() -> None:
    cost = await capacity.measure_embedded(4000)
    assert 500 <= cost.vector <= 560  # 512 B + a little preallocation
    assert 128 <= cost.quantized <= 160
    assert cost.payload > 300 and cost.payload_index > 300 and cost.hnsw > 0
    recorded = capacity.PerFace.from_parts(capacity.MEASURED)
    assert 0.7 < cost.disk / recorded.disk < 1.5
