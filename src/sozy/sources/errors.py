"""Errors a source raises when it cannot answer (as opposed to finding nothing)."""

from __future__ import annotations


class SourceError(Exception):
    """A source could not complete a lookup; retrying later may succeed.

    ``reason`` is a short stable code (``"api_error"``, ``"bad_response"``)
    the crawler records with the name or URL that failed.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class UrlListError(ValueError):
    """A URL list that cannot be read at all (unknown format, no ``url`` column)."""
