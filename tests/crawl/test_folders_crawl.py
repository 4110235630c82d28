"""A folder crawl stores where each photo came from without the machine's paths, and resumes anywhere."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sozy.config import Settings
from sozy.crawl.pipeline import CrawlPlan

from .conftest import state_rows, stored_points

# Small photos (quick to embed): one each of two people, and one group photo.
PHOTOS = ["obama/obama-240p.jpg", "kit_harington/kit-harington2.jpg", "group/kit-harington-and-rose-leslie.jpg"]


def gallery(faces_dir: Path, root: Path) -> Path:
    for rel in PHOTOS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(faces_dir / rel, root / rel)
    (root / "people.csv").write_text("folder,name\nobama,Barack Obama\n", encoding="utf-8")
    return root


async def test_folder_photos_are_known_by_the_folder_name_and_resume_without_it(
    faces_dir: Path, tmp_path: Path, make_settings: Callable[..., Settings], crawl: Callable[..., Any]
) -> None:
    root = gallery(faces_dir, tmp_path / "private" / "my photos")
    settings = make_settings()
    first = await crawl(settings, CrawlPlan(folders=(root,), limit=1))
    assert first.exit_code == 0
    rows = state_rows(settings)
    assert sorted(rows) == sorted(f"file:my%20photos/{rel}" for rel in PHOTOS)
    assert sorted(r.status for r in rows.values()) == ["done", "pending", "pending"]

    # A later run with no --folders still reads the pending photos: the state knows the folder.
    second = await crawl(settings, CrawlPlan())
    assert second.exit_code == 0
    assert {r.status for r in state_rows(settings).values()} == {"done"}

    points = await stored_points(settings)
    assert len(points) == 4  # 1 + 1 + 2 faces
    for point in points:
        assert point.payload["image_url"].startswith("file:my%20photos/")
        assert str(tmp_path) not in repr(point.payload) and "private" not in repr(point.payload)
    names = sorted((p.payload["image_url"].rsplit("/", 1)[-1], p.payload["name"] or "") for p in points)
    assert names == [
        ("kit-harington-and-rose-leslie.jpg", ""), ("kit-harington-and-rose-leslie.jpg", ""),
        ("kit-harington2.jpg", "Kit Harington"), ("obama-240p.jpg", "Barack Obama"),
    ]


async def test_two_folders_with_one_name_stay_apart(
    faces_dir: Path, tmp_path: Path, make_settings: Callable[..., Settings], crawl: Callable[..., Any]
) -> None:
    a = gallery(faces_dir, tmp_path / "a" / "faces")
    b = tmp_path / "b" / "faces"
    (b / "obama").mkdir(parents=True)
    shutil.copyfile(faces_dir / "obama/obama-small.jpg", b / "obama" / "obama-small.jpg")
    settings = make_settings()
    result = await crawl(settings, CrawlPlan(folders=(a, b)))
    assert result.exit_code == 0
    rows = state_rows(settings)
    assert "file:faces-2/obama/obama-small.jpg" in rows and "file:faces/obama/obama-240p.jpg" in rows
    assert {r.status for r in rows.values()} == {"done"}
