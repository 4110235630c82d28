"""The cluster crawls ``test_cluster.py`` asserts on, run in a loopback-only network namespace.

Ray binds to the machine's network address, never only to loopback; in a
namespace of its own (``unshare -n``, then ``ip link set lo up``) it falls back
to 127.0.0.1 and nothing leaves the machine. ``test_cluster.py`` runs this
script there; it writes what it saw as JSON::

    python tests/crawl/cluster_scenarios.py OUT.json WORKDIR FACES_DIR

1. ``local``: the URL list crawled on this machine (no Ray): the reference.
2. ``ray``: the same list crawled with ``--ray`` on a 3-node ``ray.cluster_utils.Cluster``
   (one CPU each), ``--per-host 2``; the image host counts its peak requests at once.
3. ``wikimedia``: ``--names`` against the Wikimedia stand-ins on the same cluster: what the
   media host and the APIs saw at once, and which agents.
4. ``poison``: a photo that kills the node actor embedding it (as a crash in a native
   library would): its batch fails after three nodes died under it, the crawl goes on
   with new actors on the same nodes.
5. ``resume``: ``python -m sozy.crawl --folders FACES_DIR --ray`` (a driver of its own: the
   nodes read the folder's photos), killed with SIGKILL once a few photos are done, then the
   same command again to its end.
6. ``loss``: the same list into a fresh data dir, and one worker node removed as soon
   as it has finished a batch and holds another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from sozy.config import EngineSettings, Settings, load_settings
from sozy.crawl.cluster import ClusterEngine, RayCluster
from sozy.crawl.cluster.node import node_engine_settings
from sozy.crawl.plan import CrawlPlan
from sozy.crawl.runner import run_crawl
from sozy.crawl.state import CrawlState
from sozy.faces import FaceEngine
from tests.crawl.conftest import QUICK, stored_points
from tests.servers.gallery import gallery
from tests.servers.wikimedia import wikimedia_server

PER_HOST = 2
NODES = 3
# URLs serving the bytes of photos listed before them: content dedup across nodes.
COPIES = 2
WIKIMEDIA_NAMES = ["Barack Obama", "Joe Biden", "Kit Harington", "Rose Leslie", "Lin-Manuel Miranda", "Alex Lacamoire"]


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    return load_settings(
        environ={},
        overrides={
            **QUICK,
            "data_dir": str(data_dir),
            "engine.workers": 0,
            "crawl.per_host": PER_HOST,
            "crawl.cluster_batch": 2,
            "crawl.total_timeout_s": 30.0,
            "crawl.read_timeout_s": 20.0,
            **overrides,
        },
    )


POISON = b"sozy-test-poison"


class _PoisonedEngine(FaceEngine):
    """A node engine whose actor process dies on photos carrying ``POISON``."""

    async def embed(self, data: bytes) -> Any:
        if POISON in data:
            os._exit(1)  # the whole actor process, as a segfault would
        return await super().embed(data)


def poisoned_engine(settings: EngineSettings, resources: Mapping[str, float]) -> _PoisonedEngine:
    return _PoisonedEngine(node_engine_settings(settings, resources))


async def poisoned_photo(address: str, faces_dir: Path, work: Path) -> dict[str, Any]:
    """A folder of four photos and one that kills whichever node embeds it."""
    photos = sorted(faces_dir.glob("*/*.jpg"))[:5]
    folder = work / "poisoned-folder" / "somebody"
    folder.mkdir(parents=True)
    for photo in photos[1:]:
        shutil.copy(photo, folder / photo.name)
    data = photos[0].read_bytes()  # the first, with POISON in a JPEG comment
    (folder / "poison.jpg").write_bytes(
        data[:2] + b"\xff\xfe" + (len(POISON) + 2).to_bytes(2, "big") + POISON + data[2:]
    )
    recorder = _Recording(address, engine_factory=poisoned_engine)
    report = await crawl(settings_for(work / "poisoned"), work, recorder, CrawlPlan(folders=(folder.parent,)))
    report.update(lost=recorder.engines[-1].lost)
    return report


class _Recording(RayCluster):
    """A RayCluster that keeps the engine it made, so the scenario can watch its nodes."""

    engines: ClassVar[list[ClusterEngine]] = []

    def engine(self, settings: Settings) -> ClusterEngine:
        engine = super().engine(settings)
        self.engines.append(engine)
        return engine


async def crawl(
    settings: Settings, urls: Path, cluster: RayCluster | None, plan: CrawlPlan | None = None
) -> dict[str, Any]:
    result = await run_crawl(
        settings,
        plan or CrawlPlan(url_lists=(urls,)),
        progress=False,
        print_summary=False,
        handle_signals=False,
        cluster=cluster,
    )
    return {"exit_code": result.exit_code, "summary": result.summary, **await crawl_report(settings)}


async def crawl_report(settings: Settings) -> dict[str, Any]:
    """What a crawl left: its points (with their people) and every URL's status and attempts."""
    points = await stored_points(settings)
    with CrawlState(settings.data_path / settings.crawl.state_file) as state:
        rows = state.urls()
    return {
        "points": {p.id: {k: p.payload.get(k) for k in ("name", "person_id", "label", "image_sha256")} for p in points},
        "statuses": {r.url: r.status for r in rows},
        "attempts": {r.url: r.attempts for r in rows},
    }


