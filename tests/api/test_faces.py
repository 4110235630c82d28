"""GET /v1/faces/{id}, GET /v1/stats and the takedown route."""

from __future__ import annotations

import pytest
import pytest_asyncio

from sozy.config import Settings
from sozy.store import open_store

from .conftest import ADMIN_KEY
from .index import HELD_OUT, photo_url


async def test_get_face_returns_the_stored_record(api_client, faces_dir, index_records):
    async with api_client() as client:
        search = (
            await client.post(
                "/v1/search", files={"image": ("a.jpg", (faces_dir / HELD_OUT).read_bytes(), "image/jpeg")}
            )
        ).json()
        match = search["faces"][0]["matches"][0]
        response = await client.get(f"/v1/faces/{match['face_id']}")
    assert response.status_code == 200
    face = response.json()
    assert face["id"] == match["face_id"]
    assert face["name"] == match["name"] == "obama"
    assert face["image_url"] == match["image_url"]
    assert face["box"] == match["box"]
    stored = next(r for r in index_records if r.id == face["id"])
    assert (face["image_width"], face["image_height"]) == (stored.image_width, stored.image_height)
    assert face["source"] == "folder" and face["model"] == stored.model
    assert "vector" not in face


async def test_stats(api_client, engine, index_records):
    async with api_client() as client:
        response = await client.get("/v1/stats")
    assert response.status_code == 200
    stats = response.json()
    assert stats["faces"] == len(index_records)
    assert stats["people"] == len({r.name for r in index_records if r.name})
    assert stats["model"] == engine.model_id
    assert stats["backend"] == "embedded"
    assert stats["engine"] == {"workers": 1, "device": "cpu"}


@pytest_asyncio.fixture(loop_scope="session")
async def small_store(tmp_path, index_records):
    """A store of its own: takedowns must not change the shared one."""
    opened = await open_store(Settings(data_dir=str(tmp_path / "takedown")))
    await opened.upsert(index_records)
    yield opened
    await opened.close()


