"""How queued tasks leave for a worker and how its reply settles them (``sozy.faces.tasks``);
the same paths with real workers run in test_engine.py."""

from __future__ import annotations

import asyncio
import collections

import pytest

from sozy.faces.errors import CorruptImage, WorkerDied
from sozy.faces.tasks import Task, fail, settle, take_batch, task_message
from sozy.faces.worker import EMBED, EMBED_BATCH, TEST_SLEEP


def task(kind: str, payload: object = None) -> Task:
    return Task(kind, payload, asyncio.get_running_loop().create_future())


async def test_a_batch_takes_up_to_batch_embed_tasks_in_order() -> None:
    pending = collections.deque(task(EMBED_BATCH, i) for i in range(5))
    assert [t.payload for t in take_batch(pending, 3)] == [0, 1, 2]
    assert [t.payload for t in take_batch(pending, 3)] == [3, 4]
    assert take_batch(pending, 3) == []


async def test_other_kinds_leave_alone_and_end_a_batch() -> None:
    pending = collections.deque([task(EMBED_BATCH, 0), task(TEST_SLEEP, 1), task(EMBED_BATCH, 2)])
    assert [t.payload for t in take_batch(pending, 8)] == [0]
    assert [t.payload for t in take_batch(pending, 8)] == [1]
    assert [t.payload for t in take_batch(pending, 8)] == [2]


async def test_plain_embed_tasks_leave_one_at_a_time() -> None:
    pending = collections.deque(task(EMBED, i) for i in range(2))
    assert [t.payload for t in take_batch(pending, 8)] == [0]


async def test_tasks_whose_caller_gave_up_are_dropped() -> None:
    gone, kept = task(EMBED_BATCH, 0), task(EMBED_BATCH, 1)
    gone.future.cancel()
    pending = collections.deque([gone, kept])
    assert take_batch(pending, 8) == [kept]
    assert not pending


async def test_messages_carry_one_payload_or_the_batch_s_list() -> None:
    assert task_message(7, [task(EMBED, b"a")]) == (7, EMBED, b"a")
    assert task_message(8, [task(EMBED_BATCH, b"a"), task(EMBED_BATCH, b"b")]) == (8, EMBED_BATCH, [b"a", b"b"])


async def test_a_batch_reply_settles_each_task_with_its_own_item() -> None:
    tasks = [task(EMBED_BATCH) for _ in range(3)]
    bad = CorruptImage("broken")
    settle(tasks, "ok", ["faces a", bad, "faces c"])
    assert tasks[0].future.result() == "faces a" and tasks[2].future.result() == "faces c"
    with pytest.raises(CorruptImage):
        tasks[1].future.result()


async def test_an_error_reply_fails_every_task_of_the_batch() -> None:
    tasks = [task(EMBED_BATCH) for _ in range(2)]
    settle(tasks, "error", WorkerDied("gone"))
    assert all(isinstance(t.future.exception(), WorkerDied) for t in tasks)


async def test_settling_leaves_tasks_already_answered_alone() -> None:
    t = task(EMBED)
    t.future.cancel()
    settle([t], "ok", "late")
    fail(t, WorkerDied("late too"))
    assert t.future.cancelled()
