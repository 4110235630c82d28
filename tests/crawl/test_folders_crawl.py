"""A folder crawl stores where each photo came from without the machine's paths, and resumes anywhere."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sozy.config import Settings
from sozy.crawl.__main__ import main
from sozy.crawl.plan import CrawlPlan
from tests.servers.celebrity import CelebritySite

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
    # The group photo is unnamed; consensus attaches its Kit Harington (0.37 from his photo) to him.
    assert names == [
        ("kit-harington-and-rose-leslie.jpg", ""),
        ("kit-harington-and-rose-leslie.jpg", "Kit Harington"),
        ("kit-harington2.jpg", "Kit Harington"),
        ("obama-240p.jpg", "Barack Obama"),
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


async def test_lists_and_folders_that_grow_are_read_again_and_a_run_with_nothing_new_starts_no_engine(
    faces_dir: Path,
    tmp_path: Path,
    site: CelebritySite,
    make_settings: Callable[..., Settings],
    crawl: Callable[..., Any],
) -> None:
    root = gallery(faces_dir, tmp_path / "faces")
    listed = tmp_path / "photos.txt"
    listed.write_text(site.url("/photos/480/biden/biden2.jpg") + "\n")
    settings = make_settings()
    plan = CrawlPlan(folders=(root,), url_lists=(listed,))
    first = await crawl(settings, plan)
    assert first.exit_code == 0 and first.summary["run"]["photos_done"] == 4
    assert first.summary["engine"]["workers"] >= 1

    # Nothing new: every row is known, nothing is fetched, the engine never starts.
    again = await crawl(settings, plan)
    assert again.exit_code == 0
    run = again.summary["run"]
    assert (run["discovered"], run["fetched"], run["photos_done"]) == (0, 0, 0)
    assert again.summary["engine"] is None

    # The folder and the list grew: only the new photos are fetched, and the summary says they are new.
    shutil.copyfile(faces_dir / "rose_leslie/rose-leslie2.jpg", root / "group" / "rose-leslie2.jpg")
    listed.write_text(listed.read_text() + site.url("/photos/480/obama/obama-small.jpg") + "\n")
    grown = await crawl(settings, plan)
    assert grown.exit_code == 0
    run = grown.summary["run"]
    assert (run["discovered"], run["new"], run["resumed"], run["fetched"], run["photos_done"]) == (2, 2, 0, 2, 2)
    rows = state_rows(settings)
    assert rows["file:faces/group/rose-leslie2.jpg"].status == "done" and len(rows) == 6


async def test_pending_photos_of_an_earlier_run_are_told_apart_from_new_ones(
    faces_dir: Path, tmp_path: Path, make_settings: Callable[..., Settings], crawl: Callable[..., Any]
) -> None:
    root = gallery(faces_dir, tmp_path / "faces")
    settings = make_settings()
    assert (await crawl(settings, CrawlPlan(folders=(root,), limit=1))).exit_code == 0
    shutil.copyfile(faces_dir / "obama/obama-small.jpg", root / "obama" / "obama-small.jpg")
    result = await crawl(settings, CrawlPlan(folders=(root,)))
    run = result.summary["run"]
    assert (run["resumed"], run["new"], run["photos_done"]) == (2, 1, 3)


async def test_an_engine_that_cannot_start_stops_the_crawl_at_the_first_photo_with_exit_4(
    faces_dir: Path, tmp_path: Path, make_settings: Callable[..., Settings], crawl: Callable[..., Any]
) -> None:
    root = gallery(faces_dir, tmp_path / "faces")
    settings = make_settings(**{"engine.device": "cuda"})  # dlib-bin is built without CUDA
    result = await crawl(settings, CrawlPlan(folders=(root,)))
    assert result.exit_code == 4 and result.summary["status"] == "failed"
    assert {r.status for r in state_rows(settings).values()} == {"pending"}  # nothing lost


def test_a_people_csv_without_its_columns_stops_the_crawl_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "faces" / "obama").mkdir(parents=True)
    (tmp_path / "faces" / "people.csv").write_text("who,what\nobama,Barack Obama\n", encoding="utf-8")
    code = main(["--folders", str(tmp_path / "faces"), "--data-dir", str(tmp_path / "data"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "people.csv" in err[0] and "folder and name" in err[0]
    assert not (tmp_path / "data").exists()  # nothing created
