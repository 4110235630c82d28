"""``HostSlots``: the cluster's per-host limiter, driven directly (no Ray needed for its logic)."""

from __future__ import annotations

import asyncio

from sozy.crawl.cluster.robots import RobotsBoard
from sozy.crawl.cluster.slots import HostSlots
from sozy.fetch.robots import ERROR_TTL_S

HOST = "http://img.example:80"


async def test_slots_are_held_per_host_across_nodes() -> None:
    slots = HostSlots(per_host=2)
    await slots.acquire("a1", "node-a", HOST)
    await slots.acquire("b1", "node-b", HOST)
    third = asyncio.ensure_future(slots.acquire("c1", "node-c", HOST))
    await asyncio.sleep(0)
    assert not third.done() and slots.active(HOST) == 2
    await slots.acquire("x1", "node-c", "http://other.example:80")  # another host is not held up
    await slots.release("a1")
    await third
    assert slots.active(HOST) == 2


async def test_a_slot_given_back_before_it_is_granted_is_not_kept() -> None:
    slots = HostSlots(per_host=1)
    await slots.acquire("a1", "node-a", HOST)
    waiting = asyncio.ensure_future(slots.acquire("b1", "node-b", HOST))
    await asyncio.sleep(0)
    await slots.release("b1")  # node b gave up waiting (its fetch was cancelled)
    await slots.release("a1")
    await waiting
    assert slots.active(HOST) == 0
    await slots.acquire("c1", "node-c", HOST)
    assert slots.active(HOST) == 1


async def test_a_lost_node_gives_back_what_it_held_and_waited_for() -> None:
    slots = HostSlots(per_host=1)
    await slots.acquire("a1", "node-a", HOST)
    waiting = asyncio.ensure_future(slots.acquire("a2", "node-a", HOST))
    await asyncio.sleep(0)
    assert await slots.release_node("node-a") == 2
    await waiting
    assert slots.active(HOST) == 0
    await slots.acquire("b1", "node-b", HOST)
    assert slots.active(HOST) == 1


async def test_a_pool_with_its_own_limit_is_held_to_it() -> None:
    # A fetch policy's pool (e.g. every Wikimedia media download together) brings its own limit.
    slots = HostSlots(per_host=8)
    pool = "policy:wikimedia_media"
    await slots.acquire("a1", "node-a", pool, 0.0, 2)
    await slots.acquire("b1", "node-b", pool, 0.0, 2)
    third = asyncio.ensure_future(slots.acquire("c1", "node-c", pool, 0.0, 2))
    await asyncio.sleep(0)
    assert not third.done() and slots.active(pool) == 2
    await slots.release("b1")
    await third


async def test_robots_txt_is_loaded_by_one_node_and_known_to_all() -> None:
    board = RobotsBoard(wait_s=30)
    assert await board.get(HOST) is None  # node a loads it
    waiting = [asyncio.ensure_future(board.get(HOST)) for _ in range(2)]  # nodes b and c wait
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiting)
    board.put(HOST, 200, b"User-agent: *\nDisallow: /private\n")
    assert [await w for w in waiting] == [(200, b"User-agent: *\nDisallow: /private\n")] * 2
    assert await board.get(HOST) == (200, b"User-agent: *\nDisallow: /private\n")


async def test_a_failed_load_is_taken_over_by_a_waiting_node() -> None:
    board = RobotsBoard(wait_s=30)
    assert await board.get(HOST) is None
    waiting = asyncio.ensure_future(board.get(HOST))
    await asyncio.sleep(0)
    board.drop(HOST)  # node a could not load it
    assert await waiting is None  # node b loads it now
    board.put(HOST, 404, b"")
    assert await board.get(HOST) == (404, b"")


async def test_answers_expire_as_one_machine_s_cache_would() -> None:
    now = [0.0]
    board = RobotsBoard(wait_s=30, clock=lambda: now[0])
    assert await board.get(HOST) is None
    board.put(HOST, 503, b"")  # unavailable: everything disallowed, asked again after ERROR_TTL_S
    assert await board.get(HOST) == (503, b"")
    now[0] += ERROR_TTL_S + 1
    assert await board.get(HOST) is None
