"""``srcset`` attribute parsing: pick the largest image candidate."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WHITESPACE = " \t\n\r\f"
_DESCRIPTOR = re.compile(r"^(\d+(?:\.\d+)?)([wx])$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SrcsetCandidate:
    """One ``url [descriptor]`` entry: width in px (``w``) or pixel density (``x``)."""

    url: str
    width: int | None = None
    density: float | None = None


def parse_srcset(value: str) -> list[SrcsetCandidate]:
    """Parse a ``srcset`` value the way browsers split it.

    URLs may contain commas (image CDNs use them: ``w_100,h_80``); a URL ends
    at whitespace, and trailing commas belong to the separator, not the URL.
    Entries with descriptors we cannot read are dropped.
    """
    candidates: list[SrcsetCandidate] = []
    pos, end = 0, len(value)
    while pos < end:
        while pos < end and (value[pos] in _WHITESPACE or value[pos] == ","):
            pos += 1
        if pos >= end:
            break
        start = pos
        while pos < end and value[pos] not in _WHITESPACE:
            pos += 1
        url = value[start:pos]
        descriptors: list[str] = []
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            # Descriptors run to the next comma outside parentheses.
            depth = 0
            start = pos
            while pos < end:
                ch = value[pos]
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth = max(0, depth - 1)
                elif ch == "," and depth == 0:
                    break
                pos += 1
            descriptors = value[start:pos].split()
            pos += 1
        if not url:
            continue
        candidate = _candidate(url, descriptors)
        if candidate is not None:
            candidates.append(candidate)
    return candidates


def _candidate(url: str, descriptors: list[str]) -> SrcsetCandidate | None:
    width: int | None = None
    density: float | None = None
    for descriptor in descriptors:
        match = _DESCRIPTOR.match(descriptor)
        if match is None:
            if descriptor.lower().endswith("h"):
                continue  # height descriptors are allowed with w; they don't rank
            return None
        number, kind = float(match.group(1)), match.group(2).lower()
        if kind == "w":
            width = int(number)
        else:
            density = number
    if width is None and density is None:
        density = 1.0
    return SrcsetCandidate(url, width, density)


def largest(candidates: list[SrcsetCandidate]) -> SrcsetCandidate | None:
    """The candidate with the largest width; without widths, the largest density."""
    with_width = [c for c in candidates if c.width is not None]
    if with_width:
        return max(with_width, key=lambda c: c.width or 0)
    if candidates:
        return max(candidates, key=lambda c: c.density or 1.0)
    return None


def largest_url(value: str) -> str | None:
    """The URL of the largest candidate in a ``srcset`` value, or None."""
    best = largest(parse_srcset(value))
    return best.url if best else None
