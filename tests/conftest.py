"""Fixtures shared by every stage's tests: the real face photos in ../shared/faces."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FACES_DIR = Path(os.environ.get("SOZY_TEST_FACES", REPO_ROOT.parent / "shared" / "faces"))


@dataclass(frozen=True)
class FacePhoto:
    """One row of ../shared/faces/manifest.csv."""

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


def _read_manifest() -> list[FacePhoto]:
    manifest = FACES_DIR / "manifest.csv"
    if not manifest.is_file():
        pytest.exit(f"face fixtures not found at {FACES_DIR} (set SOZY_TEST_FACES)", returncode=2)
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


@pytest.fixture(scope="session")
def faces_dir() -> Path:
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
