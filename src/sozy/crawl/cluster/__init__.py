"""``--ray ADDRESS``: one crawl spread over a Ray cluster.

The driver (the machine running ``python -m sozy.crawl``) keeps what must be
one: the crawl state, discovery, content dedup, naming and the store's writes,
with the same code as a crawl on one machine (``pipeline.BaseCrawler``). The nodes do the
heavy part: each node runs one actor (``node.NodeWorker``) that loads the face
models once and fetches and embeds batches of photos; a batch goes to the
first node with room (``engine.ClusterEngine``), and a node lost mid-batch has
its batch redone by another. One actor (``slots.HostSlots``) holds the
per-host limits for the whole crawl, whatever the number of nodes.

Only this package imports ``ray`` (an optional extra: ``pip install 'sozy[ray]'``),
and only when ``--ray`` is given.
"""

from __future__ import annotations

from .address import ClusterAddressError, ray_available, resolve_address
from .engine import ClusterEngine, RayCluster

__all__ = ["ClusterAddressError", "ClusterEngine", "RayCluster", "ray_available", "resolve_address"]
