"""The text encoding a response declares: one reading of ``Content-Type``'s charset, for the
fetcher's text answers and for HTML pages."""

from __future__ import annotations

import codecs


def declared_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header when it names an encoding Python knows;
    None when there is none, or an unknown one (the caller then falls back)."""
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() != "charset":
            continue
        charset = value.strip("\"' \t")
        if not charset:
            return None
        try:
            codecs.lookup(charset)
        except LookupError:
            return None
        return charset
    return None
