"""The containers' healthchecks, run for real against local HTTP servers.

Qdrant's is the bash command from docker-compose.yml (after Compose's ``$$``
unescaping), run by bash as Docker would run it in the qdrant image; the
API's is deploy/healthcheck.py. Each must pass on a 200 from the right path
and fail on errors, wrong paths and closed ports.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.deploy.compose_check import load

REPO = Path(__file__).resolve().parents[2]
HEALTHCHECK_SCRIPT = REPO / "deploy" / "healthcheck.py"
ENV = {"QDRANT_API_KEY": "k"}


@asynccontextmanager
async def http_server(routes: dict[str, int]) -> AsyncIterator[tuple[int, list[web.Request]]]:
    """127.0.0.1 on an ephemeral port; answers each path with its status, else 404."""
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        status = routes.get(request.path, 404)
        return web.Response(status=status, text="all shards are ready" if status == 200 else "no")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, seen
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run(argv: list[str], env: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={"PATH": os.environ["PATH"], **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), timeout=20)


def qdrant_check(path: Path, service: str) -> list[str]:
    """The healthcheck argv of a qdrant service, as Docker would exec it."""
    test = load(path, ENV).services[service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return test[1:]


QDRANT_CHECKS = {
    "compose qdrant": lambda: qdrant_check(REPO / "docker-compose.yml", "qdrant"),
    "cluster qdrant-2": lambda: qdrant_check(REPO / "deploy" / "docker-compose.cluster.yml", "qdrant-2"),
}

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


@needs_bash
@pytest.mark.parametrize("argv", QDRANT_CHECKS.values(), ids=QDRANT_CHECKS.keys())
async def test_qdrant_healthcheck_passes_when_readyz_answers_200(argv: Callable[[], list[str]]) -> None:
    async with http_server({"/readyz": 200}) as (port, seen):
        assert await run(argv(), {"QDRANT__SERVICE__HTTP_PORT": str(port)}) == 0
    assert [r.path for r in seen] == ["/readyz"]
    assert "api-key" not in seen[0].headers  # /readyz is open; the key stays out of the check


@needs_bash
@pytest.mark.parametrize("status", [503, 500, 401])
async def test_qdrant_healthcheck_fails_when_not_ready(status: int) -> None:
    argv = QDRANT_CHECKS["compose qdrant"]()
    async with http_server({"/readyz": status, "/healthz": 200}) as (port, _):
        assert await run(argv, {"QDRANT__SERVICE__HTTP_PORT": str(port)}) != 0


@needs_bash
async def test_qdrant_healthcheck_fails_when_nothing_listens() -> None:
    argv = QDRANT_CHECKS["compose qdrant"]()
    assert await run(argv, {"QDRANT__SERVICE__HTTP_PORT": str(closed_port())}) != 0


@needs_bash
async def test_qdrant_healthcheck_defaults_to_port_6333() -> None:
    argv = QDRANT_CHECKS["compose qdrant"]()
    assert "/dev/tcp/127.0.0.1/${QDRANT__SERVICE__HTTP_PORT:-6333}" in argv[-1]


async def test_api_healthcheck_passes_on_2xx_from_healthz() -> None:
    async with http_server({"/healthz": 200}) as (port, seen):
        assert await run([sys.executable, str(HEALTHCHECK_SCRIPT)], {"SOZY_API_PORT": str(port)}) == 0
    assert [r.path for r in seen] == ["/healthz"]


@pytest.mark.parametrize("routes", [{"/healthz": 500}, {"/healthz": 503}, {"/": 200}], ids=["500", "503", "404"])
async def test_api_healthcheck_fails_on_errors(routes: dict[str, int]) -> None:
    async with http_server(routes) as (port, _):
        assert await run([sys.executable, str(HEALTHCHECK_SCRIPT)], {"SOZY_API_PORT": str(port)}) == 1


async def test_api_healthcheck_fails_when_nothing_listens_or_the_port_is_junk() -> None:
    assert await run([sys.executable, str(HEALTHCHECK_SCRIPT)], {"SOZY_API_PORT": str(closed_port())}) == 1
    assert await run([sys.executable, str(HEALTHCHECK_SCRIPT)], {"SOZY_API_PORT": "eighty"}) == 1


async def test_api_healthcheck_ignores_proxy_settings() -> None:
    # A crawler behind a proxy must not send its own healthcheck through it.
    async with http_server({"/healthz": 200}) as (port, _):
        env = {
            "SOZY_API_PORT": str(port),
            "HTTP_PROXY": f"http://127.0.0.1:{closed_port()}",
            "http_proxy": f"http://127.0.0.1:{closed_port()}",
        }
        assert await run([sys.executable, str(HEALTHCHECK_SCRIPT)], env) == 0


def test_api_healthcheck_defaults_to_the_api_port_setting() -> None:
    sys.path.insert(0, str(HEALTHCHECK_SCRIPT.parent))
    try:
        import healthcheck
    finally:
        sys.path.remove(str(HEALTHCHECK_SCRIPT.parent))
    from sozy.config import ApiSettings

    assert healthcheck.health_url({}) == f"http://127.0.0.1:{ApiSettings().port}/healthz"
    assert healthcheck.health_url({"SOZY_API_PORT": "9001"}) == "http://127.0.0.1:9001/healthz"
