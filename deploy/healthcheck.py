"""Container healthcheck for Sozy's API: exit 0 when ``GET /healthz`` answers 2xx.

The images have no curl or wget, but they have Python, so Docker runs this:

    python /opt/sozy/healthcheck.py

It asks 127.0.0.1 on the API's own port setting (``SOZY_API_PORT``, default
8000), so set the port with that variable rather than ``--port`` in containers.
Standard library only, and no proxy: an ``HTTP_PROXY`` set for the crawler
must not swallow a request to the container itself.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

DEFAULT_PORT = 8000
TIMEOUT_S = 4.0


def health_url(environ: Mapping[str, str]) -> str:
    port = environ.get("SOZY_API_PORT", "").strip() or str(DEFAULT_PORT)
    return f"http://127.0.0.1:{int(port)}/healthz"


def check(url: str, timeout: float = TIMEOUT_S) -> str | None:
    """``None`` when healthy, else why not."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def main() -> int:
    try:
        url = health_url(os.environ)
    except ValueError:
        print(f"unhealthy: SOZY_API_PORT is not a port: {os.environ.get('SOZY_API_PORT')!r}", file=sys.stderr)
        return 1
    problem = check(url)
    if problem:
        print(f"unhealthy: {url}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
