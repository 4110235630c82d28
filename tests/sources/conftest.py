"""Local servers for the sources' tests: fake Wikimedia services and the celebrity site."""

from __future__ import annotations

from tests.servers.celebrity import celebrity  # noqa: F401  (pytest fixtures)
from tests.servers.wikimedia import wikimedia  # noqa: F401
