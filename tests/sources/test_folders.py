"""read_folders: photos on disk named after their folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from sozy.config import CrawlSettings
from sozy.fetch import Fetcher, FetchError
from sozy.fetch.local import file_url_path
from sozy.sources import read_folders
from sozy.sources.folders import PeopleFileError, person_name, read_people_file
from tests.conftest import FacePhoto


def _path(url: str, root: Path) -> Path:
    """The file a folder photo's URL (file:<root name>/<path>) stands for."""
    return file_url_path(url, {root.resolve().name: root.resolve()})


def test_the_sample_faces_folder(faces_dir: Path, face_photos: list[FacePhoto]) -> None:
    found = list(read_folders(faces_dir))
    by_path = {_path(c.image_url, faces_dir): c for c in found}
    # Every photo once, nothing else (manifest.csv, people.csv and README.md are no photos).
    assert sorted(by_path) == sorted(p.path.resolve() for p in face_photos)
    assert len(found) == len(face_photos)
    people = read_people_file(faces_dir)
    for photo in face_photos:
        candidate = by_path[photo.path.resolve()]
        assert candidate.source == "folder"
        rel = photo.path.resolve().relative_to(faces_dir.resolve()).as_posix()
        assert candidate.image_url == f"file:{faces_dir.resolve().name}/{rel}"
        folder = photo.path.parent.name
        expected = people.get(folder, folder.replace("_", " ").title())
        assert candidate.name == (None if folder == "group" else expected)
    assert by_path[(faces_dir / "kit_harington/kit-harington1.jpg").resolve()].name == "Kit Harington"
    # Sorted: the same order every run.
    assert found == list(read_folders(faces_dir))


def test_people_csv_gives_folders_their_names(tmp_path: Path) -> None:
    for rel in ["lin_manuel_miranda/a.png", "obama/b.jpg", "Rose Leslie/c.jpg", "nobody/d.jpg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "people.csv").write_text(
        "folder,name\nlin_manuel_miranda,Lin-Manuel Miranda\nobama, Barack  Obama \nnobody,\n", encoding="utf-8"
    )
    names = {c.image_url.rsplit("/", 1)[-1]: c.name for c in read_folders(tmp_path, root_name="gallery")}
    assert names == {"a.png": "Lin-Manuel Miranda", "b.jpg": "Barack Obama", "c.jpg": "Rose Leslie", "d.jpg": None}
    assert all(c.image_url.startswith("file:gallery/") for c in read_folders(tmp_path, root_name="gallery"))
    (tmp_path / "people.csv").write_text("who,what\nobama,Barack Obama\n", encoding="utf-8")
    with pytest.raises(PeopleFileError, match="folder and name"):
        list(read_folders(tmp_path))


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
    found = [
        (str(_path(c.image_url, tmp_path).relative_to(tmp_path.resolve())), c.name) for c in read_folders(tmp_path)
    ]
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
    candidate = next(c for c in read_folders(faces_dir, root_name="sample") if c.image_url.endswith("miranda.png"))
    async with Fetcher(CrawlSettings()) as fetcher:
        with pytest.raises(FetchError, match="no crawled folder named 'sample'"):
            await fetcher.image(candidate.image_url)
        fetcher.local_roots["sample"] = faces_dir.resolve()
        fetched = await fetcher.image(candidate.image_url)
        assert fetched.image_type == "png"
        assert fetched.body == (faces_dir / "lin_manuel_miranda/lin-manuel-miranda.png").read_bytes()
        # Nothing outside the crawled folder, and a web page cannot point at it.
        for escape in ["file:sample/../../etc/passwd", "file:sample/%2E%2E/manifest.csv"]:
            with pytest.raises(FetchError, match="not a photo under a crawled folder"):
                await fetcher.image(escape)
        with pytest.raises(FetchError, match="from a web page"):
            await fetcher.image(candidate.image_url, referer="https://example.org/page.html")
