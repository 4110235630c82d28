"""Local servers for the sources' tests: fake Wikimedia services and the celebrity site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.servers.celebrity import CelebritySite, celebrity_site
from tests.servers.wikimedia import WikimediaServer, wikimedia_server


@pytest.fixture
async def wikimedia(faces_dir: Path) -> AsyncIterator[WikimediaServer]:
    async with wikimedia_server(faces_dir) as server:
        yield server


@pytest.fixture
async def celebrity(faces_dir: Path) -> AsyncIterator[CelebritySite]:
    async with celebrity_site(faces_dir) as site:
        yield site
