"""Fixtures shared by every stage's tests: the real face photos of the sample gallery.

The gallery is ``examples/faces`` in this repository; ``SOZY_TEST_FACES``
points the tests at another folder laid out the same way (its
``manifest.csv`` says what each photo holds). Without one, the tests that
need photos skip; the others run.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FACES_DIR = Path(os.environ.get("SOZY_TEST_FACES") or REPO_ROOT / "examples" / "faces")


@dataclass(frozen=True)
class FacePhoto:
    """One row of the gallery's manifest.csv (``people``: folder keys, ``unknown`` for a stranger)."""

    path: Path
    people: tuple[str, ...]
    faces: int
    width: int
    height: int
    mode: str

    @property
    def person(self) -> str | None:
        """The one person in a single-person photo, else None."""
        return self.people[0] if len(self.people) == 1 else None


def _require_gallery() -> Path:
    manifest = FACES_DIR / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"face photos not found: no {manifest} (set SOZY_TEST_FACES to a gallery with a manifest.csv)")
    return manifest


def _read_manifest() -> list[FacePhoto]:
    manifest = _require_gallery()
    with manifest.open(newline="") as fh:
        return [
            FacePhoto(
                path=FACES_DIR / row["path"],
                people=tuple(row["people"].split(";")),
                faces=int(row["faces"]),
                width=int(row["width"]),
                height=int(row["height"]),
                mode=row["mode"],
            )
            for row in csv.DictReader(fh)
        ]


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory):
    """The converted ONNX descriptor model goes to a temporary cache, not the user's
    ~/.cache; engine workers and subprocesses inherit it through the environment."""
    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("xdg-cache")
        patch.setenv("XDG_CACHE_HOME", str(cache))
        yield cache / "sozy"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    _require_gallery()
    return FACES_DIR


@pytest.fixture(scope="session")
def face_photos() -> list[FacePhoto]:
    return _read_manifest()


@pytest.fixture(scope="session")
def photo(face_photos: list[FacePhoto]):
    """Look up a shared photo by its manifest path: ``photo("obama/obama.jpg")``."""
    by_path = {str(p.path.relative_to(FACES_DIR)): p for p in face_photos}

    def get(rel: str) -> FacePhoto:
        return by_path[rel]

    return get


@pytest.fixture(scope="session")
def shared_embeddings(request: pytest.FixtureRequest, face_photos: list[FacePhoto]):
    """Real dlib faces of every shared photo: ``{"obama/obama.jpg": PhotoFaces, ...}``.

    Computed in-process with the default engine settings (HOG) and kept in the
    pytest cache keyed by file sha256 + model id, so only the first run pays.
    """
    import hashlib

    import numpy as np

    from sozy.config import EngineSettings
    from sozy.faces.analyze import FaceAnalyzer, model_id_for, resolve_detector
    from sozy.records import Box, Face, PhotoFaces

    settings = EngineSettings()
    model = model_id_for(resolve_detector(settings.detector, "cpu"), settings.upsample, settings.upsample_below_px)
    cache = getattr(request.config, "cache", None)
    key = "sozy/shared_embeddings/v1"
    stored: dict = (cache.get(key, {}) if cache is not None else {}) or {}
    analyzer = None
    result: dict[str, PhotoFaces] = {}
    for p in face_photos:
        rel = str(p.path.relative_to(FACES_DIR))
        data = p.path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        entry = stored.get(rel)
        if not entry or entry.get("sha") != sha or entry.get("model") != model:
            analyzer = analyzer or FaceAnalyzer(settings)
            found = analyzer.analyze(data)
            entry = {
                "sha": sha,
                "model": found.model,
                "width": found.width,
                "height": found.height,
                "faces": [
                    {"box": f.box.to_dict(), "score": f.score, "vector": [float(x) for x in f.vector]}
                    for f in found.faces
                ],
            }
            stored[rel] = entry
        result[rel] = PhotoFaces(
            width=entry["width"],
            height=entry["height"],
            faces=[
                Face(box=Box.from_dict(f["box"]), vector=np.asarray(f["vector"], dtype=np.float32), score=f["score"])
                for f in entry["faces"]
            ],
            model=entry["model"],
        )
    if analyzer is not None and cache is not None:
        cache.set(key, stored)
    return result
