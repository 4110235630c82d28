"""The crawl state file: jobs, outcomes, content owners, discovery units, locking, durability."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sozy.crawl.state import (
    DONE,
    FAILED,
    PENDING,
    SKIPPED,
    CrawlState,
    Outcome,
    StateError,
    StateInUse,
)
from sozy.records import Candidate


def cand(url: str, **kw: object) -> tuple[str, Candidate]:
    return url, Candidate(image_url=url, source=str(kw.pop("source", "urls")), **kw)  # type: ignore[arg-type]


@pytest.fixture
def state(tmp_path: Path):
    with CrawlState(tmp_path / "crawl.sqlite") as s:
        yield s


def test_new_urls_become_pending_jobs_in_discovery_order(state: CrawlState) -> None:
    jobs = state.add_jobs([cand("http://a/1.jpg", name="Ann"), cand("http://a/2.jpg")])
    assert [j.url for j in jobs] == ["http://a/1.jpg", "http://a/2.jpg"]
    assert jobs[0].seq < jobs[1].seq
    assert jobs[0].candidate.name == "Ann"
    # Known URLs are not jobs again, whatever the second source says about them.
    again = state.add_jobs([cand("http://a/2.jpg", name="Bob"), cand("http://a/3.jpg")])
    assert [j.url for j in again] == ["http://a/3.jpg"]
    assert state.url("http://a/2.jpg").candidate.name is None  # type: ignore[union-attr]
    pending = state.jobs(PENDING)
    assert [j.url for j in pending] == ["http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg"]


def test_candidate_metadata_survives_for_resumed_crawls(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    with CrawlState(path) as s:
        s.add_jobs(
            [
                cand(
                    "http://a/1.jpg",
                    source="pages",
                    page_url="http://a/",
                    name=None,
                    license="CC BY 4.0",
                    attribution="Jo",
                    alt="Ann on stage",
                    page_title="Ann",
                )
            ]
        )
    with CrawlState(path) as s:
        (job,) = s.jobs(PENDING)
    assert job.candidate == Candidate(
        image_url="http://a/1.jpg",
        source="pages",
        page_url="http://a/",
        name=None,
        license="CC BY 4.0",
        attribution="Jo",
        alt="Ann on stage",
        page_title="Ann",
    )


def test_licence_url_and_fetch_policy_survive(tmp_path: Path) -> None:
    with CrawlState(tmp_path / "s.sqlite") as s:
        s.add_jobs(
            [cand("http://u/1.jpg", source="wikidata", license_url="https://l/by", fetch_policy="wikimedia_media")]
        )
    with CrawlState(tmp_path / "s.sqlite") as s:
        (job,) = s.jobs(PENDING)
    assert (job.candidate.license_url, job.candidate.fetch_policy) == ("https://l/by", "wikimedia_media")


@pytest.mark.parametrize("required", [True, False, None])
def test_reuse_terms_survive_as_written(tmp_path: Path, required: bool | None) -> None:
    with CrawlState(tmp_path / "s.sqlite") as s:
        s.add_jobs([cand("http://u/1.jpg", attribution_required=required, restrictions="personality|trademarked")])
    with CrawlState(tmp_path / "s.sqlite") as s:
        (job,) = s.jobs(PENDING)
    assert job.candidate.attribution_required is required
    assert job.candidate.restrictions == "personality|trademarked"


def test_a_persons_portrait_stays_marked_across_a_resume(tmp_path: Path) -> None:
    with CrawlState(tmp_path / "s.sqlite") as s:
        s.add_jobs([cand("http://u/p18.jpg", reference=True), cand("http://u/other.jpg")])
    with CrawlState(tmp_path / "s.sqlite") as s:
        marked = {j.url: j.candidate.reference for j in s.jobs(PENDING)}
    assert marked == {"http://u/p18.jpg": True, "http://u/other.jpg": False}


def test_a_state_from_before_the_policy_columns_is_brought_up_to_date(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with CrawlState(path) as s:
        s.add_jobs([cand("http://u/w.jpg", source="wikidata"), cand("http://u/p.jpg", source="pages")])
    db = sqlite3.connect(path)
    for column in ("license_url", "fetch_policy", "attribution_required", "restrictions", "reference"):
        db.execute(f"ALTER TABLE urls DROP COLUMN {column}")
    db.commit()
    db.close()
    with CrawlState(path) as s:
        policies = {j.url: j.candidate.fetch_policy for j in s.jobs(PENDING)}
        s.add_jobs([cand("http://u/new.jpg", attribution_required=False, reference=True)])
        jobs = s.jobs(PENDING)
        (new,) = [j for j in jobs if j.url == "http://u/new.jpg"]
    assert new.candidate.attribution_required is False  # the added column keeps a bool, not the text "0"
    assert new.candidate.reference is True
    assert [j.candidate.reference for j in jobs if j.url != "http://u/new.jpg"] == [False, False]
    # Wikidata's photos are Commons media, whatever run found them.
    assert policies == {"http://u/w.jpg": "wikimedia_media", "http://u/p.jpg": None}


def test_jobs_page_by_seq_within_bounds(state: CrawlState) -> None:
    state.add_jobs(cand(f"http://a/{i}.jpg") for i in range(10))
    first = state.jobs(PENDING, limit=4)
    rest = state.jobs(PENDING, after_seq=first[-1].seq, upto_seq=first[0].seq + 6, limit=100)
    assert [j.url for j in first + rest] == [f"http://a/{i}.jpg" for i in range(7)]


def test_outcomes_are_recorded_with_reason_attempts_and_error(state: CrawlState) -> None:
    jobs = state.add_jobs(cand(f"http://a/{i}.jpg") for i in range(4))
    state.record(
        [
            Outcome(jobs[0].url, DONE, sha256="aa", faces=2, seq=jobs[0].seq),
            Outcome(jobs[1].url, FAILED, reason="http_5xx", error="503 Service Unavailable"),
            Outcome(jobs[2].url, SKIPPED, reason="robots_txt"),
        ]
    )
    state.record([Outcome(jobs[1].url, FAILED, reason="timeout", error="read timeout")])
    done, failed, skipped, pending = (state.url(j.url) for j in jobs)
    assert (done.status, done.sha256, done.faces, done.attempts) == (DONE, "aa", 2, 1)
    assert (failed.status, failed.reason, failed.last_error, failed.attempts) == (FAILED, "timeout", "read timeout", 2)
    assert (skipped.status, skipped.reason) == (SKIPPED, "robots_txt")
    assert pending.status == PENDING and pending.attempts == 0
    counts = state.url_counts()
    assert counts[DONE][""] == 1 and counts[FAILED]["timeout"] == 1 and counts[SKIPPED]["robots_txt"] == 1
    assert counts[PENDING][""] == 1
    assert [j.url for j in state.jobs(FAILED)] == [jobs[1].url]


def test_record_rejects_pending_as_an_outcome(state: CrawlState) -> None:
    (job,) = state.add_jobs([cand("http://a/1.jpg")])
    with pytest.raises(ValueError):
        state.record([Outcome(job.url, PENDING)])


def test_a_failed_batch_changes_nothing(state: CrawlState) -> None:
    jobs = state.add_jobs([cand("http://a/1.jpg"), cand("http://a/2.jpg")])
    with pytest.raises(ValueError):
        state.record([Outcome(jobs[0].url, DONE, sha256="aa", faces=1, seq=jobs[0].seq), Outcome(jobs[1].url, "bogus")])
    assert state.url(jobs[0].url).status == PENDING  # type: ignore[union-attr]
    assert state.content_owner("aa") is None


def test_content_belongs_to_the_earliest_discovered_url(state: CrawlState) -> None:
    first, second, third = state.add_jobs(cand(f"http://a/{i}.jpg") for i in range(3))
    # The later-discovered copy finishes first and claims the content ...
    state.record([Outcome(second.url, DONE, sha256="cc", faces=1, seq=second.seq)])
    assert state.content_owner("cc").url == second.url  # type: ignore[union-attr]
    # ... the earlier one takes it over; a later one never does.
    state.record(
        [
            Outcome(first.url, DONE, sha256="cc", faces=1, seq=first.seq),
            Outcome(
                second.url, SKIPPED, reason="duplicate_content", sha256="cc", duplicate_of=first.url, attempt=False
            ),
        ]
    )
    state.record([Outcome(third.url, DONE, sha256="cc", faces=1, seq=third.seq)])
    owner = state.content_owner("cc")
    assert (owner.url, owner.seq, owner.faces) == (first.url, first.seq, 1)  # type: ignore[union-attr]
    row = state.url(second.url)
    assert (row.status, row.reason, row.duplicate_of, row.attempts) == (SKIPPED, "duplicate_content", first.url, 1)


def test_units_are_recorded_once_and_finish_atomically_with_their_candidates(state: CrawlState) -> None:
    assert state.add_units("name", [("barack obama", "Barack Obama"), ("q76", "Q76")]) == 2
    assert state.add_units("name", [("barack obama", "barack  obama")]) == 0
    pending = state.units(["name"], PENDING)
    assert [(u.key, u.label) for u in pending] == [("barack obama", "Barack Obama"), ("q76", "Q76")]
    jobs = state.finish_unit("name", "barack obama", [cand("http://c/1.jpg", name="Barack Obama")])
    assert [j.url for j in jobs] == ["http://c/1.jpg"]
    assert state.unit("name", "barack obama").status == DONE  # type: ignore[union-attr]
    state.fail_unit("name", "q76", "http_5xx", "503")
    assert state.unit("name", "q76").status == FAILED  # type: ignore[union-attr]
    assert [u.key for u in state.units(["name"], FAILED)] == ["q76"]
    assert state.unit_counts() == {"name": {"done": 1, "failed": 1}}
    assert state.failed_unit_reasons() == {"name:http_5xx": 1}


def test_second_crawl_on_the_same_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    with CrawlState(path), pytest.raises(StateInUse, match="in use"):
        CrawlState(path)
    CrawlState(path).close()  # released on close


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="cannot be used"):
        CrawlState(path)
    # The lock was released: a retry with a good file works.
    path.unlink()
    CrawlState(path).close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "crawl.sqlite"
    with CrawlState(path) as s:
        s.set_meta("schema", "999")
    with pytest.raises(StateError, match="schema 999"):
        CrawlState(path)


def test_committed_outcomes_survive_kill_9(tmp_path: Path) -> None:
    """A process killed right after a commit (no close, no checkpoint) loses nothing committed."""
    path = tmp_path / "crawl.sqlite"
    script = textwrap.dedent(f"""
        import os, signal
        from sozy.crawl.state import CrawlState, Outcome
        from sozy.records import Candidate
        s = CrawlState({str(path)!r})
        jobs = s.add_jobs((f"http://a/{{i}}.jpg", Candidate(f"http://a/{{i}}.jpg", "urls")) for i in range(1000))
        s.record([Outcome(j.url, "done", sha256=f"{{j.seq:064x}}", faces=1, seq=j.seq) for j in jobs[:600]])
        s._db.execute("BEGIN IMMEDIATE")
        s._db.execute("UPDATE urls SET status = 'done' WHERE seq > 600")  # never committed
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ}, capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    with CrawlState(path) as s:
        counts = s.url_counts()
        assert counts[DONE][""] == 600
        assert counts[PENDING][""] == 400
        assert s.content_owner(f"{600:064x}") is not None


