"""One crawl over nodes of unequal speed: ``--ray`` against ``--shard``, each as completion time ÷ ideal.

    python bench/cluster.py            # 3 nodes (20, 160, 160 ms a photo), 900 photos: about 2 minutes
    python bench/cluster.py --quick    # 300 photos: under a minute

A ``ray.cluster_utils.Cluster`` of three nodes on this machine, each with an
engine of known speed: a fixed cost per photo, one photo at a time (a fast
node beside two slow ones, as a GPU box beside CPU machines). What the nodes
fetch are small distinct JPEGs from a loopback image host, so fetching costs
little and the engines set the pace. ideal = photos ÷ the sum of the nodes'
rates: the time if every node worked to the end.

1. ``--ray``: one crawl, the driver here, fetch and embed on the nodes
   (``run_crawl(..., cluster=RayCluster(...))``): a free node takes the next batch;
2. ``--shard I/3``: three crawls at once, shard I on node I's engine: each has
   the same share of the photos, so the slowest sets the completion time.

Both time the crawl after startup (summary ``duration_s``; the shards: from
their common start to the last one's end). The last line is the ``--ray``
ratio (goal ≤ 1.2; ``--shard`` is well above it on unequal nodes).

Ray binds to the machine's network address; the bench runs itself in a
loopback-only network namespace (``unshare -n``, as root) so nothing leaves
the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from sozy.config import EngineSettings, Settings, load_settings  # noqa: E402
from sozy.records import Box, Face, PhotoFaces  # noqa: E402

GOAL = 1.2
_IN_NETNS = "SOZY_BENCH_NETNS"


# -- an engine of known speed ------------------------------------------------------------------


class FixedCostEngine:
    """Embeds one photo at a time in ``cost_s``: one face, its vector drawn from the photo's bytes."""

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s
        self.workers = 1
        self.device = "cpu"
        self.model_id = "bench-fixed-cost"
        self.capacity = 1
        self._lock: asyncio.Lock | None = None

    async def start(self) -> None:
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        pass

    async def embed(self, body: bytes) -> PhotoFaces:
        assert self._lock is not None
        async with self._lock:
            await asyncio.sleep(self.cost_s)
        seed = int.from_bytes(hashlib.sha256(body).digest()[:8], "big")
        vector = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
        return PhotoFaces(32, 32, [Face(Box(4, 4, 28, 28), vector / np.linalg.norm(vector))])


def node_engine(settings: EngineSettings, resources: Mapping[str, float]) -> FixedCostEngine:
    """A node's engine: its cost is the node's ``photo_ms`` resource (set when the node was added)."""
    return FixedCostEngine(resources["photo_ms"] / 1000)


# -- the image host ------------------------------------------------------------------------------


def tiny_jpegs(count: int) -> list[bytes]:
    from PIL import Image

    out = []
    for i in range(count):
        buf = io.BytesIO()
        # The index in a comment: every photo has its own bytes, so content dedup skips none.
        Image.new("RGB", (32, 32), (i % 256, 96, 128)).save(buf, format="JPEG", quality=90, comment=f"photo {i}")
        out.append(buf.getvalue())
    return out


@contextlib.contextmanager
def image_host(bodies: list[bytes]) -> Iterator[str]:
    """An aiohttp host on its own thread and loop; yields its base URL."""
    from aiohttp import web

    async def photo(request: web.Request) -> web.Response:
        return web.Response(body=bodies[int(request.match_info["i"])], content_type="image/jpeg")

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/p/{i}.jpg", photo)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()


# -- the two crawls ------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    seconds: float
    done: int


def settings_for(data_dir: Path, batch: int) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "data_dir": str(data_dir),
            "log_level": "WARNING",
            "crawl.per_host": 16,
            "crawl.cluster_batch": batch,
        },
    )


async def ray_crawl(address: str, urls: Path, work: Path, batch: int) -> Result:
    from sozy.crawl.cluster import RayCluster
    from sozy.crawl.plan import CrawlPlan
    from sozy.crawl.runner import run_crawl

    result = await run_crawl(
        settings_for(work / "ray", batch),
        CrawlPlan(url_lists=(urls,)),
        progress=False,
        print_summary=False,
        handle_signals=False,
        cluster=RayCluster(address, engine_factory=node_engine),
    )
    run = result.summary["run"]
    return Result("--ray", result.summary["duration_s"], run["photos_done"])


