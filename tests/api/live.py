"""A real uvicorn serving the app on 127.0.0.1, in a thread with its own event loop.

The app opens its own engine and store (the lifespan path a deployment takes);
a PhotoServer on the same loop serves the stored photos, so pages can show them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from sozy.api import create_app
from sozy.api.remote import RemoteImages
from sozy.api.server import server_config
from sozy.config import Settings
from sozy.records import FaceRecord
from sozy.store import open_store

from .servers import PhotoServer

START_TIMEOUT_S = 180.0


class LiveServer:
    """``with LiveServer(settings, faces_dir, records_for) as live: live.url, live.photos.url``."""

    def __init__(
        self,
        settings: Settings,
        faces_dir: Path,
        records_for: Callable[[str], Sequence[FaceRecord]],
        remote: Callable[[], RemoteImages] | None = None,
    ) -> None:
        self.settings = settings
        self.faces_dir = faces_dir
        self.records_for = records_for
        self.remote = remote
        self.url = ""
        self.photos: PhotoServer | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> LiveServer:
        self._thread = threading.Thread(target=self._run, name="sozy-live-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise TimeoutError("the live API server did not start")
        if self._error is not None:
            raise RuntimeError("the live API server failed to start") from self._error
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        async with PhotoServer(self.faces_dir) as photos:
            self.photos = photos
            store = await open_store(self.settings)
            await store.upsert(list(self.records_for(photos.url)))
            await store.close()
            app = create_app(self.settings, remote=self.remote() if self.remote else None)
            config = server_config(app, self.settings.replace(**{"api.host": "127.0.0.1"}), port=0)
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve())
            while not self._server.started:
                if serving.done():
                    serving.result()
                    raise RuntimeError("uvicorn exited during startup")
                await asyncio.sleep(0.05)
            port = self._server.servers[0].sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            await serving


class AppServer:
    """Any ASGI app behind uvicorn as ``server_config`` sets it up: ``with AppServer(app, settings) as s: s.url``."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.config = server_config(app, settings.replace(**{"api.host": "127.0.0.1"}), port=0)
        self.server = uvicorn.Server(self.config)
        self.url = ""
        self._thread = threading.Thread(target=self.server.run, name="sozy-app-server", daemon=True)

    def __enter__(self) -> AppServer:
        self._thread.start()
        for _ in range(int(START_TIMEOUT_S / 0.02)):
            if self.server.started or not self._thread.is_alive():
                break
            self._thread.join(0.02)
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self._thread.join(30)
