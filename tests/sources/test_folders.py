"""read_folders: photos on disk named after their folder."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from sozy.config import CrawlSettings
from sozy.fetch import Fetcher
from sozy.sources import read_folders
from sozy.sources.folders import person_name
from tests.conftest import FacePhoto


def _path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def test_the_shared_faces_folder(faces_dir: Path, face_photos: list[FacePhoto]) -> None:
    found = list(read_folders(faces_dir))
    by_path = {_path(c.image_url): c for c in found}
    # Every photo once, nothing else (manifest.csv and README.md are no photos).
    assert sorted(by_path) == sorted(p.path.resolve() for p in face_photos)
    assert len(found) == len(face_photos)
    for photo in face_photos:
        candidate = by_path[photo.path.resolve()]
        assert candidate.source == "folder"
        assert candidate.image_url.startswith("file:///")
        folder = photo.path.parent.name
        assert candidate.name == (None if folder == "group" else folder.replace("_", " ").title())
    assert by_path[(faces_dir / "kit_harington/kit-harington1.jpg").resolve()].name == "Kit Harington"
    # Sorted: the same order every run.
    assert found == list(read_folders(faces_dir))


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("kit_harington", "Kit Harington"),
        ("LeBron_James", "LeBron James"),
        ("  beyoncé  ", "Beyoncé"),
        ("conan_o'brien", "Conan O'Brien"),
        ("Group", None),
        ("unknown", None),
        ("___", None),
    ],
)
def test_person_name(folder: str, name: str | None) -> None:
    assert person_name(folder) == name


def test_nested_hidden_loose_and_unnamed(tmp_path: Path) -> None:
    for rel in [
        "rose_leslie/2014/red-carpet.JPG",
        "rose_leslie/b.png",
        "rose_leslie/notes.txt",
        "rose_leslie/.thumbs/a.jpg",
        ".cache/x.jpg",
        "loose.webp",
        "crowd/party.jpeg",
        "misc/m.gif",
        "Ian McKellen/gandalf #1.jpg",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"not really a photo; the fetcher sniffs")
    found = [(str(_path(c.image_url).relative_to(tmp_path.resolve())), c.name) for c in read_folders(tmp_path)]
    assert found == [
        ("Ian McKellen/gandalf #1.jpg", "Ian McKellen"),
        ("crowd/party.jpeg", "Crowd"),
        ("loose.webp", None),
        ("misc/m.gif", None),
        ("rose_leslie/2014/red-carpet.JPG", "Rose Leslie"),
        ("rose_leslie/b.png", "Rose Leslie"),
    ]
    custom = {c.image_url.rsplit("/", 1)[-1]: c.name for c in read_folders(tmp_path, unnamed={"CROWD"})}
    assert custom["party.jpeg"] is None and custom["m.gif"] == "Misc"


def test_a_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        list(read_folders(tmp_path / "nope"))


async def test_the_fetcher_reads_the_folder_urls(faces_dir: Path) -> None:
    candidate = next(c for c in read_folders(faces_dir) if c.image_url.endswith("lin-manuel-miranda.png"))
    async with Fetcher(CrawlSettings()) as fetcher:
        fetched = await fetcher.image(candidate.image_url)
    assert fetched.image_type == "png"
    assert fetched.body == (faces_dir / "lin_manuel_miranda/lin-manuel-miranda.png").read_bytes()
