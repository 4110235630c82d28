"""docs/deploy.md, docs/fetch.md, docs/sources.md, docs/api.md and docs/crawl.md against the code they describe.

Every Sozy command line in them must parse with that command's own argument
parser (a flag in the wrong place or a renamed one fails here, not in a
user's terminal), and the dashboard section's payload table and index list
must be exactly what the store writes.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from sozy.records import Box, FaceRecord
from sozy.store.base import KEYWORD_FIELDS

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "docs" / name for name in ("deploy.md", "fetch.md", "sources.md", "api.md", "crawl.md")]

# `python -m sozy.X args` up to a closing backtick or the end of the line.
_PYTHON_M = re.compile(r"python -m (sozy\.(?:crawl|store|api))\b([^`\n]*)")
# `docker compose ... run --rm [--no-deps] [-e NAME=value ...] crawl ARGS`: ARGS go to sozy.crawl.
_COMPOSE_RUN = re.compile(r"run --rm (?:--no-deps )?(?:-e \S+ )*(?:crawl|crawl-gpu) ([^`\n]*)")


def _parser(module: str) -> Callable[[Sequence[str]], argparse.Namespace]:
    if module == "sozy.crawl":
        from sozy.crawl.__main__ import build_parser as crawl_parser

        return crawl_parser().parse_args
    if module == "sozy.store":
        from sozy.store.__main__ import build_parser as store_parser

        return store_parser().parse_args
    from sozy.api.__main__ import parse_args

    return parse_args


def documented_commands(text: str) -> list[tuple[str, list[str]]]:
    """(module, argv) for each Sozy command line in a Markdown text."""
    found = [(m.group(1), shlex.split(m.group(2), comments=True)) for m in _PYTHON_M.finditer(text)]
    found += [("sozy.crawl", shlex.split(m.group(1), comments=True)) for m in _COMPOSE_RUN.finditer(text)]
    return found


def parse_problem(module: str, argv: list[str]) -> str | None:
    """Why ``python -m module argv`` would be refused by its parser, or None."""
    try:
        _parser(module)(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):  # 0: --help
            return f"python -m {module} {shlex.join(argv)}: refused (exit {exc.code})"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_command_line_parses(doc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = documented_commands(doc.read_text())
    problems = [p for module, argv in commands if (p := parse_problem(module, argv))]
    assert problems == [], capsys.readouterr().err


def test_the_check_catches_a_flag_in_the_wrong_place(capsys: pytest.CaptureFixture[str]) -> None:
    # --url belongs to `sozy.store` itself, before the subcommand.
    [(module, argv)] = documented_commands("`python -m sozy.store stats --url http://q:6333`")
    assert parse_problem(module, argv) is not None
    assert parse_problem(module, ["--url", "http://q:6333", "stats"]) is None
    [(module, argv)] = documented_commands("docker compose --profile crawl run --rm crawl --nmes /input/names.txt")
    assert parse_problem(module, argv) is not None
    capsys.readouterr()


def _payload_table_fields(text: str) -> set[str]:
    section = text.split("## Inspect in the Qdrant dashboard", 1)[1].split("\n## ", 1)[0]
    fields: set[str] = set()
    for row in re.findall(r"^\| (`[^|]+`) \|", section, re.MULTILINE):
        fields.update(re.findall(r"`(\w+)`", row))
    return fields


def test_dashboard_section_lists_exactly_the_payload_fields_and_indexes() -> None:
    text = (REPO / "docs" / "deploy.md").read_text()
    record = FaceRecord(
        vector=np.zeros(128, dtype=np.float32),
        image_url="https://a/b.jpg",
        box=Box(0, 0, 1, 1),
        image_width=1,
        image_height=1,
        image_sha256="0" * 64,
        faces_in_image=1,
        source="urls",
        model="m",
    )
    assert _payload_table_fields(text) == set(record.payload())
    indexes = re.search(r"keyword indexes on (.+?)\.", text.replace("\n", " "))
    assert indexes is not None
    assert set(re.findall(r"`(\w+)`", indexes.group(1))) == set(KEYWORD_FIELDS)
