"""deploy/pyproject_deps.py: the requirement lists the Dockerfiles install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "pyproject_deps.py"
PYPROJECT = REPO / "pyproject.toml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30)


def declared() -> list[str]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]


def test_prints_every_dependency_in_order() -> None:
    done = run(str(PYPROJECT))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == declared()
    for line in done.stdout.splitlines():
        Requirement(line)  # pip reads the same lines


def test_gpu_list_leaves_out_dlib_bin_and_nothing_else() -> None:
    done = run(str(PYPROJECT), "--exclude", "dlib-bin")
    assert done.returncode == 0, done.stderr
    names = [canonicalize_name(Requirement(line).name) for line in done.stdout.splitlines()]
    assert "dlib-bin" not in names
    assert len(names) == len(declared()) - 1
    # The CPU image gets dlib from exactly this wheel.
    assert "dlib-bin" in [canonicalize_name(Requirement(r).name) for r in declared()]


def test_excluded_names_are_normalized(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n'
        'dependencies = ["Dlib_Bin>=20", "numpy>=1.26 ; python_version >= \'3.11\'", "zope.interface"]\n'
    )
    done = run(str(pyproject), "--exclude", "DLIB.bin", "--exclude", "zope-interface")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "numpy>=1.26 ; python_version >= '3.11'\n"


@pytest.mark.parametrize("args", [["--exclude", "dlib-bim"], []], ids=["typo in --exclude", "plain"])
def test_a_typo_in_exclude_is_an_error_not_a_silent_pass(args: list[str], tmp_path: Path) -> None:
    if not args:  # the control: the same file passes without the typo
        assert run(str(PYPROJECT)).returncode == 0
        return
    done = run(str(PYPROJECT), *args)
    assert done.returncode == 2
    assert "dlib-bim" in done.stderr and done.stdout == ""


def test_missing_or_broken_pyproject_is_an_error(tmp_path: Path) -> None:
    assert run(str(tmp_path / "nope.toml")).returncode == 2
    broken = tmp_path / "pyproject.toml"
    broken.write_text("[project\n")
    done = run(str(broken))
    assert done.returncode == 2 and "pyproject_deps:" in done.stderr


def test_an_extra_adds_its_dependencies_and_an_empty_one_nothing() -> None:
    done = run(str(PYPROJECT), "--extra", "ray")
    assert done.returncode == 0, done.stderr
    extra = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["ray"]
    assert done.stdout.splitlines() == declared() + extra
    assert run(str(PYPROJECT), "--extra", "").stdout.splitlines() == declared()  # the images' default
    wrong = run(str(PYPROJECT), "--extra", "rya")
    assert wrong.returncode == 2 and "rya" in wrong.stderr and wrong.stdout == ""