def test_a_named_url_beats_an_earlier_unnamed_one_for_a_content(state: CrawlState) -> None:
    unnamed, named, later_named = state.add_jobs(
        [
            cand("http://a/page-photo.jpg"),
            cand("http://b/wiki.jpg", name="Ann"),
            cand("http://c/x.jpg", name="Bob"),
        ]
    )
    state.record([Outcome(unnamed.url, DONE, sha256="dd", faces=1, seq=unnamed.seq)])
    state.record([Outcome(named.url, DONE, sha256="dd", faces=1, seq=named.seq, named=True)])
    state.record([Outcome(later_named.url, DONE, sha256="dd", faces=1, seq=later_named.seq, named=True)])
    owner = state.content_owner("dd")
    assert owner is not None and (owner.url, owner.named) == (named.url, True)
    assert owner.rank < (0, later_named.seq) and owner.rank < (1, unnamed.seq)


def test_copies_always_point_at_the_final_owner(state: CrawlState) -> None:
    a, b, c, d = state.add_jobs(
        [cand("http://a/1.jpg", name="Ann"), cand("http://b/1.jpg"), cand("http://c/1.jpg"), cand("http://d/1.jpg")]
    )
    state.record(
        [
            Outcome(b.url, DONE, sha256="ee", faces=1, seq=b.seq),
            Outcome(c.url, SKIPPED, "duplicate_content", sha256="ee", duplicate_of=b.url),
        ]
    )
    # a takes the content over from b: c's pointer moves with it.
    state.record(
        [
            Outcome(a.url, DONE, sha256="ee", faces=1, seq=a.seq, named=True),
            Outcome(b.url, SKIPPED, "duplicate_content", sha256="ee", duplicate_of=a.url, attempt=False),
        ]
    )
    # A copy recorded against the stale owner still lands on the final one.
    state.record([Outcome(d.url, SKIPPED, "duplicate_content", sha256="ee", duplicate_of=b.url)])
    assert {u: state.url(u).duplicate_of for u in (b.url, c.url, d.url)} == dict.fromkeys((b.url, c.url, d.url), a.url)
    assert state.url(a.url).duplicate_of is None  # type: ignore[union-attr]


def test_a_candidates_person_id_survives_a_restart_and_old_states_gain_the_column(tmp_path):
    import sqlite3

    from sozy.records import Candidate

    path = tmp_path / "crawl.sqlite"
    with CrawlState(path) as state:
        state.add_jobs(
            [("https://x/a.jpg", Candidate("https://x/a.jpg", "wikidata", name="Barack Obama", person_id="Q76"))]
        )
    with CrawlState(path) as state:
        (job,) = state.jobs("pending", after_seq=0, upto_seq=10, limit=10)
    assert job.candidate.person_id == "Q76" and job.candidate.name == "Barack Obama"
    # A state written before identities has no person_id column: opening it adds one.
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE urls DROP COLUMN person_id")
    db.commit()
    db.close()
    with CrawlState(path) as state:
        (job,) = state.jobs("pending", after_seq=0, upto_seq=10, limit=10)
    assert job.candidate.person_id is None and job.candidate.name == "Barack Obama"
