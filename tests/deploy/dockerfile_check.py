"""Read a Dockerfile into stages with BuildKit's own parser, and list what is wrong with it.

Nothing can be built where the tests run, so the Dockerfiles are checked
statically: ``FROM`` images resolved through ``ARG`` defaults and stage names,
the user each final stage runs as, and every file ``COPY`` takes from the
build context, which must exist and must not be cut by ``.dockerignore``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile

from tests.deploy.compose_check import image_problem

_ARG_REF = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
ROOT_USERS = {"root", "0"}


@dataclass
class Stage:
    """One ``FROM`` section: its base (resolved), its name, its instructions and ARG values."""

    index: int
    base: str
    name: str | None
    commands: list[dockerfile.Command] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)

    def instructions(self, cmd: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd == cmd.upper()]

    def runs(self) -> str:
        """All RUN lines of the stage, joined (for "does it install X" checks)."""
        return "\n".join(" ".join(c.value) for c in self.instructions("RUN"))


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, ref: str) -> Stage | None:
        """A stage by name or index, as ``FROM`` and ``COPY --from`` refer to it."""
        for stage in self.stages:
            if stage.name == ref or str(stage.index) == ref:
                return stage
        return None

    def external_base(self, stage: Stage) -> str:
        """The registry image a stage finally builds on, following stage names."""
        seen = set()
        while (parent := self.stage(stage.base)) is not None and parent.index < stage.index:
            if parent.index in seen:
                break
            seen.add(parent.index)
            stage = parent
        return stage.base

    def user(self, stage: Stage) -> str:
        """Who the stage's processes run as: its last USER, else its parent stage's, else root."""
        users = stage.instructions("USER")
        if users:
            return substitute(users[-1].value[0], stage.args).split(":")[0]
        parent = self.stage(stage.base)
        if parent is not None and parent.index < stage.index:
            return self.user(parent)
        return "root"


def substitute(text: str, args: Mapping[str, str]) -> str:
    """Expand ``$NAME``, ``${NAME}`` and ``${NAME:-default}`` from ARG values."""

    def value(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("named")
        if name in args:
            return args[name]
        return match.group("default") or ""

    return _ARG_REF.sub(value, text)


def _arg(command: dockerfile.Command) -> tuple[str, str | None]:
    name, eq, default = command.value[0].partition("=")
    return name, default if eq else None


def parse(path: Path) -> Dockerfile:
    commands = dockerfile.parse_file(str(path))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for command in commands:
        if command.cmd == "FROM":
            value = [v for v in command.value]
            name = value[2] if len(value) >= 3 and value[1].upper() == "AS" else None
            stages.append(Stage(index=len(stages), base=substitute(value[0], global_args), name=name))
        elif not stages:
            if command.cmd == "ARG":
                name, default = _arg(command)
                global_args[name] = default or ""
        else:
            stage = stages[-1]
            stage.commands.append(command)
            if command.cmd == "ARG":
                name, default = _arg(command)
                stage.args[name] = default if default is not None else global_args.get(name, "")
    return Dockerfile(path=path, stages=stages)


# -- .dockerignore -----------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out[-1] = "(?:.*/)?"
                i += 1
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + "$")


def ignore_rules(context: Path, text: str | None = None) -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) for each line of ``.dockerignore`` (or of ``text``), in order."""
    if text is None:
        ignore_file = context / ".dockerignore"
        text = ignore_file.read_text() if ignore_file.is_file() else ""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line[1:] if exception else line
        rules.append((exception, _pattern_regex(pattern.strip().strip("/").removeprefix("./"))))
    return rules


def in_context(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``.dockerignore`` lets this file into the build context.

    As Docker does: the last matching line wins, and a pattern that matches a
    folder also matches everything inside it.
    """
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for exception, regex in rules:
        if any(regex.match(p) for p in prefixes):
            included = exception
    return included


def tracked_files(root: Path, under: str) -> list[str]:
    """Files git tracks under a path (what a fresh clone's build context holds)."""
    done = subprocess.run(["git", "ls-files", "--", under], cwd=root, capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line]


def copy_sources(command: dockerfile.Command) -> list[str]:
    """The build-context sources of a COPY/ADD (none when it copies ``--from`` a stage)."""
    if any(flag.startswith("--from=") for flag in command.flags):
        return []
    return list(command.value[:-1])


def problems(parsed: Dockerfile, context: Path, dockerignore: str | None = None) -> list[str]:
    """Unpinned bases, a root final stage, COPY from nowhere or from outside the context.

    ``dockerignore`` replaces the context's ``.dockerignore`` text (to check a variant).
    """
    found: list[str] = []
    if not parsed.stages:
        return [f"{parsed.path.name}: no FROM"]
    rules = ignore_rules(context, dockerignore)
    for stage in parsed.stages:
        where = f"{parsed.path.name} stage {stage.name or stage.index}"
        if parsed.stage(stage.base) is None and (why := image_problem(stage.base)):
            found.append(f"{where}: FROM {why}")
        for command in stage.instructions("COPY") + stage.instructions("ADD"):
            for flag in command.flags:
                if flag.startswith("--from=") and (source := parsed.stage(flag[7:])) is None:
                    found.append(f"{where}: COPY {flag}: no such stage")
                elif flag.startswith("--from=") and source is not None and source.index >= stage.index:
                    found.append(f"{where}: COPY {flag}: a stage can only copy from an earlier one")
            for source in copy_sources(command):
                path = context / source
                if not path.exists():
                    found.append(f"{where}: COPY {source}: not in the build context")
                    continue
                files = tracked_files(context, source) if path.is_dir() else [source]
                if not files:
                    found.append(f"{where}: COPY {source}: git tracks nothing there")
                cut = [f for f in files if not in_context(f, rules)]
                if cut:
                    found.append(f"{where}: COPY {source}: .dockerignore leaves out {cut[:3]}")
    final_user = parsed.user(parsed.final)
    if final_user in ROOT_USERS:
        found.append(f"{parsed.path.name}: the final stage runs as {final_user}; add a USER")
    return found


def installs(stage: Stage, packages: Iterable[str]) -> list[str]:
    """Which of these apt packages the stage's RUN lines install."""
    runs = stage.runs()
    return [p for p in packages if re.search(rf"(?<![\w.+-]){re.escape(p)}(?![\w.+-])", runs)]
