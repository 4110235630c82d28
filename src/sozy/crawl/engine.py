"""What the crawl asks of a face engine.

Two engines drive a crawl: the local one (``LazyEngine`` around a ``FaceEngine``:
the crawler's embed stage calls ``embed``) and the Ray cluster's
(``cluster.ClusterEngine``: its nodes fetch and embed, so it has no ``embed``).
Both size the crawl's stages (``capacity``) and say what they are for the
summary (``workers``, ``device``, ``model_id``).
"""

from __future__ import annotations

from typing import Protocol

from sozy.records import PhotoFaces


class CrawlEngine(Protocol):
    """Any engine a crawl runs with."""

    @property
    def capacity(self) -> int:
        """Photos it takes at once."""
        ...

    @property
    def workers(self) -> int:
        """Processes (or nodes' workers) embedding; 0 until started."""
        ...

    @property
    def device(self) -> str: ...

    @property
    def model_id(self) -> str:
        """The models that made the vectors, stored with every face."""
        ...

    async def close(self) -> None: ...


class FaceEmbedder(CrawlEngine, Protocol):
    """An engine that embeds a photo here, in this process's pool."""

    async def embed(self, data: bytes) -> PhotoFaces: ...


class NodeEngine(FaceEmbedder, Protocol):
    """A cluster node's engine: started when the node joins, before its first batch."""

    async def start(self) -> None: ...
