"""A bare clone is the whole product: the sample gallery ships in the repository, nothing points beside it."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from sozy.sources import read_folders
from sozy.sources.folders import read_people_file

REPO = Path(__file__).resolve().parents[2]
GALLERY = REPO / "examples" / "faces"
# Built from parts so this file does not match itself.
OUTSIDE = ("../" + "shared", '.parent / "' + 'shared"', "parent.parent / '" + "shared'")
CHECKED = ("src", "tests", "bench", "docs", "scripts", "deploy")  # .ci/run checks the folder is absent
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".yml", ".yaml", ".sh", ".js", ".html", ".cfg", ".json", ""}


def _checked_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "pyproject.toml", REPO / "docker-compose.yml"]
    for top in CHECKED:
        files += [p for p in _project_files(REPO / top) if p.suffix in TEXT_SUFFIXES]
    return [p for p in files if p.is_file()]


def _project_files(top: Path) -> list[Path]:
    """The files the project ships under ``top``: git's in a checkout (not build outputs such as a stale
    ``src/sozy.egg-info``, which git ignores), else every file."""
    git = shutil.which("git")
    listed = (
        subprocess.run([git, "-C", str(REPO), "ls-files", "-z", "--", str(top)], capture_output=True, check=False)
        if git
        else None
    )
    if listed is not None and listed.returncode == 0 and listed.stdout:
        return [REPO / name for name in listed.stdout.decode().split("\0") if name]
    return [p for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def test_nothing_refers_to_a_folder_beside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in _checked_files()
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if any(token in line for token in OUTSIDE)
    ]
    assert offenders == []


def test_the_gallery_ships_with_its_licence_manifest_and_names() -> None:
    licence = (GALLERY / "LICENSE").read_text()
    assert "MIT License" in licence and "Copyright (c) 2017, Adam Geitgey" in licence
    with (GALLERY / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    photos = sorted(str(p.relative_to(GALLERY)) for p in GALLERY.rglob("*") if p.suffix in {".jpg", ".png"})
    assert sorted(r["path"] for r in rows) == photos and len(photos) == 26
    people = read_people_file(GALLERY)
    folders = {r["path"].split("/")[0] for r in rows} - {"group"}
    assert set(people) == folders
    # Every person in the manifest has a folder with a name people write.
    assert {p for r in rows for p in r["people"].split(";")} - {"unknown"} == folders
    assert people["lin_manuel_miranda"] == "Lin-Manuel Miranda" and people["obama"] == "Barack Obama"


def test_the_gallery_crawls_under_the_names_people_write() -> None:
    found = list(read_folders(GALLERY))
    assert len(found) == 26
    names = {c.name for c in found}
    assert names == {
        None,
        "Alex Lacamoire",
        "Joe Biden",
        "Kit Harington",
        "Lin-Manuel Miranda",
        "Barack Obama",
        "Rose Leslie",
    }
    # Where each photo came from, without the machine's paths.
    assert all(c.image_url.startswith("file:faces/") for c in found)
    assert not any(str(REPO) in c.image_url for c in found)


@pytest.mark.parametrize("output", ["build/lib/sozy/__init__.py", "dist/sozy-0.1.tar.gz", "src/sozy.egg-info/PKG-INFO"])
def test_what_pip_install_writes_is_ignored_by_git(output: str) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    checked = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", output], check=False)
    assert checked.returncode == 0, f"{output} is not ignored by .gitignore"
