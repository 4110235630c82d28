"""The search service: a Starlette app (JSON API + web page) over the face engine and store.

``create_app(settings)`` builds it; ``python -m sozy.api`` serves it with uvicorn.
"""

from __future__ import annotations

from sozy.api.app import create_app

__all__ = ["create_app"]
