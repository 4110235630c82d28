"""Which URL owns a content several URLs serve: ``ContentOwnership`` decides, nothing else runs.

The first tests hand the class photos in a chosen order and check each decision.
The last replays every order in which four copies can finish, with state writes in
between, against a real ``CrawlState``: whatever the order, the best-ranked URL ends
as the owner and no copy stays pending.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from sozy.crawl.ownership import Analysed, ContentOwnership, settle_batch
from sozy.crawl.reasons import DUPLICATE_CONTENT, NO_FACE, STORE_ERROR, TAKEN_DOWN
from sozy.crawl.state import DONE, FAILED, SKIPPED, ContentOwner, CrawlState, Job, Outcome
from sozy.records import Box, Candidate, FaceRecord

SHA = "ab" * 32


def job(seq: int, name: str | None = None) -> Job:
    url = f"http://copies.test/{seq}.jpg"
    return Job(seq=seq, url=url, candidate=Candidate(image_url=url, source="urls", name=name))


def record(j: Job, n: int) -> FaceRecord:
    return FaceRecord(
        vector=np.zeros(128, dtype=np.float32),
        image_url=j.url,
        box=Box(10 * n, 0, 10 * n + 8, 8),
        image_width=100,
        image_height=100,
        image_sha256=SHA,
        faces_in_image=2,
        source=j.candidate.source,
        model="test",
        name=j.candidate.name,
    )


def analysed(j: Job, faces: int = 1) -> Analysed:
    return Analysed(j, SHA, [record(j, n) for n in range(faces)])


def owner_of(j: Job, faces: int = 1) -> ContentOwner:
    return ContentOwner(j.seq, j.url, faces, bool(j.candidate.name))


def dup(url: str, of: str, *, attempt: bool = True) -> Outcome:
    return Outcome(url, SKIPPED, DUPLICATE_CONTENT, sha256=SHA, duplicate_of=of, attempt=attempt)


def done(j: Job, faces: int = 1) -> Outcome:
    return Outcome(j.url, DONE, sha256=SHA, faces=faces, seq=j.seq, named=bool(j.candidate.name))


def test_a_new_content_is_batched_and_claimed_and_done_once_stored() -> None:
    own, first = ContentOwnership(), job(1)
    item = analysed(first, faces=2)
    assert own.accept(item, None) == []
    assert own.batch == (item,) and own.faces == 2
    assert own.claimed(SHA) == owner_of(first, faces=2)
    batch = own.take_batch()
    assert (own.batch, own.faces) == ((), 0)
    assert own.claimed(SHA) is not None, "claims hold until the state has the outcomes"
    assert settle_batch(batch, error=None, refused=set()) == [done(first, faces=2)]
    own.written()
    assert own.claimed(SHA) is None


def test_a_photo_without_faces_claims_its_content_but_is_not_batched() -> None:
    own, first = ContentOwnership(), job(1)
    assert own.accept(analysed(first, faces=0), None) == [
        Outcome(first.url, SKIPPED, NO_FACE, sha256=SHA, faces=0, seq=1, named=False)
    ]
    assert own.batch == ()
    assert own.claimed(SHA) == owner_of(first, faces=0)


@pytest.mark.parametrize("claimed", [True, False], ids=["claimed-in-this-batch", "owner-in-the-state"])
def test_a_later_copy_loses_to_the_owner(claimed: bool) -> None:
    own, first, later = ContentOwnership(), job(1), job(2)
    stored = None
    if claimed:
        own.accept(analysed(first), None)
    else:
        stored = owner_of(first)
    assert own.accept(analysed(later), stored) == [dup(later.url, first.url)]
    assert [b.job for b in own.batch] == ([first] if claimed else [])


def test_the_fetch_stage_is_told_who_beats_a_job() -> None:
    own, first, later, named = ContentOwnership(), job(1), job(2), job(3, name="Ann")
    own.accept(analysed(later), None)
    assert own.beaten_by(later, SHA, None) is None, "its own claim"
    assert own.beaten_by(first, SHA, None) is None, "discovered earlier: it would take over"
    assert own.beaten_by(named, SHA, None) is None, "named: it would take over"
    # A claim made since the last write wins over what the state says.
    assert own.beaten_by(job(4), SHA, owner_of(job(9))) == owner_of(later)
    assert ContentOwnership().beaten_by(job(4), SHA, owner_of(first)) == owner_of(first)
    assert ContentOwnership().beaten_by(job(4), SHA, None) is None


def test_a_named_url_takes_the_content_from_an_unnamed_one_discovered_first() -> None:
    own, unnamed, named = ContentOwnership(), job(1), job(5, name="Ann")
    own.accept(analysed(unnamed, faces=2), None)
    assert own.accept(analysed(named), None) == []
    assert [b.job for b in own.batch] == [named] and own.faces == 1
    assert own.claimed(SHA) == owner_of(named)
    assert settle_batch(own.take_batch(), error=None, refused=set()) == [done(named), dup(unnamed.url, named.url)]
    # And an unnamed copy discovered even earlier loses to it.
    assert own.accept(analysed(job(0)), None) == [dup(job(0).url, named.url)]


def test_copies_in_reverse_order_in_one_batch_leave_one_owner_carrying_the_chain() -> None:
    own = ContentOwnership()
    jobs = [job(seq) for seq in (1, 2, 3, 4)]
    for j in reversed(jobs):
        assert own.accept(analysed(j), None) == []
    (owner,) = own.batch
    assert owner.job == jobs[0] and own.faces == 1
    assert settle_batch(own.take_batch(), error=None, refused=set()) == [
        done(jobs[0]),
        *(dup(j.url, jobs[0].url) for j in (jobs[1], jobs[2], jobs[3])),
    ]


def test_taking_over_a_stored_owner_hands_its_url_on_without_an_attempt() -> None:
    own, stored, better = ContentOwnership(), job(7), job(2)
    assert own.accept(analysed(better), owner_of(stored)) == []
    assert settle_batch(own.take_batch(), error=None, refused=set()) == [
        done(better),
        dup(stored.url, better.url, attempt=False),
    ]


def test_a_chain_continues_across_state_writes() -> None:
    own, last, middle, first = ContentOwnership(), job(3), job(2), job(1)
    own.accept(analysed(last), None)
    own.accept(analysed(middle), None)  # takes over `last` in the batch
    assert settle_batch(own.take_batch(), error=None, refused=set()) == [done(middle), dup(last.url, middle.url)]
    own.written()
    # The state now names `middle` as the owner; `first` takes over from it.
    own.accept(analysed(first), owner_of(middle))
    assert settle_batch(own.take_batch(), error=None, refused=set()) == [
        done(first),
        dup(middle.url, first.url, attempt=False),
    ]


def test_a_better_copy_without_faces_settles_what_it_displaced_at_once() -> None:
    own, worse, other_worse, better = ContentOwnership(), job(3), job(2), job(1)
    own.accept(analysed(worse), None)
    own.accept(analysed(other_worse), None)  # carries `worse`
    # Same bytes decoded without faces this time: it owns the content, nothing is upserted.
    assert own.accept(analysed(better, faces=0), None) == [
        Outcome(better.url, SKIPPED, NO_FACE, sha256=SHA, faces=0, seq=1, named=False),
        dup(other_worse.url, better.url),
        dup(worse.url, better.url),
    ]
    assert own.batch == () and own.faces == 0


def test_a_better_copy_without_faces_takes_a_stored_owner_without_an_attempt() -> None:
    own, stored, better = ContentOwnership(), job(7), job(2)
    assert own.accept(analysed(better, faces=0), owner_of(stored)) == [
        dup(stored.url, better.url, attempt=False),
        Outcome(better.url, SKIPPED, NO_FACE, sha256=SHA, faces=0, seq=2, named=False),
    ]


def test_a_failed_write_fails_the_owner_and_the_copies_it_carried_but_not_stored_urls() -> None:
    own, stored, worse, better = ContentOwnership(), job(9), job(3), job(1)
    own.accept(analysed(worse), owner_of(stored))  # carries the stored URL
    own.accept(analysed(better), None)  # carries `worse`, and the stored URL with it
    assert settle_batch(own.take_batch(), error="boom", refused=set()) == [
        Outcome(better.url, FAILED, STORE_ERROR, error="boom"),
        Outcome(worse.url, FAILED, STORE_ERROR, error="boom"),
    ]


def test_faces_the_store_refuses_are_a_takedown_and_still_settle_the_copies() -> None:
    own, worse, better = ContentOwnership(), job(2), job(1)
    own.accept(analysed(worse), None)
    own.accept(analysed(better, faces=2), None)
    batch = own.take_batch()
    ids = {r.id for r in batch[0].records}
    assert settle_batch(batch, error=None, refused=ids) == [
        Outcome(better.url, SKIPPED, TAKEN_DOWN, sha256=SHA),
        dup(worse.url, better.url),
    ]
    one = {batch[0].records[0].id}
    assert settle_batch(batch, error=None, refused=one)[0] == done(better, faces=1)


def write_state(state: CrawlState, own: ContentOwnership, pending: list[Outcome]) -> None:
    """What the crawler's flush does: the outcomes gathered, then the batch's, in one write."""
    state.record([*pending, *settle_batch(own.take_batch(), error=None, refused=set())])
    pending.clear()
    own.written()


@pytest.mark.parametrize("named", [None, 2], ids=["unnamed", "copy-2-named"])
def test_every_finishing_order_and_write_points_end_with_the_best_owner(tmp_path: Path, named: int | None) -> None:
    """Four copies, every order they can finish in, a state write after any of them."""
    cases = 0
    for order in itertools.permutations(range(4)):
        for writes in itertools.product([False, True], repeat=3):
            with CrawlState(tmp_path / f"{cases}.sqlite") as state:
                jobs = state.add_jobs(
                    (u, Candidate(image_url=u, source="urls", name="Ann" if i == named else None))
                    for i, u in enumerate(f"http://copies.test/{i}.jpg" for i in range(4))
                )
                own = ContentOwnership()
                pending: list[Outcome] = []
                for n, i in enumerate(order):
                    stored = None if own.claimed(SHA) else state.content_owner(SHA)
                    pending += own.accept(analysed(jobs[i]), stored)
                    if n < 3 and writes[n]:
                        write_state(state, own, pending)
                write_state(state, own, pending)
                best = jobs[named if named is not None else 0]
                rows = {row.url: row for row in state.urls()}
                assert state.content_owner(SHA) == owner_of(best), (order, writes)
                assert (rows[best.url].status, rows[best.url].faces) == (DONE, 1), (order, writes)
                for j in jobs:
                    if j is not best:
                        row = rows[j.url]
                        assert (row.status, row.reason, row.duplicate_of) == (
                            SKIPPED,
                            DUPLICATE_CONTENT,
                            best.url,
                        ), (order, writes, j.url)
            cases += 1
