"""What a successful fetch returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


# Not frozen: a frozen dataclass's __init__ costs 4x, and this is built per image.
@dataclass(slots=True)
class Fetched:
    """A fetched body and where it came from.

    ``url`` is what was asked for, ``final_url`` where the bytes came from after
    redirects. ``image_type`` is the sniffed type ("jpeg", "png", ...) for
    ``Fetcher.image`` and None otherwise; the server's Content-Type is kept as
    sent but never trusted.
    """

    url: str
    final_url: str
    status: int
    content_type: str | None
    body: bytes
    headers: Mapping[str, str]
    image_type: str | None = None
