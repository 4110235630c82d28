"""Talking to Qdrant through qdrant-client: its failures as one ``StoreError``, and reading a
collection page by page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import httpx
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as m
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import ApiException

from .base import ID_PAGE, StoreError

# What a lost or refusing server raises: qdrant-client's own errors and those of its
# transports (httpx for REST, grpcio for gRPC, both qdrant-client dependencies).
SERVER_ERRORS: tuple[type[BaseException], ...] = (
    ApiException,
    QdrantException,
    ConnectionError,
    TimeoutError,
    httpx.HTTPError,
    grpc.RpcError,
)


@contextmanager
def server_errors(where: str, collection: str, doing: str) -> Iterator[None]:
    """Turn what a lost or refusing server raises into a StoreError that says what failed where."""
    try:
        yield
    except (StoreError, ValueError):
        raise
    except SERVER_ERRORS as exc:
        # One line: the CLI prints it as its reason, logs keep it on one record.
        text = " ".join(str(exc).split()) or type(exc).__name__
        hint = " (check store.api_key)" if re.search(r"\b(401|403)\b|unauthori[sz]ed|forbidden", text, re.I) else ""
        raise StoreError(f"Qdrant at {where}: {doing} collection {collection!r} failed: {text}{hint}") from exc


async def scroll_pages(
    client: AsyncQdrantClient,
    collection: str,
    flt: m.Filter | None = None,
    *,
    with_payload: bool | list[str] = True,
    with_vectors: bool = False,
) -> AsyncIterator[list[m.Record]]:
    """Every point of ``collection`` matching ``flt``, page by page."""
    offset: Any = None
    while True:
        records, offset = await client.scroll(
            collection,
            scroll_filter=flt,
            offset=offset,
            limit=ID_PAGE,
            with_payload=with_payload,
            with_vectors=with_vectors,
        )
        yield records
        if offset is None:
            return
