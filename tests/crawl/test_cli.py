"""``python -m sozy.crawl``: --help, and a clear one-line error with its exit code when a crawl cannot start."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sozy.config import load_settings
from sozy.crawl.__main__ import build_parser, main
from sozy.crawl.state import CrawlState
from sozy.store import open_store


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """main() configures the root logger for a terminal; give pytest its handlers back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def photos_list(tmp_path: Path) -> Path:
    path = tmp_path / "photos.txt"
    path.write_text("http://127.0.0.1:9/a.jpg\n")
    return path


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    flags = {opt for action in build_parser()._actions for opt in action.option_strings if opt.startswith("--")}
    for flag in flags - {"--help"}:
        assert flag in text, flag
    # Every flag has a sentence of help, not just its name.
    for action in build_parser()._actions:
        if action.option_strings and action.option_strings[0] != "-h":
            assert action.help and len(action.help) > 15, action.option_strings
    for required in (
        "--names",
        "--top",
        "--urls",
        "--pages",
        "--folders",
        "--shard",
        "--retry-failed",
        "--limit",
        "--data-dir",
        "--qdrant-url",
        "--concurrency",
        "--per-host",
        "--workers",
        "--device",
        "--summary",
        "--thumbnails",
        "--no-robots",
        "--config",
        "--log-level",
    ):
        assert required in flags
    assert "exit codes" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "no sources given"),
        (["--names", "/nonexistent/names.txt"], "--names: cannot read /nonexistent/names.txt"),
        (["--urls", "/nonexistent/list.csv"], "--urls: cannot read"),
        (["--folders", "/nonexistent/photos"], "is not a directory"),
        (["--pages", "ftp://example.org/"], "not an http(s) URL"),
        (["--top", "0"], "--top must be at least 1"),
        (["--top", "10", "--occupation", "astronaut-chef"], "unknown occupation"),
        (["--occupation", "actor", "--urls", "x.txt"], "--occupation needs --top"),
        (["--search-engine", "--pages", "http://example.org/"], "--search-engine looks names up"),
        (["--shard", "3/2", "--pages", "http://example.org/"], "shard 3/2"),
        (["--shard", "half", "--pages", "http://example.org/"], "--shard wants I/N"),
        (["--limit", "0", "--pages", "http://example.org/"], "--limit must be at least 1"),
        (["--concurrency", "0", "--pages", "http://example.org/"], "crawl.concurrency must be at least 1"),
        (["--workers", "-1", "--pages", "http://example.org/"], "engine.workers must be at least 0"),
        (["--config", "/nonexistent/sozy.toml", "--pages", "http://example.org/"], "config file not found"),
    ],
)
def test_cannot_start_exits_2_with_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main([*argv, "--data-dir", str(tmp_path / "data")], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sozy.crawl: error: "), err
    assert message in lines[0]
    assert not (tmp_path / "data").exists(), "nothing is created when the crawl cannot start"


def test_bad_config_values_exit_2(tmp_path: Path, photos_list: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sozy.toml"
    config.write_text("[crawl]\nper_host = 'many'\n")
    code, err = run_main(["--config", str(config), "--urls", str(photos_list)], capsys)
    assert code == 2 and "crawl.per_host" in err and len(err.strip().splitlines()) == 1
    config.write_text("[crawl\n")
    code, err = run_main(["--config", str(config), "--urls", str(photos_list)], capsys)
    assert code == 2 and str(config) in err
    config.write_text("[crawl]\nper_host = 0\n[engine]\nmax_side = -1\n")  # out of range: refused as it loads
    code, err = run_main(["--config", str(config), "--urls", str(photos_list)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "crawl.per_host must be at least 1, got 0" in err and "engine.max_side must be at least 1, got -1" in err


def test_a_csv_list_without_a_url_column_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "list.csv"
    bad.write_text("name,photo\nAnn,http://example.org/a.jpg\n")
    code, err = run_main(["--urls", str(bad), "--data-dir", str(tmp_path / "data"), "--no-progress"], capsys)
    assert code == 2
    assert re.search(r"--urls: .*no 'url' column", err)


def test_a_state_in_use_exits_3(tmp_path: Path, photos_list: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with CrawlState(data / "crawl.sqlite"):
        code, err = run_main(["--urls", str(photos_list), "--data-dir", str(data), "--no-progress"], capsys)
    assert code == 3
    assert "in use by another crawl" in err and err.strip().count("\n") == 0


async def _hold_store(data: Path):
    return await open_store(load_settings(environ={}, overrides={"data_dir": str(data)}))


def test_a_store_in_use_exits_3(tmp_path: Path, photos_list: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    data = tmp_path / "data"
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(_hold_store(data))
    try:
        code, err = run_main(["--urls", str(photos_list), "--data-dir", str(data), "--no-progress"], capsys)
    finally:
        loop.run_until_complete(store.close(optimize=False))
        loop.close()
    assert code == 3
    assert "in use by another process" in err and err.strip().count("\n") == 0
