"""docker-compose.yml and deploy/docker-compose.cluster.yml, checked without a Docker engine.

Each file must pass the Compose Specification schema and the reference checks
(tests/deploy/compose_check.py), and then Sozy's own rules: commands are real
Sozy entry points with real flags, SOZY_* variables are settings sozy.config
accepts, the API waits for a healthy Qdrant, Qdrant's healthcheck works in an
image without curl or wget, images are pinned, the GPU profile asks for GPUs.
The mutation tests at the end break a copy of a file and expect the check to say so.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from sozy.config import ConfigError, Settings, load_settings
from tests.deploy.compose_check import (
    ComposeFile,
    InterpolationError,
    command_line,
    dependencies,
    environment,
    load,
    problems,
    published_ports,
    python_module,
    volume_mounts,
)

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "docker-compose.yml"
CLUSTER = REPO / "deploy" / "docker-compose.cluster.yml"
COMPOSE_FILES = [MAIN, CLUSTER]
ENV = {"QDRANT_API_KEY": "test-qdrant-key"}
QDRANT_IMAGE = "qdrant/qdrant"


def _load(path: Path) -> ComposeFile:
    return load(path, ENV)


def _ids(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _qdrant_services(compose: ComposeFile) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose.services.items() if str(s.get("image", "")).startswith(QDRANT_IMAGE + ":")}


def _sozy_services(compose: ComposeFile) -> dict[str, dict[str, Any]]:
    """Services running a Sozy module (python -m sozy.*)."""
    return {
        n: s
        for n, s in compose.services.items()
        if (module := python_module(command_line(s))) and module.startswith("sozy.")
    }


def _settings(service: dict[str, Any], tmp_path: Path) -> Settings:
    """What sozy.config makes of a service's SOZY_* environment (no config file)."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    sozy_env = {k: v for k, v in environment(service).items() if k.startswith("SOZY_")}
    return load_settings(path=empty, environ=sozy_env)


# -- the files as they are -----------------------------------------------------------


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_valid_against_the_compose_schema_and_references(path: Path) -> None:
    assert problems(_load(path)) == []


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_refuses_to_start_without_a_qdrant_api_key(path: Path) -> None:
    with pytest.raises(InterpolationError, match="QDRANT_API_KEY"):
        load(path, {})
    with pytest.raises(InterpolationError, match="QDRANT_API_KEY"):
        load(path, {"QDRANT_API_KEY": ""})


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_qdrant_and_sozy_share_one_api_key(path: Path, tmp_path: Path) -> None:
    compose = _load(path)
    for name, service in _qdrant_services(compose).items():
        assert environment(service)["QDRANT__SERVICE__API_KEY"] == ENV["QDRANT_API_KEY"], name
    for name, service in _sozy_services(compose).items():
        assert _settings(service, tmp_path).store.api_key == ENV["QDRANT_API_KEY"], name


