"""Read a compose file the way Docker Compose does, and list what is wrong with it.

No Docker engine runs where the tests do, so the compose files are checked
statically: YAML (with anchors and merge keys), ``${...}`` interpolation, the
Compose Specification's JSON schema (vendored in ``schema/``), then the
references the schema cannot see: services named in ``depends_on``, named
volumes, files and folders on the host, pinned images.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).parent / "schema" / "compose-spec.json"

# Compose interpolation: $$ (a literal $), ${NAME}, ${NAME:-default},
# ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt}, $NAME.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A ``${NAME:?message}`` variable is missing, as Compose would refuse it."""


@dataclass(frozen=True)
class ComposeFile:
    """A compose file as written (``raw``) and as Compose sees it (``doc``)."""

    path: Path
    raw: dict[str, Any]
    doc: dict[str, Any]

    @property
    def project_dir(self) -> Path:
        """Relative paths in a compose file are relative to its folder."""
        return self.path.parent

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.doc.get("services") or {}


def interpolate_string(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if (value is None if op == "-" else unset_or_empty) else value  # type: ignore[return-value]
        if op in ("?", ":?"):
            if value is None if op == "?" else unset_or_empty:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return value  # type: ignore[return-value]
        if op in ("+", ":+"):
            return "" if (value is None if op == "+" else unset_or_empty) else arg
        return value or ""

    return _VARIABLE.sub(substitute, text)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string in a parsed compose document (keys stay as written)."""
    if isinstance(value, str):
        return interpolate_string(value, env)
    if isinstance(value, Mapping):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value


def load(path: Path, env: Mapping[str, str]) -> ComposeFile:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return ComposeFile(path=path, raw=raw, doc=interpolate(copy.deepcopy(raw), env))


@cache
def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def schema_errors(doc: Mapping[str, Any]) -> list[str]:
    """Every violation of the Compose Specification schema, as ``path: message``."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]


def dependencies(service: Mapping[str, Any]) -> dict[str, str]:
    """``depends_on`` as {service: condition}; the short list form means service_started."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {name: (spec or {}).get("condition", "") for name, spec in depends.items()}


def volume_mounts(service: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Each volume of a service in long form (type, source, target, read_only)."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, Mapping):
            yield dict(volume)
            continue
        parts = str(volume).split(":")
        if len(parts) == 1:
            yield {"type": "volume", "source": None, "target": parts[0]}
            continue
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        yield {"type": kind, "source": source, "target": target, "read_only": "ro" in parts[2:]}


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it is."""
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return f"image {image!r} has no tag: pin a version"
    if tag == "latest":
        return f"image {image!r} uses :latest: pin a version"
    return None


def _env_files(service: Mapping[str, Any]) -> Iterator[tuple[str, bool]]:
    env_file = service.get("env_file")
    entries = [env_file] if isinstance(env_file, str) else (env_file or [])
    for entry in entries:
        if isinstance(entry, str):
            yield entry, True
        else:
            required = entry.get("required", True)
            yield entry["path"], required not in (False, "false")


def reference_errors(compose: ComposeFile) -> list[str]:
    """What the schema cannot see: dangling names, missing files, unpinned images."""
    problems: list[str] = []
    services = compose.services
    declared_volumes = set((compose.doc.get("volumes") or {}).keys())
    raw_services = compose.raw.get("services") or {}
    for name, service in services.items():
        where = f"services.{name}"
        for dependency in dependencies(service):
            if dependency not in services:
                problems.append(f"{where}.depends_on: no service named {dependency!r}")
        if "image" not in service and "build" not in service:
            problems.append(f"{where}: neither image nor build")
        if "image" in service and (why := image_problem(str(service["image"]))):
            problems.append(f"{where}.image: {why}")
        build = service.get("build")
        if build is not None:
            spec = {"context": build} if isinstance(build, str) else build
            context = compose.project_dir / spec.get("context", ".")
            if not context.is_dir():
                problems.append(f"{where}.build.context: {context} is not a folder")
            elif "dockerfile_inline" not in spec:
                dockerfile = context / spec.get("dockerfile", "Dockerfile")
                if not dockerfile.is_file():
                    problems.append(f"{where}.build.dockerfile: {dockerfile} does not exist")
        for mount in volume_mounts(service):
            if mount.get("type") == "volume" and mount.get("source") and mount["source"] not in declared_volumes:
                problems.append(f"{where}.volumes: named volume {mount['source']!r} is not declared under volumes:")
        # Host paths written in the file must exist; a ${VARIABLE} path is the
        # user's own data (e.g. the crawl input folder), checked when it is run.
        for mount in volume_mounts(raw_services.get(name) or {}):
            source = str(mount.get("source") or "")
            if mount.get("type") == "bind" and "$" not in source and not (compose.project_dir / source).exists():
                problems.append(f"{where}.volumes: bind source {source!r} does not exist")
        for path, required in _env_files(raw_services.get(name) or {}):
            if required and "$" not in path and not (compose.project_dir / path).is_file():
                problems.append(f"{where}.env_file: {path!r} does not exist (mark it required: false?)")
    return problems


def problems(compose: ComposeFile) -> list[str]:
    """Schema violations, then reference errors; empty when Compose would accept the file."""
    return schema_errors(compose.doc) + reference_errors(compose)


def command_line(service: Mapping[str, Any]) -> list[str]:
    """The container's argv as far as the compose file says: entrypoint + command."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if value is None:
            continue
        parts += value.split() if isinstance(value, str) else [str(v) for v in value]
    return parts


def python_module(argv: list[str]) -> str | None:
    """``sozy.api`` from ``["python", "-m", "sozy.api", ...]``, else None."""
    if len(argv) >= 3 and argv[0] in ("python", "python3") and argv[1] == "-m":
        return argv[2]
    return None


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict (list form ``NAME=value`` too)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}
    return {key: "" if value is None else str(value) for key, value in env.items()}


def published_ports(service: Mapping[str, Any]) -> dict[int, str]:
    """{container port: host address} for the short ``[ip:]host:container`` form and long form."""
    ports: dict[int, str] = {}
    for port in service.get("ports") or []:
        if isinstance(port, Mapping):
            ports[int(port["target"])] = str(port.get("host_ip", "0.0.0.0"))
            continue
        fields = str(port).split(":")
        target = int(fields[-1].split("/")[0])
        ports[target] = fields[0] if len(fields) == 3 else "0.0.0.0"
    return ports
