"""The driver's handle on the cluster: nodes, their actors, and who takes the next batch.

``ClusterEngine.start`` joins the Ray cluster, starts the per-host limiter
actor on the driver's node and one ``NodeWorker`` actor on every node (pinned
to it, with the node's GPUs where it has them), each loading its models once.
``process(batch)`` hands a batch to the first node with room: every node has
``LANES_PER_NODE`` lanes, a lane takes one batch at a time, and a free lane
takes the next batch waiting (Ray's ``ActorPool`` discipline, on the event
loop) — so a fast node takes more batches than a slow one, and none waits
for the slowest. Two lanes per node keep a node busy while its last result
travels back. A node that dies mid-batch (``RayActorError``) loses its lanes
and the batch goes to another node; its host slots are handed back. Nodes
that join the cluster later get an actor within ``NODE_POLL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sozy.config import Settings
from sozy.faces import FaceEngineError
from sozy.fetch import Fetcher
from sozy.store import FaceStore

from ..plan import CrawlPlan
from ..state import CrawlState, Job
from ..stats import CrawlStats
from .node import BatchResult, EngineFactory, NodeInfo, NodeWorker
from .slots import ACTOR_NAME, HostSlots

if TYPE_CHECKING:
    from .crawler import ClusterCrawler

log = logging.getLogger("sozy.crawl")

LANES_PER_NODE = 2
# How often the driver looks for nodes that joined the cluster.
NODE_POLL_S = 5.0
# How long a node may take to load its models before it is left out.
NODE_START_TIMEOUT_S = 300.0
# A batch whose node died this many times fails (its photos, not the crawl): it may be what kills them.
MAX_BATCH_LOSSES = 3


class ClusterUnreachable(FaceEngineError):
    """``ray.init`` failed: no cluster at the address, or one this Ray cannot join."""

    code = "cluster_unreachable"


class BatchLost(FaceEngineError):
    """A batch's node died under it ``MAX_BATCH_LOSSES`` times."""

    code = "node_lost"


class NoNodesLeft(FaceEngineError):
    """Every node of the cluster is gone: nothing can fetch or embed."""

    code = "no_nodes"


@dataclass(eq=False)
class _Lane:
    node: str
    actor: Any


