"""Thumbnails: the crawler's crops are served at /thumbnails/<id>.jpg, linked from results, and taken down."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

import pytest
import pytest_asyncio

from sozy.config import EngineSettings, Settings
from sozy.crawl.thumbnails import write_thumbnails
from sozy.records import FaceRecord
from sozy.store import open_store
from sozy.store.__main__ import main as store_main
from sozy.thumbnails import THUMBNAIL_DIR, thumbnail_file, thumbnail_id

from .conftest import ADMIN_KEY
from .index import HELD_OUT

WITH_THUMBNAILS = ("obama", "biden")


async def crawl_thumbnails(data_dir: Path, faces_dir: Path, records: list[FaceRecord]) -> list[FaceRecord]:
    """Obama's and Biden's records with crops written by the crawler's own writer; the rest without."""
    out = []
    for record in records:
        if record.name in WITH_THUMBNAILS:
            rel = record.image_url.split("/photos/", 1)[1]
            (path,) = await write_thumbnails(
                data_dir, (faces_dir / rel).read_bytes(), [(record.id, record.box)], 160, EngineSettings().max_pixels
            )
            record = dataclasses.replace(record, thumbnail=path)
        out.append(record)
    return out


@pytest_asyncio.fixture(loop_scope="session")
async def thumbed(tmp_path, faces_dir, index_records):
    """A store of its own whose Obama and Biden faces have crawl thumbnails in the API's data dir."""
    records = await crawl_thumbnails(tmp_path / "data", faces_dir, index_records)
    opened = await open_store(Settings(data_dir=str(tmp_path / "thumb-store")))
    await opened.upsert(records)
    yield opened, records
    await opened.close()


def _search_file(faces_dir: Path) -> dict:
    return {"image": ("a.jpg", (faces_dir / HELD_OUT).read_bytes(), "image/jpeg")}


async def test_crawl_thumbnails_are_served_and_linked_from_results(api_client, thumbed, faces_dir, tmp_path):
    store, _records = thumbed
    async with api_client(store_=store) as client:
        search = await client.post("/v1/search", files=_search_file(faces_dir), params={"k": 10})
        matches = search.json()["faces"][0]["matches"]
        top = matches[0]
        image = await client.get(top["thumbnail_url"])
        again = await client.get(top["thumbnail_url"], headers={"If-None-Match": image.headers["etag"]})
        face = await client.get(f"/v1/faces/{top['face_id']}")
    assert top["name"] == "obama"
    assert top["thumbnail_url"] == f"/thumbnails/{top['face_id']}.jpg"
    for match in matches:  # crops only where the crawler made them
        assert (match["thumbnail_url"] is not None) == (match["name"] in WITH_THUMBNAILS)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content[:3] == b"\xff\xd8\xff"
    assert image.content == (tmp_path / "data" / THUMBNAIL_DIR / f"{top['face_id']}.jpg").read_bytes()
    assert "max-age=" in image.headers["cache-control"] and image.headers["etag"]
    assert again.status_code == 304
    assert face.json()["thumbnail_url"] == top["thumbnail_url"]


async def test_a_thumbnail_written_by_hand_is_served(api_client, tmp_path):
    point = str(uuid.uuid4())
    folder = tmp_path / "data" / THUMBNAIL_DIR
    folder.mkdir(parents=True)
    (folder / f"{point}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    async with api_client() as client:
        response = await client.get(f"/thumbnails/{point}.jpg")
        head = await client.head(f"/thumbnails/{point}.jpg")
    assert response.status_code == 200 and response.content.startswith(b"\xff\xd8\xff\xe0")
    assert head.status_code in (200, 405)


@pytest.mark.parametrize(
    "path",
    [
        "/thumbnails/{id}.JPG",
        "/thumbnails/{ID}.jpg",  # ids are lowercase: an uppercase one names no file
        "/thumbnails/{id}x.jpg",
        "/thumbnails/{id}.jpg.jpg",
        "/thumbnails/..%2Fsecret.jpg",
        "/thumbnails/%2e%2e%2fsecret.jpg",
        "/thumbnails/..%2F..%2Fsecret.jpg",
        "/thumbnails/%2E%2E.jpg",
        "/thumbnails/%00{id}.jpg",
        "/thumbnails/.jpg",
        "/thumbnails/secret.jpg",
        "/thumbnails/missing-00000000-0000-0000-0000-000000000000.jpg",
        "/thumbnails/00000000-0000-0000-0000-000000000000.jpg",  # a valid id with no file
        "/thumbnails/",
    ],
)
async def test_anything_but_an_existing_id_is_404(api_client, tmp_path, path):
    point = str(uuid.uuid4())
    data = tmp_path / "data"
    (data / THUMBNAIL_DIR).mkdir(parents=True)
    (data / THUMBNAIL_DIR / f"{point}.jpg").write_bytes(b"\xff\xd8\xff")
    (data / "secret.jpg").write_bytes(b"secret")
    (data / THUMBNAIL_DIR / "secret.jpg").write_bytes(b"secret")
    async with api_client() as client:
        response = await client.get(path.format(id=point, ID=point.upper()))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_only_canonical_ids_name_files(tmp_path):
    point = str(uuid.uuid4())
    assert thumbnail_file(tmp_path, point) == tmp_path / THUMBNAIL_DIR / f"{point}.jpg"
    for bad in ("../x", f"../{point}", point.upper(), f"{point}/..", "", f"{point}\x00"):
        assert thumbnail_file(tmp_path, bad) is None
    assert thumbnail_id(f"thumbnails/{point}.jpg") == point
    for bad in (
        f"/thumbnails/{point}.jpg",
        f"thumbnails/../{point}.jpg",
        f"thumbnails/{point}.png",
        "thumbnails/x.jpg",
    ):
        assert thumbnail_id(bad) is None


async def test_takedown_removes_the_thumbnail_files(api_client, thumbed, tmp_path):
    store, records = thumbed
    folder = tmp_path / "data" / THUMBNAIL_DIR
    obama = {r.id for r in records if r.name == "obama"}
    biden = {r.id for r in records if r.name == "biden"}
    assert obama and biden and all((folder / f"{i}.jpg").is_file() for i in obama | biden)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with api_client(store_=store, **{"api.admin_key": ADMIN_KEY}) as client:
        deleted = await client.delete("/v1/faces", params={"name": "obama"}, headers=auth)
        gone = await client.get(f"/thumbnails/{next(iter(obama))}.jpg")
        kept = await client.get(f"/thumbnails/{next(iter(biden))}.jpg")
    assert deleted.json() == {"deleted": len(obama)}
    assert not any((folder / f"{i}.jpg").exists() for i in obama)
    assert all((folder / f"{i}.jpg").is_file() for i in biden)
    assert gone.status_code == 404 and kept.status_code == 200


def test_store_cli_delete_removes_the_thumbnail_files(tmp_path, faces_dir, index_records, capsys):
    data = tmp_path / "cli"

    async def build() -> list[FaceRecord]:
        records = await crawl_thumbnails(data, faces_dir, index_records)
        store = await open_store(Settings(data_dir=str(data)))
        await store.upsert(records)
        await store.close()
        return records

    records = asyncio.run(build())
    folder = data / THUMBNAIL_DIR
    biden = {r.id for r in records if r.name == "biden"}
    obama = {r.id for r in records if r.name == "obama"}
    assert store_main(["--data-dir", str(data), "delete", "--name", "biden"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"deleted {len(biden)} faces and {len(biden)} thumbnail files"
    assert not any((folder / f"{i}.jpg").exists() for i in biden)
    assert all((folder / f"{i}.jpg").is_file() for i in obama)