@functools.cache
def _help(module: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, f"python -m {module} --help failed:\n{done.stderr}"
    return done.stdout


def entry_point_problems(compose: ComposeFile) -> list[str]:
    """Each `python -m sozy.X` must import, have main(), and know every --flag it is given."""
    found: list[str] = []
    for name, service in compose.services.items():
        argv = command_line(service)
        module = python_module(argv)
        if module is None:
            if "build" in service:  # Sozy's own images run nothing else
                found.append(f"services.{name}: runs {argv!r}, not `python -m sozy.<module>`")
            continue
        spec = importlib.util.find_spec(module) if module.startswith("sozy.") else None
        if spec is None:
            found.append(f"services.{name}: no module {module!r}")
            continue
        # `python -m package` runs package/__main__.py.
        runnable = module + ".__main__" if spec.submodule_search_locations is not None else module
        if importlib.util.find_spec(runnable) is None:
            found.append(f"services.{name}: {module} cannot run with `python -m` (no {runnable})")
            continue
        main_module = importlib.import_module(runnable)
        if not callable(getattr(main_module, "main", None)):
            found.append(f"services.{name}: {module} has no main()")
            continue
        help_text = _help(module)
        for flag in (a.split("=", 1)[0] for a in argv[3:] if a.startswith("--")):
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text):
                found.append(f"services.{name}: `python -m {module}` has no option {flag}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_every_command_is_a_real_sozy_entry_point(path: Path) -> None:
    compose = _load(path)
    assert _sozy_services(compose), "no service runs Sozy"
    assert entry_point_problems(compose) == []


def sozy_setting_problems(compose: ComposeFile, tmp_path: Path) -> list[str]:
    found = []
    for name, service in _sozy_services(compose).items():
        try:
            _settings(service, tmp_path)
        except ConfigError as exc:
            found.append(f"services.{name}: {exc}")
    return found


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_every_sozy_variable_is_a_setting(path: Path, tmp_path: Path) -> None:
    compose = _load(path)
    assert sozy_setting_problems(compose, tmp_path) == []


def store_url_problems(compose: ComposeFile, tmp_path: Path) -> list[str]:
    """SOZY_STORE_URL must name a Qdrant service of this file, on Qdrant's REST port."""
    found = []
    qdrant = _qdrant_services(compose)
    for name, service in _sozy_services(compose).items():
        url = urlsplit(_settings(service, tmp_path).store.url)
        if url.scheme != "http" or url.hostname not in qdrant or url.port != 6333:
            found.append(f"services.{name}: SOZY_STORE_URL {url.geturl()!r} is not http://<qdrant service>:6333")
    return found


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_sozy_talks_to_a_qdrant_service_of_the_same_file(path: Path, tmp_path: Path) -> None:
    assert store_url_problems(_load(path), tmp_path) == []


def api_wait_problems(compose: ComposeFile) -> list[str]:
    """The API starts only once every Qdrant node reports healthy."""
    api = compose.services.get("api")
    if api is None:
        return ["no api service"]
    waits = dependencies(api)
    return [
        f"services.api.depends_on: {node} must be condition: service_healthy, not {waits.get(node)!r}"
        for node in _qdrant_services(compose)
        if waits.get(node) != "service_healthy"
    ]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_api_waits_for_healthy_qdrant(path: Path) -> None:
    assert api_wait_problems(_load(path)) == []


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_api_port_agrees_with_its_setting_its_healthcheck_and_its_image(path: Path, tmp_path: Path) -> None:
    api = _load(path).services["api"]
    port = _settings(api, tmp_path).api.port
    assert port in published_ports(api)
    assert api["healthcheck"]["test"] == ["CMD", "python", "/opt/sozy/healthcheck.py"]
    # The image puts the script there and EXPOSEs the same port.
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "COPY deploy/healthcheck.py /opt/sozy/healthcheck.py" in dockerfile
    assert re.search(rf"^EXPOSE {port}$", dockerfile, re.MULTILINE)


def qdrant_healthcheck_problems(compose: ComposeFile) -> list[str]:
    """The qdrant image has bash but no curl/wget/nc, and its /bin/sh (dash) has no /dev/tcp."""
    found = []
    for name, service in _qdrant_services(compose).items():
        test = (service.get("healthcheck") or {}).get("test")
        if not isinstance(test, list) or test[:3] != ["CMD", "bash", "-c"]:
            found.append(f"services.{name}.healthcheck: must be [CMD, bash, -c, ...], is {test!r}")
            continue
        script = " ".join(test[3:])
        for tool in ("curl", "wget", "nc ", "python"):
            if tool in script:
                found.append(f"services.{name}.healthcheck: {tool.strip()} is not in the qdrant image")
        if "/readyz" not in script:
            found.append(f"services.{name}.healthcheck: should ask /readyz (no API key needed)")
    return found


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_qdrant_healthcheck_uses_only_what_the_image_has(path: Path) -> None:
    compose = _load(path)
    assert _qdrant_services(compose)
    assert qdrant_healthcheck_problems(compose) == []


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_qdrant_keeps_its_data_in_named_volumes_and_mounts_our_config(path: Path) -> None:
    compose = _load(path)
    storage_volumes = []
    for name, service in _qdrant_services(compose).items():
        mounts = {m["target"]: m for m in volume_mounts(service)}
        assert mounts["/qdrant/storage"]["type"] == "volume", name
        storage_volumes.append(mounts["/qdrant/storage"]["source"])
        config = mounts["/qdrant/config/production.yaml"]
        assert config["type"] == "bind" and config["read_only"], name
        assert (compose.project_dir / config["source"]).resolve() == REPO / "deploy" / "qdrant" / "production.yaml"
    assert len(set(storage_volumes)) == len(storage_volumes), "nodes must not share a storage volume"


def test_qdrant_config_file_matches_the_published_ports() -> None:
    config = yaml.safe_load((REPO / "deploy" / "qdrant" / "production.yaml").read_text())
    assert config["service"]["http_port"] == 6333 and config["service"]["grpc_port"] == 6334
    assert config["telemetry_disabled"] is True
    assert config["storage"]["storage_path"] == "./storage" and config["storage"]["snapshots_path"] == "./snapshots"
    qdrant = _load(MAIN).services["qdrant"]
    assert set(published_ports(qdrant)) == {6333, 6334}


def test_qdrant_and_api_publish_on_loopback_unless_told_otherwise() -> None:
    compose = _load(MAIN)
    assert set(published_ports(compose.services["qdrant"]).values()) == {"127.0.0.1"}
    assert set(published_ports(compose.services["api"]).values()) == {"127.0.0.1"}
    opened = load(MAIN, {**ENV, "QDRANT_BIND": "0.0.0.0"})
    assert set(published_ports(opened.services["qdrant"]).values()) == {"0.0.0.0"}


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_crawls_are_one_shot_jobs_behind_a_profile(path: Path) -> None:
    compose = _load(path)
    crawls = {n: s for n, s in compose.services.items() if python_module(command_line(s)) == "sozy.crawl"}
    assert crawls
    for name, service in crawls.items():
        assert service.get("profiles"), f"{name} would start with `docker compose up`"
        assert service.get("restart") == "no", name
        mounts = {m["target"]: m for m in volume_mounts(service)}
        assert mounts["/input"]["read_only"] is True, name
        # The resumable crawl state lives in a volume, at SOZY_DATA_DIR.
        assert mounts[environment(service)["SOZY_DATA_DIR"]]["type"] == "volume", name


def input_file_problems(compose: ComposeFile) -> list[str]:
    """Files a service's default command reads from a bind mount must exist in its default source."""
    found = []
    for name, service in compose.services.items():
        binds = {m["target"]: m["source"] for m in volume_mounts(service) if m.get("type") == "bind"}
        for arg in command_line(service):
            for target, source in binds.items():
                if arg.startswith(target.rstrip("/") + "/"):
                    host = compose.project_dir / source / arg[len(target) :].lstrip("/")
                    if not host.is_file():
                        found.append(f"services.{name}: {arg} is {host}, which does not exist")
    return found


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_crawl_default_input_files_exist(path: Path) -> None:
    compose = _load(path)
    assert any(a.startswith("/input/") for s in compose.services.values() for a in command_line(s))
    assert input_file_problems(compose) == []
    raw = copy.deepcopy(compose.raw)
    raw["services"]["crawl"]["command"] = ["--names", "/input/celebrities.txt"]
    broken = ComposeFile(path=compose.path, raw=raw, doc=load_from_raw(raw))
    [problem] = input_file_problems(broken)
    assert problem.startswith("services.crawl: /input/celebrities.txt is ") and problem.endswith("does not exist")


def test_gpu_profile_runs_the_cuda_image_on_gpus(tmp_path: Path) -> None:
    compose = _load(MAIN)
    gpu = compose.services["crawl-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices
    settings = _settings(gpu, tmp_path)
    assert settings.engine.device == "cuda"
    assert settings.engine.workers == 0  # one worker per GPU
    assert python_module(command_line(gpu)) == "sozy.crawl"


def test_cluster_has_three_nodes_that_find_each_other() -> None:
    compose = _load(CLUSTER)
    nodes = _qdrant_services(compose)
    assert sorted(nodes) == ["qdrant-1", "qdrant-2", "qdrant-3"]
    for name, node in nodes.items():
        env = environment(node)
        assert env["QDRANT__CLUSTER__ENABLED"] == "true", name
        assert env["QDRANT__CLUSTER__P2P__PORT"] == "6335", name
        argv = command_line(node)
        assert argv[0] == "./qdrant", name
        # Each node announces the address the others reach it by: its service name.
        assert argv[argv.index("--uri") + 1] == f"http://{name}:6335", name
        assert 6335 not in published_ports(node), f"{name}: the p2p port must stay inside the network"
        if name == "qdrant-1":
            assert "--bootstrap" not in argv
        else:
            assert argv[argv.index("--bootstrap") + 1] == "http://qdrant-1:6335", name
            assert dependencies(node) == {"qdrant-1": "service_healthy"}, name
    assert set(published_ports(nodes["qdrant-1"])) == {6333, 6334}


def test_both_files_run_the_same_qdrant_version_and_healthcheck() -> None:
    main, cluster = _load(MAIN), _load(CLUSTER)
    images = {s["image"] for s in [*_qdrant_services(main).values(), *_qdrant_services(cluster).values()]}
    assert len(images) == 1, images
    checks = {
        str(s["healthcheck"]["test"]) for s in [*_qdrant_services(main).values(), *_qdrant_services(cluster).values()]
    }
    assert len(checks) == 1


def _interpolated_names(path: Path) -> set[str]:
    """Variables a compose file takes from the shell or .env (``${NAME...}``, ``$NAME``; not ``$$``)."""
    text = re.sub(r"\$\$", "", path.read_text())
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))


