"""Plain text out of small HTML fragments (Commons ``Artist`` fields, alt text)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SPACES = re.compile(r"\s+")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"br", "p", "div", "li"}:
            self.parts.append(" ")


def strip_html(fragment: str | None) -> str | None:
    """The fragment's text with tags removed, entities decoded, whitespace collapsed.

    None or a fragment with no text gives None.
    """
    if not fragment:
        return None
    collector = _TextCollector()
    collector.feed(fragment)
    collector.close()
    text = _SPACES.sub(" ", "".join(collector.parts)).strip()
    return text or None


def clean_text(value: str | None) -> str | None:
    """Whitespace-collapsed text, or None when empty."""
    if value is None:
        return None
    text = _SPACES.sub(" ", value).strip()
    return text or None
