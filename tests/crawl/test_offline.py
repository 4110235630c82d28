"""Offline, or a dead endpoint: a source stops after a run of connection failures, says why once, exits 5.

The dead endpoint is a real socket on 127.0.0.1 that is bound but not
listening, so every connection to it is refused, as a host that is down.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sozy.config import Settings
from sozy.crawl.outage import HOST_DOWN_AFTER, Outages
from sozy.crawl.plan import CrawlPlan
from sozy.crawl.state import CrawlState
from sozy.fetch import FetchError
from tests.servers.wikimedia import WikimediaServer

from .conftest import cli_args, cli_env

NAMES = [f"Person {i}" for i in range(40)]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_names_against_a_dead_endpoint_stop_early_say_why_once_and_exit_5(
    tmp_path: Path, refused_port: int, make_settings: Callable[..., Settings]
) -> None:
    names = tmp_path / "names.txt"
    names.write_text("\n".join(NAMES) + "\n")
    settings = make_settings()
    env = {**cli_env(), "SOZY_CRAWL_WIKIDATA_API": f"http://127.0.0.1:{refused_port}/w/api.php"}
    process = await asyncio.create_subprocess_exec(
        *cli_args(settings),
        "--names",
        str(names),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 240)
    stderr = err.decode()
    assert process.returncode == 5, stderr

    host = f"127.0.0.1:{refused_port}"
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, stderr
    assert host in errors[0] and "connection" in errors[0] and "crawl.wikidata_api" in errors[0]
    assert "network" in errors[0]
    # Repeated warnings are folded into a count, not one line per name.
    one_by_one = [line for line in stderr.splitlines() if "name lookup 'Person" in line]
    assert len(one_by_one) == 3
    assert "name lookups failed with connection" in stderr

    summary = json.loads((Path(settings.data_dir) / "crawl-summary.json").read_text())
    assert summary["status"] == "incomplete" and summary["exit_code"] == 5
    assert summary["sources_down"]["name"]["host"] == host
    assert summary["sources_down"]["name"]["failures"] == HOST_DOWN_AFTER
    # Nothing is held against the names: the ones that failed on the way go back to pending
    # with those not tried, and the same command resumes them all once the host is back.
    lookups = summary["run"]["lookups"]
    assert lookups == {"not_tried": len(NAMES)}
    assert summary["run"]["units_failed_by_reason"] == {}
    assert "Crawl incomplete" in out.decode() and f"stopped: name lookups, {host} unreachable" in out.decode()
    with CrawlState(Path(settings.data_dir) / "crawl.sqlite") as state:
        assert state.unit_counts()["name"] == {"pending": len(NAMES)}


async def test_pending_names_are_looked_up_when_the_host_is_back(
    tmp_path: Path,
    refused_port: int,
    wikimedia: WikimediaServer,
    make_settings: Callable[..., Settings],
    crawl: Callable[..., Any],
) -> None:
    names = tmp_path / "names.txt"
    # Behind the first lookups and those in flight when the host is found down.
    names.write_text("\n".join([*NAMES[: HOST_DOWN_AFTER + 4], "Lin-Manuel Miranda"]) + "\n")
    plan = CrawlPlan(names_file=names)
    dead = make_settings(
        **{**wikimedia.overrides(), "crawl.wikidata_api": f"http://127.0.0.1:{refused_port}/w/api.php"}
    )
    first = await crawl(dead, plan)
    assert first.exit_code == 5 and first.summary["run"]["lookups"]["not_tried"] >= 1

    back = make_settings(**wikimedia.overrides())
    second = await crawl(back, plan)
    assert second.exit_code == 0
    # Every name is looked up this time, the ones that failed in the first run too.
    assert second.summary["run"]["lookups"]["done"] == HOST_DOWN_AFTER + 5 and second.summary["sources_down"] == {}
    assert second.summary["run"]["photos_done"] >= 1  # Lin-Manuel Miranda's photo


def test_a_success_or_another_host_breaks_the_run_of_failures() -> None:
    def refused(host: str) -> FetchError:
        return FetchError("connection", f"http://{host}/w/api.php", "Connect call failed")

    outages = Outages(limit=3)
    assert outages.failure("name", refused("a:1")) is None
    assert outages.failure("name", refused("a:1")) is None
    outages.success("name")
    assert outages.failure("name", refused("a:1")) is None
    assert outages.failure("name", refused("b:1")) is None  # another host: a new run
    assert outages.failure("name", FetchError("http_404", "http://b:1/x")) is None  # b answered
    for _ in range(2):
        assert outages.failure("name", refused("b:1")) is None
    down = outages.failure("name", refused("b:1"))
    assert down is not None and down.host == "b:1" and down.failures == 3 and outages.stopped("name")
    assert outages.failure("name", refused("b:1")) is None  # said once
    assert [reason for _, reason in down.failed] == ["connection"] * 3
    assert not outages.stopped("search")
