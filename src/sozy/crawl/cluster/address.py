"""The ``--ray`` address: resolved and probed before anything opens.

``ray.init`` on an address where no cluster answers keeps retrying for a
minute or more; a crawl should say at once that the address is wrong. So
the address is resolved the way Ray resolves it (``auto``: ``RAY_ADDRESS``,
else the cluster this machine started last) and its port is probed with a
plain TCP connect first.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

# Where `ray start` records the cluster this machine belongs to (Ray's own convention).
RAY_CURRENT_CLUSTER = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
PROBE_TIMEOUT_S = 5.0
_CLIENT_SCHEME = "ray://"


class ClusterAddressError(ValueError):
    """No Ray cluster can be reached at the address given."""


def resolve_address(address: str, *, environ: dict[str, str] | None = None, probe: bool = True) -> str:
    """The address to give ``ray.init``: ``auto`` resolved, the GCS (or client) port answering.

    Raises ``ClusterAddressError`` with one readable sentence when no cluster can be reached.
    """
    env = os.environ if environ is None else environ
    address = address.strip()
    if address in ("", "auto"):
        address = env.get("RAY_ADDRESS", "").strip() or _current_cluster()
    host, port = _host_port(address)
    if probe:
        _probe(address, host, port)
    return address


def ray_available() -> bool:
    """Whether the optional ``ray`` extra is installed (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _current_cluster() -> str:
    try:
        found = RAY_CURRENT_CLUSTER.read_text(encoding="utf-8").strip()
    except OSError:
        found = ""
    if not found:
        raise ClusterAddressError(
            "--ray auto: no Ray cluster on this machine (no RAY_ADDRESS, nothing in "
            f"{RAY_CURRENT_CLUSTER}); start one with `ray start --head`, or give --ray HOST:PORT"
        )
    return found


def _host_port(address: str) -> tuple[str, int]:
    bare = address.removeprefix(_CLIENT_SCHEME)
    host, colon, port = bare.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterAddressError(
            f"--ray {address!r}: not a Ray address; give HOST:PORT (the head's GCS port, 6379 by "
            "default), ray://HOST:PORT or auto"
        )
    return host, int(port)


def _probe(address: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return
    except socket.gaierror as exc:
        why = f"cannot resolve {host}: {exc.strerror or exc}"
    except TimeoutError:
        why = f"no answer from {host}:{port} within {PROBE_TIMEOUT_S:g} s"
    except OSError as exc:
        why = f"{host}:{port}: {exc.strerror or exc}"
    raise ClusterAddressError(
        f"--ray {address}: no Ray cluster answers ({why}); start one with `ray start --head` "
        "and give the address it prints"
    )
