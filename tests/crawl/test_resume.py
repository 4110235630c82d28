"""Killed, interrupted, limited and retried crawls end exactly where an uninterrupted crawl ends.

The crawls here run as real ``python -m sozy.crawl`` processes against the
local celebrity site served by this test process; they are killed with
SIGKILL or interrupted with SIGINT at moments chosen by watching their state
file, then run again with the same command.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sozy.config import Settings
from sozy.store import StoredPoint
from tests.servers.celebrity import CelebritySite, read_manifest

from .conftest import cli_args, cli_env, state_rows, stored_points

PROCESS_TIMEOUT_S = 240
# These crawls test kills, not timeouts: fetch timeouts a loaded machine cannot trip (the
# conftest's 1 s read timeout failed photos of the reference crawl at load average 20).
PATIENT = {"engine.workers": 1, "crawl.concurrency": 4, "crawl.read_timeout_s": 30.0, "crawl.total_timeout_s": 120.0}


def photo_list(site: CelebritySite, faces_dir: Path, path: Path) -> Path:
    """A csv list: every shared photo at 480 px (quick to embed), named after its folder when it has
    one person, plus copies of the same bytes under another host name and a missing photo."""
    rows = ["url,name"]
    for photo in read_manifest(faces_dir):
        name = photo.person.replace("_", " ").title() if photo.person else ""
        rows.append(f"{site.url(f'/photos/480/{photo.path}')},{name}")
    # Same bytes, other URLs: one unnamed (loses to the first), one named (wins over an unnamed first).
    rows.append(f"{site.offsite_url('/photos/480/obama/obama.jpg')},")
    rows.append(f"{site.url('/photos/480/group/biden-and-obama.jpg')}?copy=1,Joe Biden")
    rows.append(f"{site.url('/photos/480/nobody/missing.jpg')},")
    path.write_text("\n".join(rows) + "\n")
    return path


def done_count(data: Path) -> int:
    """Photos done so far, read while the crawl runs (a read-only WAL reader never blocks it)."""
    db = data / "crawl.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM urls WHERE status = 'done'").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


async def start(args: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *args,
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), PROCESS_TIMEOUT_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def wait_for_done(proc: asyncio.subprocess.Process, data: Path, at_least: int) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROCESS_TIMEOUT_S
    while loop.time() < deadline:
        n = done_count(data)
        if n >= at_least:
            return n
        if proc.returncode is not None:
            _out, err = await proc.communicate()
            raise AssertionError(f"crawl ended before {at_least} photos were done:\n{err.decode()[-3000:]}")
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting for the crawl")


def comparable(points: list[StoredPoint]) -> dict[str, tuple[dict, np.ndarray]]:
    out = {}
    for p in points:
        payload = dict(p.payload)
        payload.pop("crawled_at")
        out[p.id] = (payload, p.vector)
    return out


def outcomes(settings: Settings) -> dict[str, tuple]:
    return {
        u: (r.status, r.reason, r.sha256, r.faces, r.duplicate_of, r.candidate.name)
        for u, r in state_rows(settings).items()
    }


def assert_same_crawl(
    reference: Settings, resumed: Settings, ref_points: list[StoredPoint], points: list[StoredPoint]
) -> None:
    assert len({p.id for p in points}) == len(points), "no point stored twice"
    ref, got = comparable(ref_points), comparable(points)
    assert set(got) == set(ref)
    for pid, (payload, vector) in ref.items():
        assert got[pid][0] == payload, pid
        assert np.array_equal(got[pid][1], vector), pid
    assert outcomes(resumed) == outcomes(reference)
    assert not [u for u, o in outcomes(resumed).items() if o[0] == "pending"]


@pytest.mark.slow
async def test_kill_9_twice_then_rerun_gives_the_uninterrupted_result(
    tmp_path: Path,
    faces_dir: Path,
    site: CelebritySite,
    make_settings,
) -> None:
    photos = photo_list(site, faces_dir, tmp_path / "photos.csv")
    # One engine worker and a small fetch concurrency: slow enough to be killed halfway.
    reference = make_settings(tmp_path / "reference", **PATIENT)
    killed = make_settings(tmp_path / "killed", **PATIENT)

    code, _, err = await finish(await start([*cli_args(reference), "--urls", str(photos)]))
    assert code == 0, err
    ref_points = await stored_points(reference)
    total = sum(1 for r in state_rows(reference).values() if r.status == "done")
    assert total >= 20

    command = [*cli_args(killed), "--urls", str(photos)]
    data = Path(killed.data_dir)
    for kill_after in (3, total // 2):
        proc = await start(command)
        await wait_for_done(proc, data, kill_after)
        proc.send_signal(signal.SIGKILL)
        code, _, _ = await finish(proc)
        assert code == -signal.SIGKILL
        assert done_count(data) < total, "killed halfway, not after the end"
    code, out, err = await finish(await start(command))
    assert code == 0, err
    assert "Crawl finished" in out

    assert_same_crawl(reference, killed, ref_points, await stored_points(killed))
    # Resumed runs fetched only what was left: every photo URL was asked for at most
    # once per run that could have been holding it when killed, and the named copy owns its bytes.
    rows = state_rows(killed)
    copy = rows[site.url("/photos/480/group/biden-and-obama.jpg") + "?copy=1"]
    assert copy.status == "done" and copy.candidate.name == "Joe Biden"
    first = rows[site.url("/photos/480/group/biden-and-obama.jpg")]
    assert (first.reason, first.duplicate_of) == ("duplicate_content", copy.url)
    assert rows[site.url("/photos/480/nobody/missing.jpg")].reason == "http_404"


@pytest.mark.slow
async def test_ctrl_c_stops_gracefully_with_a_summary_and_a_rerun_finishes(
    tmp_path: Path,
    faces_dir: Path,
    site: CelebritySite,
    make_settings,
) -> None:
    photos = photo_list(site, faces_dir, tmp_path / "photos.csv")
    settings = make_settings(**PATIENT)
    command = [*cli_args(settings), "--urls", str(photos)]
    data = Path(settings.data_dir)

    proc = await start(command)
    await wait_for_done(proc, data, 2)
    proc.send_signal(signal.SIGINT)
    code, out, err = await finish(proc)
    assert code == 130, err
    assert "SIGINT: stopping" in err
    assert "Crawl interrupted" in out
    summary = json.loads((data / "crawl-summary.json").read_text())
    assert (summary["status"], summary["exit_code"]) == ("interrupted", 130)
    rows = state_rows(settings)
    pending = [u for u, r in rows.items() if r.status == "pending"]
    assert pending, "stopped early: photos are left for the next run"
    assert summary["state"]["pending"] == len(pending)
    # What the state calls done is in the store, face for face.
    points = await stored_points(settings)
    per_url: dict[str, int] = {}
    for p in points:
        per_url[p.payload["image_url"]] = per_url.get(p.payload["image_url"], 0) + 1
    assert per_url == {u: r.faces for u, r in rows.items() if r.status == "done"}

    code, out, err = await finish(await start(command))
    assert code == 0, err
    rows = state_rows(settings)
    assert not [u for u, r in rows.items() if r.status == "pending"]
    points = await stored_points(settings)
    assert len(points) == sum(r.faces for r in rows.values() if r.status == "done")


@pytest.mark.slow
async def test_a_second_ctrl_c_exits_at_once_and_the_state_stays_usable(
    tmp_path: Path,
    faces_dir: Path,
    site: CelebritySite,
    make_settings,
) -> None:
    photos = photo_list(site, faces_dir, tmp_path / "photos.csv")
    settings = make_settings(**PATIENT)
    command = [*cli_args(settings), "--urls", str(photos)]
    proc = await start(command)
    await wait_for_done(proc, Path(settings.data_dir), 1)
    proc.send_signal(signal.SIGINT)
    await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    code, _, err = await finish(proc)
    assert code == 130
    assert loop.time() - sent < 5
    assert "Interrupted again: exiting now" in err
    code, _, err = await finish(await start(command))
    assert code == 0, err
    rows = state_rows(settings)
    assert not [u for u, r in rows.items() if r.status == "pending"]
    assert len(await stored_points(settings)) == sum(r.faces for r in rows.values() if r.status == "done")