async def test_takedown_is_off_without_an_admin_key(api_client, store):
    async with api_client() as client:
        response = await client.delete(
            "/v1/faces", params={"name": "obama"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert await store.count() > 0


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-key",
        f"Basic {ADMIN_KEY}",
        f"Bearer {ADMIN_KEY}x",
        f"Bearer {ADMIN_KEY[:-1]}",
        "Bearer ключ".encode(),
    ],
)
async def test_takedown_needs_the_right_key(api_client, store, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    before = await store.count()
    async with api_client(**{"api.admin_key": ADMIN_KEY}) as client:
        response = await client.delete("/v1/faces", params={"name": "obama"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await store.count() == before


async def test_takedown_deletes_by_image_url_page_url_and_name(api_client, small_store, faces_dir, index_records):
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    by_name = sum(1 for r in index_records if r.name == "obama")
    biden_url = photo_url("https://photos.example.org", "biden/biden.jpg")
    async with api_client(store_=small_store, **{"api.admin_key": ADMIN_KEY}) as client:
        nothing = await client.delete("/v1/faces", headers=auth)
        empty = await client.delete("/v1/faces", params={"name": " "}, headers=auth)
        deleted = await client.delete("/v1/faces", params={"name": "obama"}, headers=auth)
        again = await client.delete("/v1/faces", params={"name": "obama"}, headers=auth)
        image = await client.delete("/v1/faces", params={"image_url": biden_url}, headers=auth)
        page = await client.delete(
            "/v1/faces",
            params={"page_url": "https://photos.example.org/pages/group/biden-and-obama.html"},
            headers=auth,
        )
        search = await client.post(
            "/v1/search", files={"image": ("a.jpg", (faces_dir / HELD_OUT).read_bytes(), "image/jpeg")}
        )
    assert nothing.status_code == 400 and empty.status_code == 400
    assert deleted.status_code == 200 and deleted.json() == {"deleted": by_name}
    assert again.json() == {"deleted": 0}
    assert image.json() == {"deleted": 1}
    assert page.json() == {"deleted": 1}  # the group photo's Biden face; its Obama face went with the name
    names = [m["name"] for m in search.json()["faces"][0]["matches"]]
    assert "obama" not in names
    assert await small_store.count() == len(index_records) - by_name - 2


def test_faces_and_stats_say_how_they_may_be_cached(guarded_server, faces_dir):
    import httpx

    url = guarded_server.url
    photo = (faces_dir / HELD_OUT).read_bytes()
    found = httpx.post(f"{url}/v1/search", content=photo, headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert found.headers["cache-control"] == "no-store"
    face_id = found.json()["faces"][0]["matches"][0]["face_id"]
    face = httpx.get(f"{url}/v1/faces/{face_id}", timeout=60)
    assert face.status_code == 200
    assert face.headers["cache-control"] == "public, max-age=60"
    stats = httpx.get(f"{url}/v1/stats", timeout=60)
    assert stats.headers["cache-control"] == "public, max-age=10"


def test_metrics_need_the_metrics_key_when_one_is_set(guarded_server):
    import httpx

    from .conftest import METRICS_KEY

    url = guarded_server.url
    assert httpx.get(f"{url}/metrics", timeout=60).status_code == 401
    assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=60).status_code == 401
    keyed = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}, timeout=60)
    assert keyed.status_code == 200
    assert "sozy_uploads_reading" in keyed.text


async def test_a_person_taken_down_is_gone_from_answers_counts_and_new_writes(
    api_client, tmp_path, faces_dir, index_records, shared_embeddings
):
    """Obama also appears, unnamed, in two group photos (as a crawl stores a group photo): the
    takedown by another spelling of his name removes those faces too, at once in stats, and
    his new faces are refused whatever label they come with."""
    import dataclasses

    records = [
        dataclasses.replace(r, name=None, person_id=None, label="none") if r.faces_in_image > 1 else r
        for r in index_records
    ]
    own = await open_store(Settings(data_dir=str(tmp_path / "person")))
    await own.upsert(records)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    held_out = (faces_dir / HELD_OUT).read_bytes()
    try:
        async with api_client(store_=own, **{"api.admin_key": ADMIN_KEY}) as client:
            before = (await client.get("/v1/stats")).json()
            deleted = await client.delete("/v1/faces", params={"name": "OBAMA"}, headers=auth)
            after = (await client.get("/v1/stats")).json()
            default = await client.post("/v1/search", files={"image": ("a.jpg", held_out, "image/jpeg")})
            everything = await client.post(
                "/v1/search", params={"unnamed": "true", "k": 50}, files={"image": ("a.jpg", held_out, "image/jpeg")}
            )
        obama_named = sum(1 for r in records if r.person_id == "obama")
        assert deleted.json() == {"deleted": obama_named + 2}  # his named faces and his two group faces
        assert after["people"] == before["people"] - 1 and after["faces"] == before["faces"] - obama_named - 2
        for response in (default, everything):
            matches = response.json()["faces"][0]["matches"]
            assert matches and all(m["person_id"] != "obama" and not m["same_person"] for m in matches)
        # New photos of him: his held-out photo unnamed, under another name, under his.
        (face,) = shared_embeddings[HELD_OUT].faces
        new = records[0]
        attempts = [
            dataclasses.replace(
                new, vector=face.vector, image_sha256="a" * 64, name=None, person_id=None, label="none"
            ),
            dataclasses.replace(new, vector=face.vector, image_sha256="b" * 64, name="Biden", person_id="biden"),
            dataclasses.replace(new, vector=face.vector, image_sha256="c" * 64, name="Barack Obama", person_id="Q76"),
        ]
        assert sorted(await own.upsert(attempts)) == sorted(r.id for r in attempts)
    finally:
        await own.close()
