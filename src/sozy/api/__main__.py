"""``python -m sozy.api``: serve the search API and web page with uvicorn.

One server process: the embedded store allows a single process, and the face
engine's worker pool already uses every core (``--workers`` sets its size).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from sozy.api.app import create_app
from sozy.api.server import server_config
from sozy.config import ConfigError, load_settings
from sozy.logs import setup_logging


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sozy.api", description="Serve the Sozy lookalike search.")
    parser.add_argument("--config", help="TOML settings file (default: $SOZY_CONFIG or ./config/sozy.toml)")
    parser.add_argument("--data-dir", help="data directory holding the embedded store (settings: data_dir)")
    parser.add_argument("--qdrant-url", help="use this Qdrant server instead of the embedded store (store.url)")
    parser.add_argument("--host", help="address to listen on (api.host, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (api.port, default 8000)")
    parser.add_argument("--workers", type=int, help="face engine worker processes (engine.workers; 0 = one per core)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ... (log_level)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(
            args.config,
            overrides={
                "data_dir": args.data_dir,
                "store.url": args.qdrant_url,
                "api.host": args.host,
                "api.port": args.port,
                "engine.workers": args.workers,
                "log_level": args.log_level,
            },
        )
    except ConfigError as exc:
        print(f"sozy.api: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    app = create_app(settings)
    config = server_config(app, settings)
    server = uvicorn.Server(config)
    server.run()
    # uvicorn reports a failed startup (e.g. the store is in use) by not starting.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
