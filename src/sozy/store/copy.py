"""Copy every face from one store to another: embedded → server, server → embedded, any pair.

The takedown list goes along. Batched, resumable and idempotent: points are read in id order, written with their own
ids (an upsert of a point already there changes nothing), and after each written batch the
next read offset goes to a checkpoint file. An interrupted copy run again resumes from the
checkpoint; at worst it rewrites one batch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import FaceStore, StoreError


@dataclass(frozen=True)
class CopyProgress:
    copied: int  # in all, a resumed copy's earlier runs included
    total: int  # faces in the source
    copied_now: int  # by this run
    seconds: float  # this run's

    @property
    def rate(self) -> float:
        return self.copied_now / self.seconds if self.seconds > 0 else 0.0


class Checkpoint:
    """Where a copy stopped: the next read offset and how many faces were copied, in a JSON file
    written atomically (a crash leaves the old or the new state, never half of one)."""

    def __init__(self, path: Path, source: str, target: str) -> None:
        self.path = path
        self.source = source
        self.target = target

    def load(self) -> tuple[str | None, int]:
        """``(offset, copied)`` to resume from; ``(None, 0)`` when there is no checkpoint."""
        if not self.path.is_file():
            return None, 0
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            offset, copied = data["offset"], int(data["copied"])
            source, target = data["source"], data["target"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"cannot read the copy checkpoint {self.path}: {exc}; delete it or pass --restart"
            ) from None
        if (source, target) != (self.source, self.target):
            raise StoreError(
                f"the checkpoint {self.path} belongs to a copy from {source} to {target}; "
                "pass another --checkpoint, or --restart to start this copy over"
            )
        return offset, copied

    def save(self, offset: str | None, copied: int) -> None:
        data = {"source": self.source, "target": self.target, "offset": offset, "copied": copied}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


async def copy_store(
    source: FaceStore,
    target: FaceStore,
    *,
    batch: int = 1000,
    checkpoint: Checkpoint | None = None,
    on_progress: Callable[[CopyProgress], None] | None = None,
) -> int:
    """Copy all points of ``source`` into ``target``; returns the number copied in all (resumed included).

    The checkpoint is removed when the copy completes.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    offset, copied = checkpoint.load() if checkpoint else (None, 0)
    # Takedowns first: what was taken down in the source stays down in the target.
    await target.add_takedowns(await source.takedowns())
    total = await source.count()
    started = time.perf_counter()
    copied_now = 0
    while True:
        points, next_offset = await source.scroll_points(offset, batch)
        if points:
            await target.upsert_points(points)
            copied += len(points)
            copied_now += len(points)
        if checkpoint and next_offset is not None:
            checkpoint.save(next_offset, copied)
        if on_progress:
            on_progress(CopyProgress(copied, total, copied_now, time.perf_counter() - started))
        if next_offset is None:
            break
        offset = next_offset
    if checkpoint:
        checkpoint.clear()
    return copied