async def shard_crawls(costs_s: list[float], urls: Path, work: Path) -> Result:
    """Shard I of N on an engine of node I's speed, all at once; timed from their common start."""
    from sozy.crawl.pipeline import Crawler
    from sozy.crawl.plan import CrawlPlan
    from sozy.crawl.shard import Shard
    from sozy.crawl.state import CrawlState
    from sozy.fetch import Fetcher
    from sozy.store import open_store

    async with contextlib.AsyncExitStack() as stack:
        crawlers = []
        for i, cost in enumerate(costs_s, 1):
            settings = settings_for(work / f"shard-{i}", 1)
            plan = CrawlPlan(url_lists=(urls,), shard=Shard(i, len(costs_s)))
            state = stack.enter_context(CrawlState(settings.data_path / plan.shard.state_file("crawl.sqlite")))
            store = await open_store(settings)
            stack.push_async_callback(store.close)
            engine = FixedCostEngine(cost)
            await engine.start()
            fetcher = await stack.enter_async_context(Fetcher(settings.crawl))
            crawlers.append(Crawler(settings, plan, state=state, fetcher=fetcher, engine=engine, store=store))
        start = time.monotonic()
        await asyncio.gather(*(c.run() for c in crawlers))
        seconds = time.monotonic() - start
        return Result("--shard", seconds, sum(c.stats.done for c in crawlers))


# -- main ----------------------------------------------------------------------------------------


def run_in_netns() -> int:
    """Run this script again in a loopback-only network namespace; its exit code."""
    if shutil.which("unshare") is None:
        print("bench/cluster.py needs unshare (util-linux) and root for a loopback-only namespace", file=sys.stderr)
        return 2
    # The nodes' Ray workers import Sozy from this checkout too, as this process does.
    path = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, _IN_NETNS: "1", "PYTHONPATH": path}
    cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv]
    return subprocess.run(cmd, env=env, check=False).returncode


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=900)
    p.add_argument("--costs-ms", default="20,160,160", help="each node's cost per photo, comma-separated")
    p.add_argument("--batch", type=int, default=2, help="crawl.cluster_batch for the --ray crawl")
    p.add_argument("--quick", action="store_true", help="300 photos")
    args = p.parse_args()
    if os.environ.get(_IN_NETNS) != "1":
        return run_in_netns()
    logging.basicConfig(level=logging.WARNING)
    photos = 300 if args.quick else args.photos
    costs_s = [float(c) / 1000 for c in args.costs_ms.split(",")]
    ideal = photos / sum(1 / c for c in costs_s)
    rates = ", ".join(f"{1 / c:.1f}" for c in costs_s)
    print(
        f"{len(costs_s)} nodes at {args.costs_ms} ms a photo ({rates} photos/s), {photos} photos: "
        f"ideal {ideal:.1f} s; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory(prefix="sozy-bench-cluster-") as tmp, image_host(tiny_jpegs(photos)) as base:
        work = Path(tmp)
        urls = work / "photos.txt"
        urls.write_text("".join(f"{base}/p/{i}.jpg\n" for i in range(photos)))

        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False, "resources": {"photo_ms": costs_s[0] * 1000}},
        )
        for cost in costs_s[1:]:
            cluster.add_node(num_cpus=1, resources={"photo_ms": cost * 1000})
        cluster.wait_for_nodes()
        try:
            ray_result = asyncio.run(ray_crawl(cluster.address, urls, work, args.batch))
        finally:
            cluster.shutdown()
        shard_result = asyncio.run(shard_crawls(costs_s, urls, work))

    results: dict[str, Any] = {}
    for r in (shard_result, ray_result):
        if r.done != photos:
            print(f"{r.name}: {r.done} of {photos} photos done", file=sys.stderr)
            return 1
        results[r.name] = r.seconds / ideal
        print(f"{r.name:<8} {r.seconds:6.1f} s = {r.seconds / ideal:.2f} x ideal", flush=True)
    verdict = "met" if results["--ray"] <= GOAL else "missed"
    print(
        f"--ray completion / ideal: {results['--ray']:.2f} (goal <= {GOAL}, {verdict}; --shard "
        f"{results['--shard']:.2f}; load {os.getloadavg()[0]:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
