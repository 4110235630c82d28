"""POST /v1/search through the real app, engine and embedded store."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from .index import HELD_OUT, LICENSE_URL

MATCH_KEYS = {
    "name",
    "person_id",
    "unnamed",
    "label",
    "distance",
    "similarity",
    "same_person",
    "face_id",
    "image_url",
    "page_url",
    "box",
    "thumbnail_url",
    "license",
    "license_url",
    "attribution",
    "restrictions",
}


def jpeg(faces_dir, rel: str) -> bytes:
    return (faces_dir / rel).read_bytes()


async def test_held_out_obama_finds_obama_first(api_client, faces_dir, index_records):
    assert all(not r.image_url.endswith(HELD_OUT) for r in index_records)
    async with api_client() as client:
        response = await client.post("/v1/search", files={"image": ("me.jpg", jpeg(faces_dir, HELD_OUT), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"faces", "took_ms"}
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert set(face["box"]) == {"left", "top", "right", "bottom"}
    matches = face["matches"]
    assert len(matches) == 5
    assert all(set(m) == MATCH_KEYS for m in matches)
    first = matches[0]
    assert first["name"] == "obama" and first["person_id"] == "obama"
    assert first["same_person"] is True
    # Every match is a named person, each once (the group photos' Obama is Obama, not another match).
    assert all(m["person_id"] and m["name"] and m["unnamed"] is False for m in matches)
    assert len({m["person_id"] for m in matches}) == len(matches)
    assert first["distance"] < 0.6 and first["similarity"] > 50
    # Distinct people, nearest first, and nobody else is the same person.
    names = [m["name"] for m in matches]
    assert len(set(names)) == len(names)
    assert [m["distance"] for m in matches] == sorted(m["distance"] for m in matches)
    assert all(not m["same_person"] for m in matches[1:])
    assert [m["similarity"] for m in matches] == sorted((m["similarity"] for m in matches), reverse=True)
    assert first["image_url"].startswith("https://photos.example.org/photos/") and "obama" in first["image_url"]
    assert first["license"] == "MIT" and first["attribution"]
    assert first["license_url"] == LICENSE_URL
    assert first["restrictions"] == []  # the sample gallery's photos carry no restriction templates


async def test_a_bystander_is_offered_only_when_asked_for_and_marked(api_client, faces_dir, index_records):
    rel = "group/obama-biden-and-one-more.jpg"
    stranger = next(r for r in index_records if r.image_url.endswith(rel) and r.person_id is None)
    async with api_client() as client:
        default = await client.post("/v1/search", files={"image": ("g.jpg", jpeg(faces_dir, rel), "image/jpeg")})
        asked = await client.post(
            "/v1/search", params={"unnamed": "true"}, files={"image": ("g.jpg", jpeg(faces_dir, rel), "image/jpeg")}
        )
        bad = await client.post("/v1/search", params={"unnamed": "yes"}, files={"image": ("g.jpg", b"x", "image/jpeg")})
    assert default.status_code == asked.status_code == 200
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_parameter"
    default_matches = [m for f in default.json()["faces"] for m in f["matches"]]
    assert all(not m["unnamed"] and m["person_id"] for m in default_matches)
    assert stranger.id not in {m["face_id"] for m in default_matches}
    found = [m for f in asked.json()["faces"] for m in f["matches"] if m["face_id"] == stranger.id]
    assert found and found[0]["unnamed"] is True and found[0]["name"] is None and found[0]["person_id"] is None
    assert found[0]["label"] == "none" and min(m["distance"] for m in found) < 0.05


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("group/biden-and-obama.jpg", [{"biden", "obama"}]),
        ("group/kit-harington-and-rose-leslie.jpg", [{"kit_harington", "rose_leslie"}]),
    ],
)
async def test_group_photo_gives_one_result_list_per_face(api_client, faces_dir, rel, expected):
    async with api_client() as client:
        response = await client.post("/v1/search", files={"image": ("g.jpg", jpeg(faces_dir, rel), "image/jpeg")})
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == 2
    # The group photo itself is in the index, so each face finds itself (distance ~0) first.
    tops = {f["matches"][0]["name"] for f in faces}
    assert tops == expected[0]
    assert all(f["matches"][0]["distance"] < 0.05 for f in faces)
    # Faces come largest first, and the boxes differ.
    areas = [(f["box"]["right"] - f["box"]["left"]) * (f["box"]["bottom"] - f["box"]["top"]) for f in faces]
    assert areas == sorted(areas, reverse=True)


async def test_three_face_group_and_largest_only(api_client, faces_dir):
    data = jpeg(faces_dir, "group/obama-biden-and-one-more.jpg")
    async with api_client() as client:
        every = (await client.post("/v1/search", files={"image": ("g.jpg", data, "image/jpeg")})).json()
        largest = (await client.post("/v1/search?faces=largest", files={"image": ("g.jpg", data, "image/jpeg")})).json()
    assert len(every["faces"]) == 3
    assert len(largest["faces"]) == 1
    assert largest["faces"][0]["box"] == every["faces"][0]["box"]


async def test_k_and_per_person(api_client, faces_dir):
    data = jpeg(faces_dir, HELD_OUT)
    async with api_client() as client:
        two = (await client.post("/v1/search?k=2", files={"image": ("a.jpg", data, "image/jpeg")})).json()
        grouped = (
            await client.post("/v1/search?k=2&per_person=3", files={"image": ("a.jpg", data, "image/jpeg")})
        ).json()
    assert len(two["faces"][0]["matches"]) == 2
    matches = grouped["faces"][0]["matches"]
    # Obama has many stored faces: three of them, then the next person's (up to three).
    assert [m["name"] for m in matches[:3]] == ["obama"] * 3
    assert len({m["face_id"] for m in matches}) == len(matches)
    assert len({m["name"] for m in matches}) == 2
    obama = [m["distance"] for m in matches[:3]]
    assert obama == sorted(obama)


async def test_json_base64_and_data_url_and_raw_body(api_client, faces_dir):
    data = jpeg(faces_dir, HELD_OUT)
    encoded = base64.b64encode(data).decode()
    async with api_client() as client:
        plain = await client.post("/v1/search", json={"image_base64": encoded})
        data_url = await client.post("/v1/search", json={"image_base64": "data:image/jpeg;base64," + encoded})
        wrapped = await client.post(
            "/v1/search",
            content=json.dumps({"image_base64": "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))}),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        raw = await client.post("/v1/search", content=data, headers={"Content-Type": "image/jpeg"})
    for response in (plain, data_url, wrapped, raw):
        assert response.status_code == 200, response.text
        assert response.json()["faces"][0]["matches"][0]["name"] == "obama"


async def test_image_url_from_a_local_server(api_client, faces_dir):
    from .servers import PhotoServer

    async with PhotoServer(faces_dir) as server, api_client(**{"api.allow_private_urls": True}) as client:
        response = await client.post("/v1/search", json={"image_url": f"{server.url}/redirect?to=/photos/{HELD_OUT}"})
    assert response.status_code == 200, response.text
    assert response.json()["faces"][0]["matches"][0]["name"] == "obama"
    assert server.hits == [f"/redirect?to=/photos/{HELD_OUT}", f"/photos/{HELD_OUT}"]


# Digits of other scripts on purpose: str.isdigit() accepts them.
@pytest.mark.parametrize("value", ["²", "١", "５", "٣", "1²", "0x5", "-1", "+3", "1e1", " ", "9" * 30])  # noqa: RUF001
def test_numeric_parameters_take_ascii_digits_only(guarded_server, faces_dir, value):
    """str.isdigit() also says yes to superscripts (which int() refuses: a 500 once) and to
    other scripts' digits; every such value is a clean 400, over a real socket."""
    photo = (faces_dir / HELD_OUT).read_bytes()
    for name in ("k", "per_person"):
        response = httpx.post(
            f"{guarded_server.url}/v1/search",
            params={name: value},
            content=photo,
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert response.status_code == 400, (name, value, response.text)
        assert response.json()["error"]["code"] == "bad_parameter"
