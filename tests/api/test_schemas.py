"""The types in sozy.api.schemas are what the app really answers, and what /openapi.json says."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from sozy.api import schemas
from sozy.api.openapi import openapi_schema
from sozy.config import Settings

from .index import HELD_OUT


def exactly(kind: type, body: Any) -> None:
    """``body`` has every field of ``kind``, no other, each of its type with no conversion."""
    assert TypeAdapter[Any](kind).validate_python(body, strict=True) == body


def documented(kind: type, body: dict[str, Any]) -> None:
    """/openapi.json names every field the answer has, and marks each one required."""
    component = openapi_schema(Settings())["components"]["schemas"][kind.__name__]
    assert list(component["properties"]) == list(body) == component["required"]


async def test_search_answers_are_search_results(api_client, faces_dir):
    group = (faces_dir / "group/obama-biden-and-one-more.jpg").read_bytes()
    async with api_client() as client:
        response = await client.post("/v1/search?unnamed=true", files={"image": ("g.jpg", group, "image/jpeg")})
    body = response.json()
    assert response.status_code == 200
    exactly(schemas.SearchResult, body)
    matches = [m for face in body["faces"] for m in face["matches"]]
    assert any(m["name"] is None for m in matches)  # nulls too: a bystander is offered
    documented(schemas.SearchResult, body)
    documented(schemas.Face, body["faces"][0])
    documented(schemas.Match, matches[0])
    documented(schemas.Box, body["faces"][0]["box"])


async def test_stored_faces_stats_health_and_errors_are_their_types(api_client, faces_dir):
    photo = (faces_dir / HELD_OUT).read_bytes()
    async with api_client() as client:
        search = (await client.post("/v1/search", files={"image": ("me.jpg", photo, "image/jpeg")})).json()
        face = (await client.get(f"/v1/faces/{search['faces'][0]['matches'][0]['face_id']}")).json()
        stats = (await client.get("/v1/stats")).json()
        health = (await client.get("/healthz")).json()
        ready = (await client.get("/readyz")).json()
        no_face = await client.post("/v1/search", files={"image": ("blank.jpg", b"not a photo", "image/jpeg")})
    for kind, body in (
        (schemas.StoredFace, face),
        (schemas.Stats, stats),
        (schemas.Health, health),
        (schemas.Ready, ready),
        (schemas.Error, no_face.json()),
    ):
        exactly(kind, body)
        documented(kind, body)
    assert no_face.status_code == 415


def test_a_wrong_answer_does_not_pass_for_its_type():
    match = {"box": {"left": 1, "top": 2, "right": 3, "bottom": 4}, "matches": []}
    exactly(schemas.Face, match)
    with pytest.raises(ValidationError):
        exactly(schemas.Face, {**match, "box": {"left": "1", "top": 2, "right": 3, "bottom": 4}})
    with pytest.raises(AssertionError):
        exactly(schemas.Face, {**match, "extra": 1})
