"""``python -m sozy.api``: a bad setting stops it before it serves, with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from sozy.api.__main__ import main


@pytest.fixture(autouse=True)
def _no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config/sozy.toml here


def test_an_out_of_range_flag_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sozy.api: override: api.port must be at most 65535, got 70000")


def test_a_bad_or_unknown_variable_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOZY_API_MAX_UPLOADS", "0")
    assert main([]) == 2
    assert "SOZY_API_MAX_UPLOADS): api.max_uploads must be at least 1, got '0'" in capsys.readouterr().err
    monkeypatch.delenv("SOZY_API_MAX_UPLOADS")
    monkeypatch.setenv("SOZY_API_MAX_UPLAODS", "3")
    assert main([]) == 2
    assert "unknown setting api.max_uplaods" in capsys.readouterr().err