class ClusterEngine:
    """Fetch-and-embed over a Ray cluster (``start``, then ``process`` batches, then ``close``)."""

    capacity = 1  # the local embed stage idles: nodes embed (see ``ClusterCrawler``)

    def __init__(self, settings: Settings, address: str, *, engine_factory: EngineFactory | None = None) -> None:
        self.settings = settings
        self.address = address
        self._engine_factory = engine_factory
        self._ray: Any = None
        self._joined = False  # this engine called ray.init (and so ray.shutdown)
        self._slots: Any = None
        self._actors: dict[str, Any] = {}  # node name → actor, while it is alive
        self._ids: dict[str, str] = {}  # Ray node id → node name (nodes with an actor, or left out)
        self._info: dict[str, NodeInfo] = {}
        self._idle: asyncio.Queue[_Lane] = asyncio.Queue()
        self._watcher: asyncio.Task[None] | None = None
        self._adding = asyncio.Lock()  # one look for new nodes at a time (the watcher, or a batch with none)
        self.lost: list[str] = []
        # Batches each node finished, and has now (the driver's per-node photo counts are in CrawlStats).
        self.batches: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        # Batches a lost node had, handed to another.
        self.redone = 0

    # --- what the runner and the summary read -------------------------------------------

    @property
    def workers(self) -> int:
        return sum(info.workers for name, info in self._info.items() if name in self._actors)

    @property
    def device(self) -> str:
        devices = Counter(info.device for name, info in self._info.items() if name in self._actors)
        return " + ".join(f"{n} {d} node{'s' if n > 1 else ''}" for d, n in sorted(devices.items())) or "none"

    @property
    def model_id(self) -> str:
        return next(iter(self._info.values())).model_id if self._info else ""

    @property
    def nodes(self) -> list[str]:
        """Names of the nodes working now."""
        return list(self._actors)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        import ray  # the optional extra: only a --ray crawl needs it

        self._ray = ray
        if not ray.is_initialized():
            try:
                # On this thread: Ray sets its signal handlers only from the main thread.
                ray.init(address=self.address, logging_level=logging.WARNING, configure_logging=False)
            except Exception as exc:  # ConnectionError, RuntimeError, version mismatches, ...
                raise ClusterUnreachable(f"cannot join the Ray cluster at {self.address}: {_short(exc)}") from None
            self._joined = True
        here = ray.get_runtime_context().get_node_id()
        crawl = self.settings.crawl
        self._slots = (
            ray.remote(HostSlots)
            .options(name=ACTOR_NAME, num_cpus=0, scheduling_strategy=_pinned(here))
            .remote(crawl.per_host, crawl.per_host_rate, crawl.total_timeout_s + crawl.connect_timeout_s)
        )
        await self._add_new_nodes()
        if not self._actors:
            raise NoNodesLeft("no node of the Ray cluster could start the face engine (see the log)")
        self._watcher = asyncio.ensure_future(self._watch_nodes())
        log.info(
            "cluster %s: %d node(s): %s",
            self.address,
            len(self._actors),
            ", ".join(f"{n} ({i.workers} {i.device})" for n, i in self._info.items()),
        )

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        ray = self._ray
        if ray is None:
            return
        closing = [actor.close.remote() for actor in self._actors.values()]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 30)
        for actor in [*self._actors.values(), self._slots]:
            if actor is not None:
                with contextlib.suppress(Exception):
                    ray.kill(actor)
        self._actors.clear()
        if self._joined:
            await asyncio.to_thread(ray.shutdown)

    # --- the work ---------------------------------------------------------------------------

    async def process(
        self, jobs: Sequence[Job], local_roots: Mapping[str, Path] | None = None
    ) -> tuple[str, BatchResult]:
        """Fetch and embed ``jobs`` on the first node with room; returns that node's name and results.

        ``local_roots``: the crawled folders by name, for ``file:<folder>/...`` photos."""
        ray = self._ray
        losses = 0
        while True:
            lane = await self._next_lane()
            self.in_flight[lane.node] += 1
            try:
                result: BatchResult = await lane.actor.process.remote(list(jobs), dict(local_roots or {}))
            except ray.exceptions.RayActorError as exc:
                await self._lose(lane.node, exc)
                losses += 1
                if losses >= MAX_BATCH_LOSSES:
                    raise BatchLost(f"{losses} nodes died while this batch ran on them (last: {lane.node})") from None
                self.redone += 1
                continue
            except asyncio.CancelledError:
                self._idle.put_nowait(lane)
                raise
            finally:
                self.in_flight[lane.node] -= 1
            self._idle.put_nowait(lane)
            self.batches[lane.node] += 1
            return lane.node, result

    async def _next_lane(self) -> _Lane:
        while True:
            lane = await self._idle.get()
            if lane.node in self._actors:
                return lane
            if not self._actors:
                # Every actor died: nodes Ray still counts alive get new ones (their lanes go in the queue).
                await self._add_new_nodes()
                if not self._actors:
                    self._idle.put_nowait(lane)  # wakes the next batch waiting, which fails too
                    raise NoNodesLeft("every node of the Ray cluster is gone")

    async def _lose(self, node: str, exc: BaseException) -> None:
        if self._actors.pop(node, None) is None:
            return
        self.lost.append(node)
        # If Ray still counts the node alive (only its actor died), the watcher starts another there.
        for node_id in [i for i, name in self._ids.items() if name == node]:
            del self._ids[node_id]
        log.warning(
            "node %s lost (%s): its batches go to the other %d node(s)", node, type(exc).__name__, len(self._actors)
        )
        with contextlib.suppress(Exception):
            await self._slots.release_node.remote(node)
        if not self._actors:
            self._idle.put_nowait(_Lane(node, None))  # wakes the batches waiting for a lane: they fail

    # --- nodes ------------------------------------------------------------------------------

    async def _watch_nodes(self) -> None:
        while True:
            await asyncio.sleep(NODE_POLL_S)
            try:
                await self._add_new_nodes()
            except Exception as exc:  # the crawl goes on with the nodes it has
                log.warning("looking for new Ray nodes failed: %r", exc)

    async def _add_new_nodes(self) -> None:
        async with self._adding:
            nodes = await asyncio.to_thread(self._ray.nodes)
            new = [n for n in nodes if n.get("Alive") and n["NodeID"] not in self._ids]
            for n in new:
                self._ids[n["NodeID"]] = _node_name(n)
            started = await asyncio.gather(*(self._start_node(n) for n in new))
            for lanes in started:
                for lane in lanes:
                    self._idle.put_nowait(lane)

    async def _start_node(self, node: dict[str, Any]) -> list[_Lane]:
        ray = self._ray
        name = self._ids[node["NodeID"]]
        resources = {k: float(v) for k, v in node.get("Resources", {}).items()}
        gpus = int(resources.get("GPU", 0)) if self.settings.engine.device != "cpu" else 0
        actor = (
            ray.remote(NodeWorker)
            .options(num_cpus=0, num_gpus=gpus, scheduling_strategy=_pinned(node["NodeID"]))
            .remote(self.settings, name, resources, self._slots, self._engine_factory)
        )
        try:
            info: NodeInfo = await asyncio.wait_for(actor.start.remote(), NODE_START_TIMEOUT_S)
        except Exception as exc:
            log.warning("node %s left out: its engine did not start: %s", name, _short(exc))
            with contextlib.suppress(Exception):
                ray.kill(actor)
            return []
        self._actors[name] = actor
        self._info[name] = info
        return [_Lane(name, actor) for _ in range(LANES_PER_NODE)]


def _pinned(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def _node_name(node: dict[str, Any]) -> str:
    """``10.0.0.7/3f2a9c`` (address and the start of Ray's node id: nodes on one machine share the address)."""
    return f"{node.get('NodeManagerAddress', '?')}/{node['NodeID'][:6]}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


@dataclass(frozen=True)
class RayCluster:
    """``run_crawl(..., cluster=RayCluster(address))``: crawl on the Ray cluster at ``address``."""

    address: str
    # How each node builds its engine (default: ``FaceEngine`` sized to the node); benchmarks set it.
    engine_factory: EngineFactory | None = None

    def engine(self, settings: Settings) -> ClusterEngine:
        return ClusterEngine(settings, self.address, engine_factory=self.engine_factory)

    def crawler(
        self,
        settings: Settings,
        plan: CrawlPlan,
        *,
        state: CrawlState,
        fetcher: Fetcher,
        engine: ClusterEngine,
        store: FaceStore,
        stats: CrawlStats | None = None,
    ) -> ClusterCrawler:
        from .crawler import ClusterCrawler

        return ClusterCrawler(settings, plan, state=state, fetcher=fetcher, engine=engine, store=store, stats=stats)
