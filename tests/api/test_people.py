"""People, not strings, as the API answers them: a noisy gallery of the real photos (real dlib
descriptors) labelled by consensus, on both store backends.

The gallery is what noisy sources give: a photo of Biden in Obama's list and one of Rose
Leslie in Kit Harington's (each listed first, before the person's own photos), Obama under
three spellings, and group photos nobody named.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sozy.config import Settings
from sozy.records import FaceRecord, Label, PhotoFaces, person_key, sha256_hex
from sozy.store import FaceStore, open_store
from sozy.store.consensus import Consensus, relabel

from .index import HELD_OUT

# (photo, the name its source gave it); None: a group photo nobody named.
GALLERY: list[tuple[str, str | None]] = [
    ("biden/biden2.jpg", "Barack Obama"),  # wrong: Biden, in Obama's list, first
    ("obama/obama.jpg", "Barack Obama"),
    ("obama/obama2.jpg", "BARACK_OBAMA"),
    ("obama/obama3.jpg", "barack-obama"),
    ("obama/obama-480p.jpg", "Barack Obama"),
    ("biden/biden.jpg", "Joe Biden"),
    ("rose_leslie/rose-leslie1.jpg", "Kit Harington"),  # wrong: Rose Leslie, in Kit's list, first
    ("kit_harington/kit-harington1.jpg", "Kit Harington"),
    ("kit_harington/kit-harington2.jpg", "Kit Harington"),
    ("kit_harington/kit-harington3.jpg", "Kit Harington"),
    ("rose_leslie/rose-leslie2.jpg", "Rose Leslie"),
    ("alex_lacamoire/alex-lacamoire1.jpg", "Alex Lacamoire"),
    ("group/biden-and-obama.jpg", None),
    ("group/kit-harington-and-rose-leslie.jpg", None),
    ("group/obama-biden-and-one-more.jpg", None),
]
BATCH = 4  # faces per consensus check, as a crawl's store stage batches them


def gallery_records(embeddings: Mapping[str, PhotoFaces], faces_dir: Path) -> list[FaceRecord]:
    records = []
    for rel, name in GALLERY:
        photo = embeddings[rel]
        for face in photo.faces:
            records.append(
                FaceRecord(
                    vector=face.vector,
                    image_url=f"https://photos.example.org/{rel}",
                    box=face.box,
                    image_width=photo.width,
                    image_height=photo.height,
                    image_sha256=sha256_hex((faces_dir / rel).read_bytes()),
                    faces_in_image=len(photo.faces),
                    source="urls",
                    model=photo.model,
                    name=name,
                    person_id=person_key(name) if name else None,
                    label=(Label.SOURCE if name else Label.NONE).value,
                )
            )
    return records


@pytest.fixture(params=["embedded", "server"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    settings = Settings(data_dir=str(tmp_path / "people"))
    return settings.replace(**{"store.url": "local::memory:"}) if request.param == "server" else settings


@pytest_asyncio.fixture(loop_scope="session")
async def crawled(backend_settings, shared_embeddings, faces_dir) -> AsyncIterator[FaceStore]:
    """The gallery stored as a crawl stores it: batch by batch, each checked by consensus first."""
    store = await open_store(backend_settings)
    consensus = Consensus(store)
    records = gallery_records(shared_embeddings, faces_dir)
    for start in range(0, len(records), BATCH):
        result = await consensus.check(records[start : start + BATCH])
        await store.upsert(result.records)
        await store.set_payloads(result.updates)
    yield store
    await store.close()


async def _search(client: Any, faces_dir: Path, rel: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.post(
        "/v1/search", params=params, files={"image": ("p.jpg", (faces_dir / rel).read_bytes(), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    return response.json()["faces"]


async def _faces_of(store: FaceStore, rel: str) -> list[dict[str, Any]]:
    points, offset, found = [], None, []
    while True:
        points, offset = await store.scroll_points(offset, 256)
        found += [p.payload for p in points if p.payload["image_url"].endswith(rel)]
        if offset is None:
            return found


async def test_consensus_while_crawling_gives_people_the_api_shows(api_client, crawled, faces_dir):
    store = crawled
    # The misfiled photos lost the wrong name, and match their own person instead.
    (biden2,) = await _faces_of(store, "biden/biden2.jpg")
    assert (biden2["person_id"], biden2["label"]) == ("joe biden", "consensus") and biden2["name"] == "Joe Biden"
    (rose1,) = await _faces_of(store, "rose_leslie/rose-leslie1.jpg")
    assert rose1["person_id"] != "kit harington" and rose1["label"] != "source"
    # Three spellings, one person, shown under the most common spelling.
    obama = [
        f for rel in ("obama/obama.jpg", "obama/obama2.jpg", "obama/obama3.jpg") for f in await _faces_of(store, rel)
    ]
    assert {f["person_id"] for f in obama} == {"barack obama"}
    # Group photos: each face attached to who it clearly is; the stranger stays nobody.
    group = await _faces_of(store, "group/obama-biden-and-one-more.jpg")
    assert sorted(str(f["person_id"]) for f in group) == ["None", "barack obama", "joe biden"]
    assert {f["label"] for f in group if f["person_id"]} == {"consensus"}

    async with api_client(store_=store) as client:
        (held_out,) = await _search(client, faces_dir, HELD_OUT, k=10)
        (biden,) = await _search(client, faces_dir, "biden/biden2.jpg", k=10)
        stats = (await client.get("/v1/stats")).json()
    matches = held_out["matches"]
    assert matches[0]["person_id"] == "barack obama" and matches[0]["name"] == "Barack Obama"
    assert matches[0]["same_person"] is True
    assert len({m["person_id"] for m in matches}) == len(matches)  # each person once
    assert all(m["person_id"] and not m["unnamed"] for m in matches)  # only named people
    # Biden's photo is Biden, and nobody tells him he is Obama.
    assert biden["matches"][0]["person_id"] == "joe biden"
    assert not any(m["same_person"] for m in biden["matches"] if m["person_id"] == "barack obama")
    assert stats["people"] == 5  # Obama, Biden, Kit Harington, Rose Leslie, Alex Lacamoire


async def test_relabel_migrates_an_old_store_and_fixes_its_labels(
    api_client, backend_settings, shared_embeddings, faces_dir
):
    """A store written before identities (names only, the wrong ones trusted, group photos
    unnamed): ``relabel`` gives it identities, takes the misfiled photos away from the wrong
    people and attaches the group photos' faces."""
    store = await open_store(backend_settings)
    try:
        old = [_old_payload(r) for r in gallery_records(shared_embeddings, faces_dir)]
        await _write_raw(store, old)
        async with api_client(store_=store) as client:
            before = await _search(client, faces_dir, "biden/biden2.jpg", k=3)
        assert before[0]["matches"] == []  # nothing has a person_id yet: nobody to offer

        report = await relabel(store)

        assert report.migrated == len(old) and report.renamed == 2  # BARACK_OBAMA, barack-obama
        assert report.rejected == 2 and report.attached >= 6
        async with api_client(store_=store) as client:
            (biden,) = await _search(client, faces_dir, "biden/biden2.jpg", k=3)
            (held_out,) = await _search(client, faces_dir, HELD_OUT, k=3)
        assert biden["matches"][0]["person_id"] == "joe biden" and biden["matches"][0]["label"] == "consensus"
        assert held_out["matches"][0]["name"] == "Barack Obama"  # the most common spelling
        again = await relabel(store)
        assert (again.migrated, again.rejected, again.attached, again.renamed) == (0, 0, 0, 0)
    finally:
        await store.close()


def _old_payload(record: FaceRecord) -> Any:
    from sozy.store import StoredPoint

    payload = record.payload()
    del payload["person_id"], payload["label"]
    return StoredPoint(record.id, record.vector, payload)


async def _write_raw(store: FaceStore, points: list[Any]) -> None:
    """Write points as a Sozy from before identities did, bypassing today's write path."""
    if store.backend == "embedded":
        import qdrant_edge as qe

        raw = [qe.Point(p.id, p.vector.tolist(), p.payload) for p in points]
        await store._shard.run(lambda shard: shard.update(qe.UpdateOperation.upsert_points(raw)))  # type: ignore[attr-defined]
        return
    from qdrant_client import models as m

    structs = [m.PointStruct(id=p.id, vector=p.vector.tolist(), payload=p.payload) for p in points]
    await store._client.upsert(store.collection, points=structs, wait=True)  # type: ignore[attr-defined]
