"""``HostSlots``: the cluster's per-host limiter, driven directly (no Ray needed for its logic)."""

from __future__ import annotations

import asyncio

from sozy.crawl.cluster.slots import HostSlots

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
