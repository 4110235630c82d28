"""Fixtures for the face engine's tests: one in-process analyzer per session, photo bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sozy.config import EngineSettings


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory):
    """The converted ONNX descriptor model goes to a temporary cache, not the user's
    ~/.cache; engine workers and subprocesses inherit it through the environment."""
    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("xdg-cache")
        patch.setenv("XDG_CACHE_HOME", str(cache))
        yield cache / "sozy"


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
