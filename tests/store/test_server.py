"""What only the server backend does: version checks, connection errors, cluster layout.

There is no Qdrant server on these machines. The shared suite runs this backend on
qdrant-client's local mode; the server-only calls are checked here against a local HTTP
server on 127.0.0.1 that answers those few REST endpoints the way Qdrant does (the
version banner at ``/``, ``/cluster``) or refuses the API key, with qdrant-client's own
REST client parsing the answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from qdrant_client import AsyncQdrantClient

from sozy.config import Settings
from sozy.store import StoreError, open_store
from sozy.store.server_setup import check_server_version, cluster_nodes, collection_layout, parse_version


def test_versions_parse_with_or_without_prefix():
    assert parse_version("v1.12.4") == (1, 12, 4)
    assert parse_version("1.13") == (1, 13, 0)
    with pytest.raises(ValueError):
        parse_version("dev")


def test_a_server_too_old_for_the_query_api_is_refused():
    with pytest.raises(StoreError, match=r"1\.9\.2 is too old.*1\.12 or newer"):
        check_server_version("1.9.2")
    assert check_server_version("1.12.0", "1.13.1") == []


def test_client_and_server_far_apart_get_a_warning():
    notes = check_server_version("1.12.0", "1.20.0")
    assert len(notes) == 1 and "more than one minor version apart" in notes[0]


def test_cluster_layout_spreads_and_replicates_shards():
    assert collection_layout(1) == {}
    assert collection_layout(3) == {"shard_number": 6, "replication_factor": 2}
    layout = collection_layout(5)
    assert layout["shard_number"] % 5 == 0 and layout["replication_factor"] == 2


def _cluster_answer(peers: int) -> dict:
    if peers == 0:
        return {"result": {"status": "disabled"}, "status": "ok", "time": 0.00001}
    return {
        "result": {
            "status": "enabled",
            "peer_id": 1,
            "peers": {str(i): {"uri": f"http://qdrant-{i}:6335/"} for i in range(1, peers + 1)},
            "raft_info": {
                "term": 2,
                "commit": 40,
                "pending_operations": 0,
                "leader": 1,
                "role": "Leader",
                "is_voter": True,
            },
            "consensus_thread_status": {"consensus_thread_status": "working", "last_update": "2025-01-01T00:00:00Z"},
            "message_send_failures": {},
        },
        "status": "ok",
        "time": 0.00002,
    }


@pytest_asyncio.fixture
async def qdrant_like() -> AsyncIterator[dict]:
    """A 127.0.0.1 server answering ``/`` and ``/cluster`` as Qdrant does; ``state`` steers it."""
    state: dict = {"version": "1.13.2", "peers": 3, "api_key": None}

    def authorised(request: web.Request) -> bool:
        return state["api_key"] is None or request.headers.get("api-key") == state["api_key"]

    async def root(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.Response(status=401, text="Must provide an API key or an Authorization bearer token")
        return web.json_response({"title": "qdrant - vector search engine", "version": state["version"]})

    async def cluster(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.Response(status=401, text="Invalid API key")
        return web.Response(text=json.dumps(_cluster_answer(state["peers"])), content_type="application/json")

    app = web.Application()
    app.router.add_get("/", root)
    app.router.add_get("/cluster", cluster)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state["url"] = str(server.make_url("")).rstrip("/")
    yield state
    await server.close()


@pytest.mark.parametrize("peers", [0, 1, 3])
async def test_cluster_nodes_are_read_from_the_cluster_status(qdrant_like, peers):
    qdrant_like["peers"] = peers
    client = AsyncQdrantClient(url=qdrant_like["url"], check_compatibility=False)
    try:
        assert await cluster_nodes(client) == max(1, peers)
    finally:
        await client.close()


async def test_an_unreadable_cluster_status_counts_as_one_node(qdrant_like):
    qdrant_like["api_key"] = "secret"
    client = AsyncQdrantClient(url=qdrant_like["url"], check_compatibility=False)
    try:
        assert await cluster_nodes(client) == 1
    finally:
        await client.close()


async def test_opening_an_old_server_fails_with_the_version(qdrant_like, tmp_path):
    qdrant_like["version"] = "1.9.0"
    settings = Settings(data_dir=str(tmp_path)).replace(**{"store.url": qdrant_like["url"]})
    with pytest.raises(StoreError, match=r"1\.9\.0 is too old"):
        await open_store(settings)


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
async def test_a_wrong_api_key_is_named_in_the_error(qdrant_like, tmp_path):
    qdrant_like["api_key"] = "right"
    settings = Settings(data_dir=str(tmp_path)).replace(**{"store.url": qdrant_like["url"], "store.api_key": "wrong"})
    with pytest.raises(StoreError, match=r"401.*check store.api_key"):
        await open_store(settings)


async def test_an_unreachable_server_is_a_store_error(tmp_path, unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}"
    settings = Settings(data_dir=str(tmp_path)).replace(**{"store.url": url, "store.timeout_s": 2})
    with pytest.raises(StoreError, match=rf"Qdrant at {url}: connecting"):
        await open_store(settings)


async def test_local_memory_mode_opens_the_server_backend(tmp_path):
    store = await open_store(Settings(data_dir=str(tmp_path)).replace(**{"store.url": "local::memory:"}))
    try:
        assert store.backend == "server"
        assert await store.count() == 0
    finally:
        await store.close()


async def test_a_missing_collection_is_not_created_when_asked_not_to(tmp_path):
    settings = Settings(data_dir=str(tmp_path)).replace(**{"store.url": f"local:{tmp_path / 'q'}"})
    with pytest.raises(StoreError, match="no collection 'faces'"):
        await open_store(settings, create=False)
