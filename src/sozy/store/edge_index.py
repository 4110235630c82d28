"""Building the embedded store's search index in a child process.

The engine holds the GIL for as long as an HNSW build runs (minutes at a million faces),
so the build runs in a child Python process while the store has its shard closed: the
event loop keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import qdrant_edge as qe

from .base import StoreError


def optimize_directory(path: str) -> bool:
    """Build the index of the store at ``path`` (run in the child process)."""
    shard = qe.EdgeShard.load(path)
    try:
        built = shard.optimize()
        shard.flush()
    finally:
        shard.close()
    return built


# The child reports its own peak RSS (VmHWM): ru_maxrss would include the parent's,
# which Linux carries across the fork and exec that start it.
_CHILD_CODE = (
    "import json, sys\n"
    "from sozy.store.edge_index import optimize_directory, peak_rss_bytes\n"
    "built = optimize_directory(sys.argv[1])\n"
    "print(json.dumps({'built': built, 'peak_rss': peak_rss_bytes()}))\n"
)


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM), in bytes; 0 where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def run_optimize_child(shard_dir: Path) -> tuple[bool, int]:
    """Optimize ``shard_dir`` in a child Python process; the caller has closed its shard.

    Returns whether anything was built and the child's peak memory in bytes."""
    env = dict(os.environ)
    # The child must import this very package, wherever it was imported from.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH", "")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD_CODE,
        str(shard_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await proc.communicate()
    except BaseException:
        # Cancelled: stop the child. The engine swaps optimized segments in atomically,
        # so an interrupted build leaves the old, searchable segments.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise StoreError(f"building the search index of {shard_dir} failed: {' | '.join(tail) or proc.returncode}")
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
        return bool(report["built"]), int(report.get("peak_rss", 0))
    except (ValueError, IndexError, KeyError, TypeError):
        return True, 0
