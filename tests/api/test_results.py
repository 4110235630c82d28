"""Similarity score and result shaping."""

from __future__ import annotations

import base64
import io
import itertools

import numpy as np
from PIL import Image

from sozy.api.results import face_json, match_json, similarity, thumbnail_url
from sozy.records import Box, Face, FaceHit, PersonHit


def test_similarity_is_monotone_and_bounded():
    distances = [i / 100 for i in range(0, 300)]
    scores = [similarity(d, 0.6) for d in distances]
    assert scores[0] == 100.0
    assert all(0.0 <= s <= 100.0 for s in scores)
    assert all(a >= b for a, b in itertools.pairwise(scores))
    assert len(set(scores[:150])) > 100  # it moves over the distances that matter
    assert 49 <= similarity(0.6, 0.6) <= 51
    assert similarity(0.4, 0.6) > 80 and similarity(0.9, 0.6) < 10
    assert similarity(5.0, 0.6) == 0.0


def test_similarity_follows_the_configured_threshold():
    assert 49 <= similarity(0.5, 0.5) <= 51
    assert similarity(0.55, 0.5) < similarity(0.55, 0.6)


def _jpeg_base64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 100, 50)).save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode()


def test_thumbnail_url_forms():
    encoded = _jpeg_base64()
    assert thumbnail_url(encoded) == "data:image/jpeg;base64," + encoded
    assert thumbnail_url("data:image/png;base64,AAAA") == "data:image/png;base64,AAAA"
    assert thumbnail_url("https://example.org/t.jpg") == "https://example.org/t.jpg"
    assert thumbnail_url("javascript:alert(1)") is None
    assert thumbnail_url(base64.b64encode(b"<html>").decode()) is None
    assert thumbnail_url(None) is None and thumbnail_url("") is None and thumbnail_url(12) is None


def test_face_json_groups_matches_by_person():
    def hit(i: str, d: float, name: str | None) -> FaceHit:
        return FaceHit(
            i,
            d,
            {"name": name, "image_url": f"https://x/{i}.jpg", "box": {"left": 1, "top": 2, "right": 3, "bottom": 4}},
        )

    people = [
        PersonHit("a", [hit("1", 0.3, "a"), hit("2", 0.5, "a")]),
        PersonHit(None, [hit("3", 0.4, None)]),
    ]
    face = Face(box=Box(0, 0, 10, 10), vector=np.zeros(128, dtype=np.float32))
    body = face_json(face, people, 0.6)
    assert body["box"] == {"left": 0, "top": 0, "right": 10, "bottom": 10}
    assert [m["face_id"] for m in body["matches"]] == ["1", "2", "3"]
    assert [m["same_person"] for m in body["matches"]] == [True, True, True]
    assert match_json(hit("9", 0.6, "b"), 0.6)["same_person"] is False  # strictly below the threshold
    assert body["matches"][2]["name"] is None
