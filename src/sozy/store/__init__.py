"""The face store: where face vectors and their payload live, and how they are searched.

``open_store(settings)`` picks the backend: ``store.url`` set → the Qdrant server
(``server.py``), else the embedded engine in ``settings.store_path`` (``edge.py``).
A ``store.url`` of ``local:<path>`` (or ``local::memory:``) opens the server backend on
qdrant-client's local mode, which speaks the same client API without a server: tests
and small experiments use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict, Unpack

from sozy.config import Settings

from .base import FaceStore, StoredPoint, StoreError, StoreInUse, StoreMismatch, StoreStats

LOCAL_PREFIX = "local:"


class EmbeddedOptions(TypedDict, total=False):
    """Options of the embedded backend's ``EmbeddedStore.open``; the server backend has none."""

    optimize_on_open: bool
    optimize_every: int
    indexing_threshold_kb: int


__all__ = [
    "EmbeddedOptions",
    "FaceStore",
    "StoreError",
    "StoreInUse",
    "StoreMismatch",
    "StoreStats",
    "StoredPoint",
    "open_store",
    "opened_store",
]


async def open_store(settings: Settings, *, create: bool = True, **options: Unpack[EmbeddedOptions]) -> FaceStore:
    """Open the store the settings name; ``create=False`` refuses to create a missing one.

    ``options`` go to the embedded backend's ``open`` (``optimize_on_open``,
    ``optimize_every``) and are ignored by the server backend.
    """
    url = settings.store.url.strip()
    if url.startswith(LOCAL_PREFIX):
        from .server import ServerStore

        target = url[len(LOCAL_PREFIX) :]
        if target == ":memory:":
            return await ServerStore.open(settings.store, location=":memory:", create=create)
        if not target:
            raise StoreError("store.url 'local:' needs a path (local:/var/lib/sozy/qdrant) or local::memory:")
        return await ServerStore.open(settings.store, path=target, create=create)
    if url:
        from .server import ServerStore

        return await ServerStore.open(settings.store, create=create)
    from .edge import EmbeddedStore

    return await EmbeddedStore.open(settings.store_path, settings.store, create=create, **options)


@asynccontextmanager
async def opened_store(
    settings: Settings, *, create: bool = True, optimize: bool = True, **options: Unpack[EmbeddedOptions]
) -> AsyncIterator[FaceStore]:
    """``async with opened_store(settings) as store:`` opens the store as ``open_store`` does and
    closes it on the way out, building the search index first unless ``optimize=False``."""
    store = await open_store(settings, create=create, **options)
    try:
        yield store
    finally:
        await store.close(optimize=optimize)