def done_urls(state_file: Path) -> int:
    """Photos the state calls done (read beside the running crawl: WAL lets readers in)."""
    if not state_file.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{state_file}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM urls WHERE status = 'done'").fetchone()[0])
    except sqlite3.OperationalError:  # created but not set up yet
        return 0


async def killed_and_resumed(address: str, folder: Path, work: Path) -> dict[str, Any]:
    """The CLI on the cluster, SIGKILLed after a few photos are done, then run again to its end."""
    settings = settings_for(work / "resume")
    config = work / "resume.toml"
    c = settings.crawl
    config.write_text(
        f"[crawl]\nper_host = {c.per_host}\ncluster_batch = {c.cluster_batch}\n"
        f"total_timeout_s = {c.total_timeout_s}\nread_timeout_s = {c.read_timeout_s}\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "sozy.crawl",
        "--folders",
        str(folder),
        "--ray",
        address,
        "--config",
        str(config),
        "--data-dir",
        str(settings.data_dir),
        "--no-progress",
        "--log-level",
        "WARNING",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOZY_", "RAY_ADDRESS"))}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = settings.data_path / c.state_file
    while done_urls(state_file) < 4 and first.poll() is None:
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = done_urls(state_file)  # what the killed run left done
    second = await asyncio.to_thread(
        subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    report = await crawl_report(settings)
    summary = json.loads((settings.data_path / "crawl-summary.json").read_text())
    report.update(
        summary=summary,
        killed_at=killed_at,
        first_exit=first.returncode,
        exit_code=second.returncode,
        stderr=second.stderr[-2000:],
    )
    return report


async def names_on_wikimedia(address: str, faces_dir: Path, work: Path) -> dict[str, Any]:
    """A --names crawl on the cluster against the Wikimedia stand-ins; what each service saw."""
    names = work / "names.txt"
    names.write_text("\n".join(WIKIMEDIA_NAMES) + "\n")
    async with wikimedia_server(faces_dir) as wm:
        # Time spent in each request, so nodes that ignored a shared limit would overlap there.
        wm.traffic.delays.update({"upload": 0.05, "wikidata": 0.02, "commons": 0.02})
        settings = settings_for(work / "wikimedia", **wm.overrides())
        report = await crawl(settings, names, RayCluster(address), CrawlPlan(names_file=names))
        traffic = wm.traffic
        report["peak"] = dict(traffic.peak)
        report["requests"] = {s: len(traffic.to(s)) for s in ("upload", "wikidata", "commons")}
        report["agents"] = {s: sorted(traffic.agents(s)) for s in ("upload", "wikidata", "commons")}
        report["api_user_agent"] = settings.crawl.api_user_agent
    return report


async def remove_when_busy(cluster: Any, victim: Any, recorder: type[_Recording]) -> str:
    """Remove ``victim`` once it has finished a batch and holds another; returns its node name."""
    while not recorder.engines:
        await asyncio.sleep(0.05)
    engine = recorder.engines[-1]
    name = ""
    while not name:
        name = next((n for n in engine.nodes if n.endswith(victim.node_id[:6])), "")
        await asyncio.sleep(0.05)
    while not (engine.batches[name] >= 1 and engine.in_flight[name] >= 1):
        await asyncio.sleep(0.05)
    await asyncio.to_thread(cluster.remove_node, victim)
    return name


async def main(out: Path, work: Path, faces_dir: Path) -> None:
    from ray.cluster_utils import Cluster

    logging.basicConfig(level=logging.WARNING)
    report: dict[str, Any] = {}
    async with gallery(faces_dir, copies=COPIES) as host:
        urls = host.url_list(work / "photos.csv")
        report["photos"] = len(host.photos)
        report["urls"] = len(host.photos) + COPIES
        report["local"] = await crawl(settings_for(work / "local"), urls, None)

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        # The first worker counts a (logical) GPU: its actor asks Ray for it (num_gpus), and its
        # engine, finding no CUDA build of dlib, embeds on the CPU. The last one is removed later.
        workers = [cluster.add_node(num_cpus=1, num_gpus=1 if i == 0 else 0) for i in range(NODES - 1)]
        cluster.wait_for_nodes()
        try:
            host.peak = host.requests = host.robots_requests = 0
            report["ray"] = await crawl(settings_for(work / "ray"), urls, RayCluster(cluster.address))
            report["ray"]["peak"] = host.peak
            report["ray"]["requests"] = host.requests
            report["ray"]["robots_requests"] = host.robots_requests

            report["wikimedia"] = await names_on_wikimedia(cluster.address, faces_dir, work)
            _Recording.engines = []
            report["poison"] = await poisoned_photo(cluster.address, faces_dir, work)
            report["resume"] = await killed_and_resumed(cluster.address, faces_dir, work)

            _Recording.engines = []
            loss = asyncio.ensure_future(crawl(settings_for(work / "loss"), urls, _Recording(cluster.address)))
            remover = asyncio.ensure_future(remove_when_busy(cluster, workers[-1], _Recording))
            done, _ = await asyncio.wait([loss, remover], return_when=asyncio.FIRST_COMPLETED)
            report["loss"] = await loss
            report["loss"]["removed"] = await remover if remover in done else None
            if not remover.done():
                remover.cancel()
            engine = _Recording.engines[-1]
            report["loss"]["lost"] = engine.lost
            report["loss"]["redone"] = engine.redone
        finally:
            cluster.shutdown()
    out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
