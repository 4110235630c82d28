"""Which URL owns a photo content that several URLs serve.

The same bytes at two URLs are stored once: for the URL whose source named the
person, else the one discovered first (``state.content_rank``: lower wins),
whatever order the copies finish in. The others are skipped as
``duplicate_content``, pointing at the owner.

``ContentOwnership`` decides; it does no I/O. The crawler asks the state who owns
a content when ``claimed`` does not know, hands each analysed photo to ``accept``,
upserts the faces of ``take_batch``, records what ``settle_batch`` returns, then calls
``written`` once the state has the outcomes. Between two state writes the claims
made here are the truth the state does not have yet.

Copies that finish in reverse rank order make chains: each better copy takes the
content over from the one before, together with everything that one had taken
over, so no copy is left pending whichever way the batch ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sozy.records import FaceRecord

from .reasons import DUPLICATE_CONTENT, NO_FACE, STORE_ERROR, TAKEN_DOWN
from .state import DONE, FAILED, SKIPPED, ContentOwner, Job, Outcome, content_rank


@dataclass(eq=False)
class Analysed:
    """What the engine found in a photo, as records ready to store."""

    job: Job
    sha256: str
    records: list[FaceRecord]
    # Photos whose (identical) content this one takes over: in this batch, or already stored.
    displaced_items: list[Analysed] = field(default_factory=list)
    displaced_urls: list[str] = field(default_factory=list)


def job_rank(job: Job) -> tuple[int, int]:
    """How strongly ``job``'s URL claims its content (lower wins)."""
    return content_rank(bool(job.candidate.name), job.seq)


class ContentOwnership:
    """The contents claimed and the photos batched since the last state write."""

    def __init__(self) -> None:
        self._claimed: dict[str, ContentOwner] = {}
        self._batch: list[Analysed] = []
        self.faces = 0  # faces in the batch

    @property
    def batch(self) -> Sequence[Analysed]:
        return tuple(self._batch)

    def claimed(self, sha256: str) -> ContentOwner | None:
        """The owner decided since the last state write, if any (else the state knows)."""
        return self._claimed.get(sha256)

    def beaten_by(self, job: Job, sha256: str, stored: ContentOwner | None) -> ContentOwner | None:
        """The owner with a better claim than ``job`` on the content, if any: the photo need not
        be embedded. ``stored`` is the state's owner, used where no claim was made since."""
        owner = self._claimed.get(sha256) or stored
        if owner is not None and owner.url != job.url and owner.rank < job_rank(job):
            return owner
        return None

    def accept(self, item: Analysed, stored: ContentOwner | None) -> list[Outcome]:
        """Decide who owns ``item``'s content and batch its faces if it does; the outcomes
        decided now (skips) are returned for the crawler to record."""
        job, sha = item.job, item.sha256
        outcomes: list[Outcome] = []
        owner = self._claimed.get(sha) or stored
        if owner is not None and owner.url != job.url:
            if owner.rank < job_rank(job):
                return [Outcome(job.url, SKIPPED, DUPLICATE_CONTENT, sha256=sha, duplicate_of=owner.url)]
            # This photo has the better claim (named, or discovered first): it takes the content over.
            earlier = next((b for b in self._batch if b.job.url == owner.url), None)
            if earlier is not None:
                self._batch.remove(earlier)
                self.faces -= len(earlier.records)
                # What the earlier photo took over passes on with it: a copy dropped from a chain
                # would stay pending for ever.
                item.displaced_items += [earlier, *earlier.displaced_items]
                item.displaced_urls += earlier.displaced_urls
                earlier.displaced_items, earlier.displaced_urls = [], []
            elif item.records:
                item.displaced_urls.append(owner.url)
            else:
                outcomes.append(
                    Outcome(owner.url, SKIPPED, DUPLICATE_CONTENT, sha256=sha, duplicate_of=job.url, attempt=False)
                )
        named = bool(job.candidate.name)
        self._claimed[sha] = ContentOwner(job.seq, job.url, len(item.records), named)
        if not item.records:
            outcomes.append(Outcome(job.url, SKIPPED, NO_FACE, sha256=sha, faces=0, seq=job.seq, named=named))
            # Not batched, so what it displaced is settled now (same bytes found with faces before).
            # Its displaced_urls stay done: nothing is upserted over the faces they have stored.
            outcomes += [
                Outcome(it.job.url, SKIPPED, DUPLICATE_CONTENT, sha256=sha, duplicate_of=job.url)
                for it in item.displaced_items
            ]
            return outcomes
        self._batch.append(item)
        self.faces += len(item.records)
        return outcomes

    def take_batch(self) -> list[Analysed]:
        """The photos to upsert now; the claims stay until ``written``."""
        batch, self._batch, self.faces = self._batch, [], 0
        return batch

    def written(self) -> None:
        """The state has every outcome decided so far: it answers for the claims from now on."""
        self._claimed.clear()


def settle_batch(batch: Sequence[Analysed], *, error: str | None, refused: set[str]) -> list[Outcome]:
    """The outcomes of a batch once its upsert ended: ``error`` if it failed, else the ids the
    store ``refused`` (a takedown matches them). What a photo displaced is settled either way,
    except URLs whose faces are stored (they stay done when the upsert failed)."""
    outcomes: list[Outcome] = []
    for item in batch:
        job, sha = item.job, item.sha256
        if error is not None:
            outcomes += [Outcome(it.job.url, FAILED, STORE_ERROR, error=error) for it in (item, *item.displaced_items)]
            continue
        stored = sum(1 for r in item.records if r.id not in refused)
        if stored:
            outcomes.append(
                Outcome(job.url, DONE, sha256=sha, faces=stored, seq=job.seq, named=bool(job.candidate.name))
            )
        else:
            outcomes.append(Outcome(job.url, SKIPPED, TAKEN_DOWN, sha256=sha))
        outcomes += [
            Outcome(it.job.url, SKIPPED, DUPLICATE_CONTENT, sha256=sha, duplicate_of=job.url)
            for it in item.displaced_items
        ]
        outcomes += [
            Outcome(url, SKIPPED, DUPLICATE_CONTENT, sha256=sha, duplicate_of=job.url, attempt=False)
            for url in item.displaced_urls
        ]
    return outcomes
