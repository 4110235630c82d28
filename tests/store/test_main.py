"""``python -m sozy.store``: every flag explained, the commands doing their work, one-line failures."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sozy.config import Settings
from sozy.store import open_store
from sozy.store.__main__ import build_parser, main

from .conftest import make_record, people_vectors


def _make_store(data_dir: Path, faces: int = 40) -> None:
    async def fill() -> None:
        store = await open_store(Settings(data_dir=str(data_dir)))
        vectors, owner = people_vectors(np.random.default_rng(0), faces // 4, 4)
        await store.upsert(
            [make_record(v, i, name=f"p{owner[i]}", source=("pages", "urls")[i % 2]) for i, v in enumerate(vectors)]
        )
        await store.close()

    asyncio.run(fill())


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_flag_of_every_command_is_explained():
    parser = build_parser()
    for command in [parser, *_subparsers(parser).values()]:
        for action in command._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help and len(action.help) > 10, f"{command.prog} {action.option_strings} has no help"
    assert set(_subparsers(parser)) == {"stats", "optimize", "relabel", "delete", "takedowns", "lift", "copy"}


def test_help_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "sozy.store", "copy", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for flag in ("--from", "--to", "--batch", "--checkpoint", "--restart", "local:PATH"):
        assert flag in result.stdout


def test_stats_prints_faces_people_and_models(tmp_path, capsys):
    _make_store(tmp_path)
    assert main(["--data-dir", str(tmp_path), "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["faces"] == 40 and stats["people"] == 10 and stats["backend"] == "embedded"


def test_delete_takes_faces_down_and_reports_how_many(tmp_path, capsys):
    _make_store(tmp_path)
    assert main(["--data-dir", str(tmp_path), "delete", "--name", "p3", "--source", "pages"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "deleted 2 faces"
    assert main(["--data-dir", str(tmp_path), "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == 38


def test_takedowns_are_listed_and_lifted(tmp_path, capsys):
    _make_store(tmp_path)
    base = ["--data-dir", str(tmp_path)]
    assert main([*base, "delete", "--name", "p3", "--source", "pages"]) == 0
    assert "lift" in capsys.readouterr().out  # says how to undo it
    assert main([*base, "delete", "--name", "p4", "--allow-recrawl"]) == 0
    assert "taken down" not in capsys.readouterr().out
    assert main([*base, "takedowns", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [t["selector"] for t in listed] == [{"source": "pages", "person_id": "p3"}]
    assert main([*base, "takedowns"]) == 0
    out, err = capsys.readouterr()
    listing, count = out.splitlines()
    assert listing.split(None, 1)[1].strip() == "--source pages --person-id p3  (2 face vectors)"
    assert count == "1 takedowns" and err == ""

    assert main([*base, "lift", "--person-id", "p3"]) == 1  # not that exact selector
    assert "no takedown has exactly these fields" in capsys.readouterr().err
    assert main([*base, "lift", "--person-id", "p3", "--source", "pages"]) == 0
    capsys.readouterr()
    assert main([*base, "takedowns", "--json"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_copy_to_a_server_and_back(tmp_path, capsys):
    _make_store(tmp_path / "a", faces=24)
    server = f"local:{tmp_path / 'qdrant'}"
    base = ["--data-dir", str(tmp_path / "a")]
    assert main([*base, "copy", "--from", str(tmp_path / "a" / "store"), "--to", server, "--batch", "10"]) == 0
    out, err = capsys.readouterr()
    assert "copied 24 faces" in out
    assert "copied 24 of 24 faces (100%)" in err
    assert main([*base, "copy", "--from", server, "--to", str(tmp_path / "c" / "store")]) == 0
    capsys.readouterr()
    assert main(["--data-dir", str(tmp_path / "c"), "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == 24
    assert not list((tmp_path / "a").glob("store-copy-*.json"))  # finished copies leave no checkpoint


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["stats"], "there is no face store at"),
        (["copy", "--from", "nowhere", "--to", "local::memory:"], "there is no face store at"),
    ],
)
def test_commands_that_cannot_start_exit_1_with_one_line(tmp_path, capsys, args, reason):
    assert main(["--data-dir", str(tmp_path), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m sozy.store: ") and reason in err[0]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["delete"], "delete needs at least one of"),
        (["lift"], "lift needs the fields of a takedown"),
        (["--qdrant-url", "http://127.0.0.1:9", "optimize"], "optimize is for the embedded store"),
        (["copy", "--from", "x", "--to", "x"], "are the same store"),
        (["copy", "--from", "x", "--to", "y", "--batch", "0"], "--batch must be at least 1"),
    ],
)
def test_usage_errors_exit_2_as_argparse_does(tmp_path, capsys, args, reason):
    assert main(["--data-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m sozy.store: error: ") and reason in err[0]


def test_a_bad_command_line_exits_2():
    with pytest.raises(SystemExit) as exit_:
        main(["copy", "--from", "x"])
    assert exit_.value.code == 2


def test_the_server_flag_is_qdrant_url_as_elsewhere_and_url_still_works(tmp_path, capsys):
    parser = build_parser()
    assert parser.parse_args(["--qdrant-url", "http://q:6333", "stats"]).qdrant_url == "http://q:6333"
    assert parser.parse_args(["--url", "http://q:6333", "stats"]).qdrant_url == "http://q:6333"
    usage = parser.format_help()
    assert "--qdrant-url" in usage and "--url " not in usage and "exit codes:" in usage
    # The old spelling reaches the server setting: optimize refuses a server either way.
    assert main(["--data-dir", str(tmp_path), "--url", "http://127.0.0.1:9", "optimize"]) == 2
    assert "optimize is for the embedded store" in capsys.readouterr().err


def test_stats_after_a_small_crawl_explain_why_nothing_is_indexed(tmp_path, capsys):
    _make_store(tmp_path)  # closed as a crawl closes it: 40 faces, far below the index threshold
    assert main(["--data-dir", str(tmp_path), "stats"]) == 0
    indexed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("indexed:"))
    assert "0 of 40 faces in the search index; the other 40 are searched exactly" in indexed


def test_relabel_reports_what_it_changed_and_a_second_run_changes_nothing(tmp_path, capsys):
    _make_store(tmp_path)
    base = ["--data-dir", str(tmp_path)]
    assert main([*base, "relabel"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("relabelled 40 faces of 10 people") and "0 taken from a person" in first
    assert main([*base, "relabel"]) == 0
    assert "0 given an identity, 0 taken from a person they do not look like, 0 unnamed faces attached, 0 renamed" in (
        capsys.readouterr().out
    )
