"""Fixtures for the face engine's tests: one in-process analyzer per session, photo bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sozy.config import EngineSettings


@pytest.fixture(scope="session")
def analyzer():
    """The default analyzer (HOG, max_side 1024), models loaded once for the whole session."""
    from sozy.faces.analyze import FaceAnalyzer

    return FaceAnalyzer(EngineSettings())


@pytest.fixture(scope="session")
def photo_bytes(faces_dir) -> Callable[[str], bytes]:
    """The bytes of a shared photo: ``photo_bytes("obama/obama.jpg")``."""

    def read(rel: str) -> bytes:
        return (faces_dir / rel).read_bytes()

    return read
