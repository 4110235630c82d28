"""API test fixtures: one real face engine (1 worker) and one real embedded store for the session.

The store holds every shared photo's faces except ``index.HELD_OUT``. Apps
are built per test with ``api_client(...)`` (any settings overrides), talk
to the real engine and store, and are driven through httpx's ASGI transport
with their lifespan running.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from sozy.api import create_app
from sozy.api.remote import RemoteImages
from sozy.config import EngineSettings, Settings
from sozy.faces.engine import FaceEngine
from sozy.records import FaceRecord
from sozy.store import open_store

from .index import shared_records

ADMIN_KEY = "test-admin-key-6f1d9a3e"
METRICS_KEY = "test-metrics-key-0b7c2e91"
API_TESTS = Path(__file__).resolve().parent
ApiClient = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Async API tests share the session's event loop: the engine and store fixtures live on it."""
    for item in items:
        if pytest_asyncio.is_async_test(item) and API_TESTS in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


def base_settings(data_dir: str, **overrides: Any) -> Settings:
    """Settings for an API under test: 1 engine worker, no rate limit unless asked."""
    defaults: dict[str, Any] = {"engine.workers": 1, "api.rate_limit_per_minute": 0}
    return Settings(data_dir=data_dir).replace(**{**defaults, **overrides})


@pytest.fixture(scope="session")
def index_records(shared_embeddings, face_photos, faces_dir) -> list[FaceRecord]:
    people = {str(p.path.relative_to(faces_dir)): p.people for p in face_photos}
    return shared_records(shared_embeddings, people, faces_dir)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine() -> AsyncIterator[FaceEngine]:
    async with FaceEngine(EngineSettings(workers=1)) as started:
        yield started


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def store(tmp_path_factory, index_records):
    settings = Settings(data_dir=str(tmp_path_factory.mktemp("api-store")))
    opened = await open_store(settings)
    await opened.upsert(index_records)
    yield opened
    await opened.close()


@pytest.fixture
def api_client(engine, store, tmp_path) -> ApiClient:
    """``async with api_client(**{"api.queue_limit": 1}) as client: ...``

    Keyword ``store=`` swaps the store, ``remote=`` the image_url fetcher,
    ``client=(host, port)`` the caller's address; other keywords are settings.
    """

    @contextlib.asynccontextmanager
    async def open_client(
        *,
        store_: Any = None,
        remote: RemoteImages | None = None,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        **overrides: Any,
    ) -> AsyncIterator[httpx.AsyncClient]:
        settings = base_settings(str(tmp_path / "data"), **overrides)
        app = create_app(settings, engine=engine, store=store_ or store, remote=remote)
        transport = httpx.ASGITransport(app=app, client=client)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://sozy.test", timeout=60) as http,
        ):
            yield http

    return open_client


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, shared_embeddings, face_photos, faces_dir):
    """uvicorn on 127.0.0.1 with its own engine (1 worker) and store; stored photos served locally."""
    from .dns import MapResolver
    from .live import LiveServer

    people = {str(p.path.relative_to(faces_dir)): p.people for p in face_photos}
    settings = base_settings(
        str(tmp_path_factory.mktemp("live")), **{"api.admin_key": ADMIN_KEY, "api.fetch_timeout_s": 2.0}
    )

    def remote() -> RemoteImages:
        # No real DNS from tests: image_url host names resolve to nothing.
        return RemoteImages(max_bytes=settings.api.max_upload_bytes, timeout_s=2.0, resolver=MapResolver({}))

    with LiveServer(
        settings, faces_dir, lambda base: shared_records(shared_embeddings, people, faces_dir, base), remote
    ) as live:
        yield live


@pytest.fixture(scope="session")
def guarded_server(tmp_path_factory, shared_embeddings, face_photos, faces_dir):
    """uvicorn on 127.0.0.1 with tight limits, for hostile clients: one upload read at a time,
    bodies that pause 1 s or take 4 s refused, two image_url fetches per client, /metrics keyed."""
    from .live import LiveServer

    people = {str(p.path.relative_to(faces_dir)): p.people for p in face_photos}
    settings = base_settings(
        str(tmp_path_factory.mktemp("guarded")),
        **{
            "api.admin_key": ADMIN_KEY,
            "api.metrics_key": METRICS_KEY,
            "api.max_uploads": 1,
            "api.body_idle_timeout_s": 1.0,
            "api.body_timeout_s": 4.0,
            "api.fetches_per_client": 2,
            "api.fetch_timeout_s": 5.0,
            "api.allow_private_urls": True,
        },
    )
    with LiveServer(
        settings, faces_dir, lambda base: shared_records(shared_embeddings, people, faces_dir, base)
    ) as live:
        yield live
