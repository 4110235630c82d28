"""Print the ``[project] dependencies`` of a pyproject.toml, one per line.

The Dockerfiles install Sozy's dependencies in their own layer (reused while
only Sozy's source changes), and the GPU image must leave out ``dlib-bin``:
it installs a CUDA build of dlib instead, and both provide the ``dlib``
module, so ``dlib-bin`` installed after it would silently replace the GPU
build with a CPU one.

    python pyproject_deps.py pyproject.toml > requirements.txt
    python pyproject_deps.py pyproject.toml --exclude dlib-bin > requirements.txt
    python pyproject_deps.py pyproject.toml --extra ray > requirements.txt   # and an extra's (sozy[ray])

Standard library only: it runs in bare Python images before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

# PEP 508: a requirement starts with its project name.
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def normalize(name: str) -> str:
    """PEP 503 normal form: ``Dlib_Bin`` and ``dlib.bin`` both become ``dlib-bin``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The normalized project name at the start of a PEP 508 requirement string."""
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalize(match.group(1))


def dependencies(pyproject: Path, exclude: Iterable[str] = (), extras: Iterable[str] = ()) -> list[str]:
    """The project's dependencies and its ``extras``' (in file order), without the excluded names.

    Raises ``ValueError`` when an excluded name is not a dependency at all (a
    typo there would otherwise let the very package it meant to drop through),
    or an extra is not declared.
    """
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data.get("project", {})
    declared = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"--extra {extra}: {pyproject} declares no such extra ({', '.join(sorted(optional))})")
        declared += [r for r in optional[extra] if r not in declared]
    dropped = {normalize(name) for name in exclude}
    unknown = dropped - {requirement_name(r) for r in declared}
    if unknown:
        raise ValueError(f"--exclude names no dependency of {pyproject}: {', '.join(sorted(unknown))}")
    return [r for r in declared if requirement_name(r) not in dropped]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path, help="path to pyproject.toml")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="NAME", help="leave this project out (repeatable)"
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME",
        help="also this optional extra's dependencies (repeatable; empty: none)",
    )
    args = parser.parse_args(argv)
    try:
        lines = dependencies(args.pyproject, args.exclude, [e for e in args.extra if e])
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"pyproject_deps: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
