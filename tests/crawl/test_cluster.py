"""``--ray``: one crawl over a 3-node Ray cluster on this machine, against a loopback gallery.

The cluster crawls run once for the module (``cluster_scenarios.py``, in a
loopback-only network namespace: Ray binds to the machine's address
otherwise) and the tests read what they saw: the same point ids and people as
a one-machine crawl, ``--per-host`` held across all nodes at the image host,
and a node removed mid-crawl losing nothing. The address checks need no
cluster.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sozy.crawl.cluster import ClusterAddressError, resolve_address
from sozy.crawl.cluster.address import RAY_CURRENT_CLUSTER
from tests.crawl.conftest import REPO_ROOT, cli_env

from .cluster_scenarios import COPIES, NODES, PER_HOST

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'sozy[ray]')")


def _netns_problem() -> str | None:
    """Why a loopback-only network namespace cannot be made here, or None."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip not found"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"unshare -n not permitted here ({probe.stderr.strip() or probe.returncode}); run as root"
    return None


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> dict[str, Any]:
    problem = _netns_problem()
    if problem is not None:
        pytest.skip(f"cluster tests need a loopback-only network namespace: {problem}")
    work = tmp_path_factory.mktemp("cluster")
    out = work / "report.json"
    script = Path(__file__).with_name("cluster_scenarios.py")
    run = subprocess.run(
        [
            "unshare",
            "-n",
            "sh",
            "-c",
            'ip link set lo up && exec "$0" "$@"',
            sys.executable,
            str(script),
            str(out),
            str(work),
            str(faces_dir),
        ],
        env=cli_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0 and out.is_file(), (
        f"cluster scenarios failed:\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}"
    )
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.mark.slow
def test_a_cluster_crawl_stores_what_one_machine_stores(scenarios: dict[str, Any]) -> None:
    local, ray = scenarios["local"], scenarios["ray"]
    assert local["exit_code"] == ray["exit_code"] == 0
    assert len(local["points"]) > scenarios["photos"] // 2
    # The same point ids, with the same people (name, identity, label) and photos, and the same
    # outcome for every URL: the copies are duplicates wherever their originals were embedded.
    assert ray["points"] == local["points"]
    assert ray["statuses"] == local["statuses"]
    assert Counter(ray["statuses"].values()) == {"done": scenarios["photos"], "skipped": COPIES}
    # Every node took part, and the summary says how much each did.
    nodes = ray["summary"]["nodes"]
    assert len(nodes) == NODES and all(c["photos"] > 0 for c in nodes.values())
    assert sum(c["photos"] for c in nodes.values()) == scenarios["urls"]
    assert ray["summary"]["run"]["photos_done"] == scenarios["photos"]
    assert ray["summary"]["run"]["skipped_by_reason"] == {"duplicate_content": COPIES}
    assert ray["summary"]["engine"]["workers"] == NODES
    assert ray["summary"]["fetch"]["image"] == scenarios["urls"]


@pytest.mark.slow
def test_per_host_and_robots_hold_for_the_whole_cluster(scenarios: dict[str, Any]) -> None:
    ray = scenarios["ray"]
    # Measured at the image host: three nodes, each with its own fetcher, never more than --per-host at once.
    assert ray["requests"] == scenarios["urls"]
    assert 1 <= ray["peak"] <= PER_HOST
    # Its robots.txt was read once for the whole crawl, not once per node.
    assert ray["robots_requests"] == 1
    assert ray["summary"]["fetch"]["robots_fetches"] == 1


@pytest.mark.slow
def test_wikimedia_limits_hold_for_the_whole_cluster(scenarios: dict[str, Any]) -> None:
    wm = scenarios["wikimedia"]
    assert wm["exit_code"] == 0 and set(wm["statuses"].values()) == {"done"}
    assert wm["requests"]["upload"] == len(wm["statuses"]) >= 2 * NODES
    # Three nodes downloading Commons media, at most 2 at once in all; the APIs in series;
    # the one identifying agent everywhere.
    assert 1 <= wm["peak"]["upload"] <= 2
    assert wm["peak"]["wikidata"] == wm["peak"]["commons"] == 1
    for service in ("upload", "wikidata", "commons"):
        assert wm["agents"][service] == [wm["api_user_agent"]], service
    # Identities from Wikidata: every named face carries its person's Q-id.
    named = [p for p in wm["points"].values() if p["name"]]
    assert named and all(p["person_id"].startswith("Q") for p in named)
    assert len(wm["summary"]["nodes"]) == NODES


@pytest.mark.slow
def test_a_photo_that_kills_nodes_fails_alone(scenarios: dict[str, Any]) -> None:
    poison = scenarios["poison"]
    assert poison["exit_code"] == 0 and poison["summary"]["status"] == "finished"
    failed = {u: s for u, s in poison["statuses"].items() if s != "done"}
    # The poisoned photo's batch (cluster_batch 2) failed after three nodes died under it;
    # --retry-failed tries it again. Every other photo is done, on new actors of the same nodes.
    assert any(u.endswith("/poison.jpg") for u in failed), poison["statuses"]
    assert set(failed.values()) == {"failed"} and len(failed) <= 2 and len(poison["statuses"]) == 5
    assert poison["summary"]["run"]["failed_by_reason"] == {"node_lost": len(failed)}
    assert len(poison["lost"]) == 3


@pytest.mark.slow
def test_a_killed_driver_resumes_with_nothing_lost_and_nothing_twice(scenarios: dict[str, Any]) -> None:
    resume, local = scenarios["resume"], scenarios["local"]
    assert resume["first_exit"] == -9  # SIGKILL, mid-crawl
    assert 4 <= resume["killed_at"] < scenarios["photos"]
    assert resume["exit_code"] == 0, resume["stderr"]
    # The same photos read from their folder (by the nodes) and named by it: the same faces.
    assert set(resume["points"]) == set(local["points"])
    assert sum(c["photos"] for c in resume["summary"]["nodes"].values()) == scenarios["photos"] - resume["killed_at"]
    assert set(resume["statuses"].values()) == {"done"} and len(resume["statuses"]) == scenarios["photos"]
    assert set(resume["attempts"].values()) == {1}


@pytest.mark.slow
def test_a_node_lost_mid_crawl_loses_nothing_and_stores_nothing_twice(scenarios: dict[str, Any]) -> None:
    loss, local = scenarios["loss"], scenarios["local"]
    assert loss["removed"] is not None, "the crawl ended before the node could be removed"
    assert loss["lost"] == [loss["removed"]] and loss["redone"] >= 1
    assert loss["exit_code"] == 0 and loss["summary"]["status"] == "finished"
    assert loss["points"] == local["points"]
    assert loss["statuses"] == local["statuses"]
    # Every photo was recorded once: the lost batch was redone, not counted twice.
    assert set(loss["attempts"].values()) == {1}
    assert loss["summary"]["run"]["photos_done"] == scenarios["photos"]
    assert loss["summary"]["store"]["faces"] == len(local["points"])


def test_a_bad_address_fails_at_once_with_one_line(tmp_path: Path) -> None:
    urls = tmp_path / "photos.txt"
    urls.write_text("http://127.0.0.1:9/a.jpg\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # bound, not listening: connections are refused
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "sozy.crawl",
                "--urls",
                str(urls),
                "--data-dir",
                str(tmp_path / "data"),
                "--ray",
                f"127.0.0.1:{closed}",
            ],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sozy.crawl: error: --ray 127.0.0.1:")
    assert "no Ray cluster answers" in lines[0]
    assert not (tmp_path / "data").exists()


def test_addresses_resolve_as_ray_resolves_them(tmp_path: Path) -> None:
    assert resolve_address("auto", environ={"RAY_ADDRESS": "10.1.2.3:6379"}, probe=False) == "10.1.2.3:6379"
    assert resolve_address("ray://head:10001", environ={}, probe=False) == "ray://head:10001"
    for bad in ("head", "head:port", "head:70000", ":6379"):
        with pytest.raises(ClusterAddressError, match="not a Ray address"):
            resolve_address(bad, environ={}, probe=False)
    if not RAY_CURRENT_CLUSTER.exists():
        with pytest.raises(ClusterAddressError, match="no Ray cluster on this machine"):
            resolve_address("auto", environ={}, probe=False)


def test_shard_and_ray_do_not_mix(tmp_path: Path) -> None:
    urls = tmp_path / "photos.txt"
    urls.write_text("http://127.0.0.1:9/a.jpg\n")
    run = subprocess.run(
        [sys.executable, "-m", "sozy.crawl", "--urls", str(urls), "--shard", "1/2", "--ray", "auto"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2 and "--shard and --ray" in run.stderr


def test_without_the_ray_extra_the_flag_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sozy.crawl.cluster
    from sozy.crawl.__main__ import main

    monkeypatch.setattr(sozy.crawl.cluster, "ray_available", lambda: False)
    urls = tmp_path / "photos.txt"
    urls.write_text("http://127.0.0.1:9/a.jpg\n")
    assert main(["--urls", str(urls), "--data-dir", str(tmp_path / "data"), "--ray", "auto"]) == 2
    assert capsys.readouterr().err.strip() == "sozy.crawl: error: --ray needs Ray: pip install 'sozy[ray]'"
    assert not (tmp_path / "data").exists()
