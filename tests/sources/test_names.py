"""read_names and the starter list shipped in config/names.txt."""

from __future__ import annotations

from pathlib import Path

from sozy.sources import read_names
from sozy.sources.wikidata import QID

STARTER = Path(__file__).resolve().parents[2] / "config" / "names.txt"


def test_read_names_skips_comments_blanks_and_repeats(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_text("\ufeff# header\n\nBarack  Obama\n  Q76 \nbarack obama\n   # indented comment\nBeyoncé\n")
    assert list(read_names(path)) == ["Barack Obama", "Q76", "Beyoncé"]


def test_the_starter_list() -> None:
    names = list(read_names(STARTER))
    assert 180 <= len(names) <= 260
    raw = [line.strip() for line in STARTER.read_text(encoding="utf-8").splitlines()]
    entries = [line for line in raw if line and not line.startswith("#")]
    assert len(entries) == len(names), "the starter list repeats a name"
    assert all(QID.match(n) or (len(n.split()) >= 1 and n[0].isupper()) for n in names)
    assert {"Barack Obama", "Joe Biden", "Kit Harington", "Rose Leslie", "Lin-Manuel Miranda"} <= set(names)