def _env_example() -> dict[str, str]:
    """deploy/env.example's assignments, commented-out ones included."""
    pairs = re.findall(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", (REPO / "deploy" / "env.example").read_text(), re.MULTILINE)
    return dict(pairs)


def test_env_example_names_only_what_compose_reads_and_sozy_accepts(tmp_path: Path) -> None:
    """docs/deploy.md loads .env into the shell (``set -a; . ./.env``) before running Sozy on the
    host, and sozy.config refuses any SOZY_* variable that is no setting: so every SOZY_* name
    compose reads must be a real setting, and everything else must not start with SOZY_."""
    read = set().union(*(_interpolated_names(p) for p in COMPOSE_FILES))
    example = _env_example()
    assert "QDRANT_API_KEY" in example
    assert set(example) <= read, f"env.example sets variables no compose file reads: {set(example) - read}"
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    sozy = {name: example.get(name) or "INFO" for name in read if name.startswith("SOZY_")}
    for name, value in sozy.items():
        load_settings(path=empty, environ={name: value})  # raises ConfigError for a non-setting


def test_a_compose_variable_that_is_no_setting_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(MAIN.read_text().replace("${API_BIND:-127.0.0.1}", "${SOZY_API_BIND:-127.0.0.1}"))
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    unknown = []
    for name in sorted(_interpolated_names(broken)):
        if not name.startswith("SOZY_"):
            continue
        try:
            load_settings(path=empty, environ={name: "x"})
        except ConfigError as exc:  # "x" is a bad value for some real settings: only unknown names count
            if "unknown setting" in str(exc):
                unknown.append((name, str(exc)))
    assert [name for name, _ in unknown] == ["SOZY_API_BIND"]
    assert "unknown setting api.bind" in unknown[0][1]


# -- with Docker Compose itself, where it is installed ----------------------------------


def _compose_command() -> list[str] | None:
    """`docker compose` (plugin), a `docker-compose` v2 binary, or $SOZY_TEST_COMPOSE_BIN."""
    if binary := os.environ.get("SOZY_TEST_COMPOSE_BIN"):
        return [binary]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if (binary := shutil.which("docker-compose")) and b"v2." in subprocess.run(
        [binary, "version"], capture_output=True
    ).stdout:
        return [binary]
    return None


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_docker_compose_config_accepts_the_file(path: Path, tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("Docker Compose v2 is not installed (set SOZY_TEST_COMPOSE_BIN to a docker-compose binary)")
    env_file = tmp_path / "test.env"
    env_file.write_text(f"QDRANT_API_KEY={ENV['QDRANT_API_KEY']}\n")
    done = subprocess.run(
        [*command, "-f", str(path), "--env-file", str(env_file), "--profile", "*", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # ... and rejects the same file with a dangling depends_on, like our check does.
    broken = copy.deepcopy(_load(path).raw)
    broken["services"]["api"]["depends_on"] = {"qdrnt": {"condition": "service_healthy"}}
    copy_path = path.parent / f".broken-{path.name}"
    try:
        copy_path.write_text(yaml.safe_dump(broken, sort_keys=False))
        done = subprocess.run(
            [*command, "-f", str(copy_path), "--env-file", str(env_file), "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        copy_path.unlink(missing_ok=True)
    assert done.returncode != 0 and "qdrnt" in done.stderr


# -- mutation sanity: a broken copy must be caught ------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _walk(doc: Any, path: str) -> tuple[Any, Any]:
    """The container holding the dotted ``path``, and the last key (an int in lists)."""
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node, int(last) if isinstance(node, list) else last


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node, key = _walk(doc, path)
        node[key] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node, key = _walk(doc, path)
        del node[key]

    return mutate


def _rename(path: str, old: str, new: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node = doc
        for key in path.split("."):
            node = node[key]
        node[new] = node.pop(old)

    return mutate


GENERIC_MUTATIONS: dict[str, Mutation] = {
    "misspelled service key": _rename("services.qdrant", "healthcheck", "helthcheck"),
    "depends_on names no service": _set("services.api.depends_on", {"qdrnt": {"condition": "service_healthy"}}),
    "depends_on without condition": _set("services.api.depends_on", {"qdrant": {"required": True}}),
    "unknown depends_on condition": _set("services.api.depends_on.qdrant.condition", "service_ready"),
    "GPU reservation without capabilities": _delete(
        "services.crawl-gpu.deploy.resources.reservations.devices.0.capabilities"
    ),
    "ports as a mapping": _set("services.api.ports", {"8000": 8000}),
    "undeclared named volume": _set("services.crawl.volumes.1", "crawl-state:/data"),
    "image on :latest": _set("services.qdrant.image", "qdrant/qdrant:latest"),
    "image without a tag": _set("services.qdrant.image", "qdrant/qdrant"),
    "missing Dockerfile": _set("services.api.build", {"context": ".", "dockerfile": "deploy/Dockerfile.cpu"}),
    "missing build context": _set("services.api.build", {"context": "./docker", "dockerfile": "Dockerfile"}),
    "missing mounted config file": _set("services.qdrant.volumes.2.source", "./deploy/qdrant/config.yaml"),
    "required env file missing": _set("services.api.env_file", ["./sozy.env"]),
    "healthcheck interval as a bare number": _set("services.qdrant.healthcheck.interval", 10),
}


@pytest.mark.parametrize("mutation", GENERIC_MUTATIONS.values(), ids=GENERIC_MUTATIONS.keys())
def test_generic_check_catches_a_broken_copy(mutation: Mutation) -> None:
    compose = _load(MAIN)
    raw = copy.deepcopy(compose.raw)
    mutation(raw)
    broken = ComposeFile(path=compose.path, raw=raw, doc=load_from_raw(raw))
    assert problems(broken), "the broken copy passed"


def load_from_raw(raw: dict[str, Any]) -> dict[str, Any]:
    from tests.deploy.compose_check import interpolate

    return interpolate(copy.deepcopy(raw), ENV)


SOZY_MUTATIONS: dict[str, tuple[Mutation, Callable[[ComposeFile, Path], list[str]]]] = {
    "api waits only for qdrant to start": (
        _set("services.api.depends_on.qdrant.condition", "service_started"),
        lambda c, _: api_wait_problems(c),
    ),
    "qdrant healthcheck with curl": (
        _set("services.qdrant.healthcheck.test", ["CMD-SHELL", "curl -f http://localhost:6333/readyz"]),
        lambda c, _: qdrant_healthcheck_problems(c),
    ),
    "qdrant healthcheck through sh": (
        _set("services.qdrant.healthcheck.test", ["CMD-SHELL", "exec 3<>/dev/tcp/127.0.0.1/6333"]),
        lambda c, _: qdrant_healthcheck_problems(c),
    ),
    "misspelled SOZY variable": (
        _rename("services.api.environment", "SOZY_API_PORT", "SOZY_API_PROT"),
        sozy_setting_problems,
    ),
    "SOZY variable of the wrong type": (
        _set("services.crawl-gpu.environment.SOZY_ENGINE_WORKERS", "all"),
        sozy_setting_problems,
    ),
    "store URL at a service that is not qdrant": (
        _set("services.api.environment.SOZY_STORE_URL", "http://qdrant-db:6333"),
        store_url_problems,
    ),
    "store URL at the gRPC port": (
        _set("services.api.environment.SOZY_STORE_URL", "http://qdrant:6334"),
        store_url_problems,
    ),
    "no such Sozy module": (
        _set("services.crawl.entrypoint", ["python", "-m", "sozy.crawler"]),
        lambda c, _: entry_point_problems(c),
    ),
    "our image running something else": (
        _set("services.api.command", ["uvicorn", "sozy.api:app"]),
        lambda c, _: entry_point_problems(c),
    ),
}


@pytest.mark.parametrize("case", SOZY_MUTATIONS.values(), ids=SOZY_MUTATIONS.keys())
def test_sozy_rules_catch_a_broken_copy(
    case: tuple[Mutation, Callable[[ComposeFile, Path], list[str]]], tmp_path: Path
) -> None:
    mutation, rule = case
    compose = _load(MAIN)
    assert rule(compose, tmp_path) == [], "the rule fails the real file already"
    raw = copy.deepcopy(compose.raw)
    # The x-sozy-env anchor is shared: give the api its own copy before changing it.
    for service in raw["services"].values():
        if isinstance(service.get("environment"), dict):
            service["environment"] = dict(service["environment"])
    mutation(raw)
    broken = ComposeFile(path=compose.path, raw=raw, doc=load_from_raw(raw))
    assert rule(broken, tmp_path), "the broken copy passed"


def test_flag_check_catches_an_option_the_cli_does_not_have() -> None:
    compose = _load(MAIN)
    raw = copy.deepcopy(compose.raw)
    raw["services"]["crawl"]["command"] = ["--names", "/input/names.txt", "--no-such-option"]
    broken = ComposeFile(path=compose.path, raw=raw, doc=load_from_raw(raw))
    assert any("--no-such-option" in p for p in entry_point_problems(broken))


# -- agreement with the store's code ----------------------------------------------------


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_ids)
def test_pinned_qdrant_is_one_sozy_and_its_client_support(path: Path) -> None:
    import importlib.metadata

    from sozy.store.server_setup import check_server_version

    for name, service in _qdrant_services(_load(path)).items():
        version = str(service["image"]).split(":", 1)[1].removeprefix("v")
        # Raises for a server too old for Sozy; notes a client more than one minor version away.
        assert check_server_version(version, importlib.metadata.version("qdrant-client")) == [], name


def test_cluster_file_states_the_collection_layout_the_store_creates() -> None:
    from sozy.store.server_setup import collection_layout

    nodes = len(_qdrant_services(_load(CLUSTER)))
    layout = collection_layout(nodes)
    assert layout["shard_number"] % nodes == 0
    text = CLUSTER.read_text()
    assert f"shard_number {layout['shard_number']}" in text
    assert f"replication_factor {layout['replication_factor']}" in text
    docs = (REPO / "docs" / "deploy.md").read_text()
    assert f"| `replication_factor` | {layout['replication_factor']} " in docs
    assert f"({layout['shard_number']} on {nodes} nodes)" in docs


RAY = REPO / "deploy" / "docker-compose.ray.yml"


def test_ray_file_is_valid_and_its_nodes_join_the_head() -> None:
    compose = _load(RAY)
    assert problems(compose) == []
    head = compose.services["ray-head"]
    assert command_line(head)[:3] == ["ray", "start", "--head"] and "--port=6379" in command_line(head)
    workers = {n: s for n, s in compose.services.items() if n != "ray-head"}
    assert set(workers) == {"ray-worker", "ray-worker-gpu"}
    for name, service in compose.services.items():
        # Every node runs an image with Ray in it (the ray extra), and its own copy of Sozy.
        assert service["build"]["args"] == {"SOZY_EXTRA": "ray"}, name
        assert int(str(service["shm_size"]).rstrip("gb")) >= 1, name
        if name != "ray-head":
            assert "--address=ray-head:6379" in command_line(service), name
            assert dependencies(service) == {"ray-head": "service_healthy"}, name
    gpu = compose.services["ray-worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in (
        gpu["deploy"]["resources"]["reservations"]["devices"]
    )
    # The driver runs on the head (a node of the cluster): the input and the state are there.
    mounts = {m["target"]: m for m in volume_mounts(head)}
    assert mounts["/input"]["read_only"] is True and mounts["/data"]["type"] == "volume"
    assert set(published_ports(head).values()) == {"127.0.0.1"}
