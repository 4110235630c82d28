"""A Qdrant server made fit for Sozy: a version new enough, the collection's layout on a
cluster, the collection itself (created, or checked when it exists) and its payload indexes."""

from __future__ import annotations

import logging
import re
import warnings
from typing import TypedDict

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as m

from sozy.config import StoreSettings
from sozy.records import VECTOR_SIZE

from .base import KEYWORD_FIELDS, ON_DISK_INDEX_FIELDS, StoreError, StoreMismatch
from .server_client import SERVER_ERRORS

log = logging.getLogger(__name__)

# The query API (query_points, query_points_groups) and facet counts need Qdrant 1.12+.
MIN_SERVER_VERSION = (1, 12)
# With a cluster: shards per node (room to rebalance when a node is added) and copies of each shard.
SHARDS_PER_NODE = 2
CLUSTER_REPLICATION = 2


def parse_version(text: str) -> tuple[int, int, int]:
    """``"v1.12.4"`` → ``(1, 12, 4)``; missing parts are 0."""
    numbers = [int(n) for n in re.findall(r"\d+", text)[:3]]
    if not numbers:
        raise ValueError(f"not a version: {text!r}")
    padded = [*numbers, 0, 0]
    return padded[0], padded[1], padded[2]


def check_server_version(server: str, client: str | None = None) -> list[str]:
    """Refuse a server too old for the calls Sozy makes; return warnings for a client/server
    skew beyond one minor version (Qdrant's own compatibility rule)."""
    version = parse_version(server)
    if version[:2] < MIN_SERVER_VERSION:
        need = ".".join(map(str, MIN_SERVER_VERSION))
        raise StoreError(
            f"Qdrant server {server} is too old: Sozy needs {need} or newer (query API, facet counts); "
            f"upgrade the server (the qdrant/qdrant image in docker-compose.yml is pinned to a supported version)"
        )
    notes = []
    if client:
        mine = parse_version(client)
        if mine[0] != version[0] or abs(mine[1] - version[1]) > 1:
            notes.append(
                f"qdrant-client {client} and Qdrant server {server} are more than one minor version apart; "
                "upgrade whichever is older"
            )
    return notes


class ClusterLayout(TypedDict, total=False):
    """``create_collection``'s sharding arguments."""

    shard_number: int
    replication_factor: int


def collection_layout(nodes: int) -> ClusterLayout:
    """Sharding for a new collection on a cluster of ``nodes`` peers (empty for one node).

    Two shards per node, so a node added later can take shards over without resharding,
    and two copies of each shard, so the cluster keeps serving when one node is down.
    """
    if nodes <= 1:
        return ClusterLayout()
    return ClusterLayout(shard_number=SHARDS_PER_NODE * nodes, replication_factor=min(CLUSTER_REPLICATION, nodes))


async def cluster_nodes(client: AsyncQdrantClient) -> int:
    """Peers in the server's cluster, 1 when distributed mode is off. Server-only (REST)."""
    try:
        status = (await client.http.distributed_api.cluster_status()).result
    except SERVER_ERRORS as exc:
        log.warning("could not read Qdrant's cluster status (%s); assuming a single node", exc)
        return 1
    if status is None or getattr(status, "status", "disabled") != "enabled":
        return 1
    return max(1, len(getattr(status, "peers", {}) or {}))


async def check_collection(client: AsyncQdrantClient, collection: str, where: str) -> None:
    """StoreMismatch when the collection holds vectors other than Sozy's."""
    info = await client.get_collection(collection)
    vectors = info.config.params.vectors
    if not isinstance(vectors, m.VectorParams):
        names = sorted(vectors or {})
        raise StoreMismatch(
            f"collection {collection!r} at {where} has named vectors {names}, not Sozy's single "
            "face vector; set store.collection to another name"
        )
    if vectors.size != VECTOR_SIZE or vectors.distance != m.Distance.EUCLID:
        raise StoreMismatch(
            f"collection {collection!r} at {where} holds {vectors.size}-d {vectors.distance.value} "
            f"vectors; Sozy stores {VECTOR_SIZE}-d Euclid (dlib face descriptors). Set store.collection to "
            "another name, or delete that collection if it is a leftover"
        )


async def create_collection(client: AsyncQdrantClient, settings: StoreSettings, where: str, nodes: int) -> None:
    """Create the face collection (HNSW from the settings, int8 quantization in RAM, sharded on a cluster)."""
    collection = settings.collection
    cluster = collection_layout(nodes)
    if cluster:
        log.info("Qdrant cluster of %d nodes: collection %r gets %s", nodes, collection, cluster)
    try:
        await client.create_collection(
            collection,
            vectors_config=m.VectorParams(size=VECTOR_SIZE, distance=m.Distance.EUCLID),
            hnsw_config=m.HnswConfigDiff(m=settings.hnsw_m, ef_construct=settings.hnsw_ef_construct),
            quantization_config=m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99, always_ram=True)
            ),
            **cluster,
        )
    except SERVER_ERRORS:
        # Another process (a second crawler) may have created it a moment ago.
        if not await client.collection_exists(collection):
            raise
        await check_collection(client, collection, where)


async def ensure_indexes(client: AsyncQdrantClient, collection: str) -> None:
    """A keyword index on every field Sozy filters, groups or counts on."""
    info = await client.get_collection(collection)
    with warnings.catch_warnings():
        # Local mode accepts payload indexes but warns that they have no effect there.
        warnings.filterwarnings("ignore", message="Payload indexes have no effect")
        for field in KEYWORD_FIELDS:
            if field not in info.payload_schema:
                schema = (
                    m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, on_disk=True)
                    if field in ON_DISK_INDEX_FIELDS
                    else m.PayloadSchemaType.KEYWORD
                )
                await client.create_payload_index(collection, field, schema, wait=True)
