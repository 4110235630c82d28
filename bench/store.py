"""Face store benchmark: the embedded store at a million faces, and why it is the default.

    python bench/store.py            # 1,000,000 faces (100k people x 10), then 20k side by side
    python bench/store.py --quick    # 50,000 faces, 5k side by side: a minute
    python bench/store.py --n 200000 --local-n 10000

Faces are synthetic but shaped like dlib's: a centre per person plus noise, calibrated so
that faces of one person and of different people lie as far apart as the real shared
photos do (the calibration is printed first). Each face has a full payload. The store is
driven through its public async API, as the crawler and the API do.

Printed: upserts/s, time to a searchable index (optimize), p50/p99 latency of top-10 faces
and top-10 people, recall@10 against exact numpy search, peak RSS; then the same on a
small store beside qdrant-client's local mode. The last line is the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import importlib.metadata
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sozy.config import Settings  # noqa: E402
from sozy.records import VECTOR_SIZE, Box, point_id  # noqa: E402
from sozy.store import FaceStore, StoredPoint, open_store  # noqa: E402
from sozy.store.edge import DEFAULT_OPTIMIZE_EVERY  # noqa: E402

FACES_DIR = Path(os.environ.get("SOZY_TEST_FACES", REPO / "examples" / "faces"))
PYTEST_CACHE = REPO / ".pytest_cache" / "v" / "sozy" / "shared_embeddings" / "v1"
GOALS = {"upserts_per_s": 20_000, "top10_p50_ms": 2.0, "people_p50_ms": 10.0, "recall": 0.95, "rss_gb": 2.0}
BOX = Box(120, 80, 320, 280)


# -- calibration against the real faces ----------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    same_median: float
    same_p95: float
    diff_median: float
    diff_p5: float
    mean: np.ndarray
    noise_sigma: float  # per dimension, around a person's centre
    centre_sigma: float  # per dimension, of the centres around the mean


def _real_faces() -> list[tuple[str, str, np.ndarray]]:
    """(photo, person, vector) of every one-person photo in the shared faces: from the test
    suite's cache of them when present, else computed with the face analyzer."""
    with (FACES_DIR / "manifest.csv").open(newline="") as fh:
        people = {row["path"]: row["people"].split(";") for row in csv.DictReader(fh)}
    cached = json.loads(PYTEST_CACHE.read_text()) if PYTEST_CACHE.is_file() else {}
    faces = []
    analyzer = None
    for rel, who in people.items():
        if len(who) != 1:
            continue
        entry = cached.get(rel)
        if entry and entry["faces"]:
            vector = np.asarray(entry["faces"][0]["vector"], dtype=np.float32)
        else:
            if analyzer is None:
                from sozy.config import EngineSettings
                from sozy.faces.analyze import FaceAnalyzer

                analyzer = FaceAnalyzer(EngineSettings())
            found = analyzer.analyze((FACES_DIR / rel).read_bytes())
            if not found.faces:
                continue
            vector = found.faces[0].vector
        faces.append((rel, who[0], vector))
    return faces


def calibrate() -> Calibration:
    faces = _real_faces()
    same, diff = [], []
    for (pa, wa, va), (pb, wb, vb) in itertools.combinations(faces, 2):
        if pa.split("-")[0] == pb.split("-")[0] and pa.endswith("p.jpg") and pb.endswith("p.jpg"):
            continue  # one photo at several resolutions is not two photos of a person
        (same if wa == wb else diff).append(float(np.linalg.norm(va - vb)))
    same_median, diff_median = float(np.median(same)), float(np.median(diff))
    # Isotropic noise: E|a-b| ≈ sigma * sqrt(2 * 128) for two faces of one person;
    # different people add the spread of the centres.
    noise = same_median / np.sqrt(2 * VECTOR_SIZE)
    centre = float(np.sqrt(max((diff_median / np.sqrt(2 * VECTOR_SIZE)) ** 2 - noise**2, 1e-6)))
    mean = np.mean([v for _, _, v in faces], axis=0).astype(np.float32)
    return Calibration(
        same_median=same_median,
        same_p95=float(np.percentile(same, 95)),
        diff_median=diff_median,
        diff_p5=float(np.percentile(diff, 5)),
        mean=mean,
        noise_sigma=float(noise),
        centre_sigma=centre,
    )


# -- synthetic faces -----------------------------------------------------------------------


class Synthetic:
    """``people`` people with ``faces_each`` faces each, generated chunk by chunk from seeds,
    so the million vectors never sit in this process's memory at once (the RSS measured is
    the store's) and exact search can regenerate them."""

    def __init__(
        self, people: int, faces_each: int, cal: Calibration, seed: int = 7, chunk_people: int = 10_000
    ) -> None:
        self.people = people
        self.faces_each = faces_each
        self.cal = cal
        self.seed = seed
        self.chunk_people = min(chunk_people, people)
        rng = np.random.default_rng(seed)
        self.centres = (cal.mean + rng.normal(0, cal.centre_sigma, (people, VECTOR_SIZE))).astype(np.float32)

    @property
    def faces(self) -> int:
        return self.people * self.faces_each

    def chunks(self):
        """Yield (first face index, vectors) per chunk of people."""
        for c, first_person in enumerate(range(0, self.people, self.chunk_people)):
            last = min(first_person + self.chunk_people, self.people)
            rng = np.random.default_rng((self.seed, c))
            owners = np.repeat(np.arange(first_person, last), self.faces_each)
            noise = rng.normal(0, self.cal.noise_sigma, (len(owners), VECTOR_SIZE)).astype(np.float32)
            yield first_person * self.faces_each, self.centres[owners] + noise

    def queries(self, count: int, salt: int = 0) -> np.ndarray:
        """New faces (not stored) of random people; another ``salt``, other faces."""
        rng = np.random.default_rng((self.seed, 10**6 + salt))
        who = rng.integers(0, self.people, count)
        return (self.centres[who] + rng.normal(0, self.cal.noise_sigma, (count, VECTOR_SIZE))).astype(np.float32)

    def person(self, face: int) -> int:
        return face // self.faces_each

    def point(self, face: int, vector: np.ndarray) -> StoredPoint:
        sha = hashlib.sha256(f"photo {face}".encode()).hexdigest()
        person = self.person(face)
        payload = {
            "image_url": f"https://upload.wikimedia.example/commons/{sha[:1]}/{sha[:2]}/Face_{face}.jpg",
            "page_url": f"https://commons.wikimedia.example/wiki/File:Face_{face}.jpg",
            "name": f"Person {person:06d}",
            "box": BOX.to_dict(),
            "image_width": 1024,
            "image_height": 768,
            "image_sha256": sha,
            "faces_in_image": 1,
            "source": "wikidata",
            "license": "CC BY-SA 4.0",
            "attribution": f"Photographer {face % 997}",
            "thumbnail": None,
            "crawled_at": "2025-01-02T03:04:05Z",
            "model": "dlib_resnet_v1+5pt/hog-up0..1",
        }
        return StoredPoint(point_id(sha, BOX), vector, payload)


def face_of(hit_payload: dict) -> int:
    return int(hit_payload["image_url"].rsplit("_", 1)[1].split(".")[0])


def exact_search(synth: Synthetic, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k faces and top-k people per query, by numpy over regenerated chunks."""
    q = queries.astype(np.float32)
    q_sq = (q**2).sum(1)
    best_faces = np.full((len(q), k), -1, np.int64)
    best_face_d = np.full((len(q), k), np.inf, np.float32)
    best_people = np.full((len(q), k), -1, np.int64)
    best_people_d = np.full((len(q), k), np.inf, np.float32)
    for first, vectors in synth.chunks():
        d = (vectors**2).sum(1)[:, None] - 2 * vectors @ q.T + q_sq[None, :]  # (n, Q) squared L2
        for best, best_d, dist, offset in (
            (best_faces, best_face_d, d, first),
            (best_people, best_people_d, d.reshape(-1, synth.faces_each, len(q)).min(1), first // synth.faces_each),
        ):
            top = np.argpartition(dist, k, axis=0)[:k]  # (k, Q)
            cand = np.concatenate([best, (top + offset).T], axis=1)
            cand_d = np.concatenate([best_d, np.take_along_axis(dist, top, 0).T], axis=1)
            order = np.argsort(cand_d, axis=1)[:, :k]
            best[:] = np.take_along_axis(cand, order, 1)
            best_d[:] = np.take_along_axis(cand_d, order, 1)
    return best_faces, best_people


# -- measuring a store ---------------------------------------------------------------------


@dataclass
class Row:
    backend: str
    faces: int
    upserts_per_s: float = 0.0
    index_s: float = 0.0
    top10_p50_ms: float = 0.0
    top10_p99_ms: float = 0.0
    people_p50_ms: float = 0.0
    people_p99_ms: float = 0.0
    recall: float = 0.0
    people_recall: float = 0.0
    extra: dict = field(default_factory=dict)


def _ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1000)


async def measure(
    store: FaceStore,
    synth: Synthetic,
    queries: np.ndarray,
    truth: tuple[np.ndarray, np.ndarray],
    label: str,
    *,
    batch: int,
    people_queries: int,
    index_every: int = 0,
    warmup: np.ndarray | None = None,
) -> Row:
    """Store the faces (building the index every ``index_every`` faces, as the crawler's
    store does; 0 = once, after the last), then time searches against exact truth."""
    row = Row(label, synth.faces)
    spent = indexing = 0.0
    done = since_index = 0
    index_peak = 0
    for first, vectors in synth.chunks():
        for start in range(0, len(vectors), batch):
            points = [synth.point(first + start + i, v) for i, v in enumerate(vectors[start : start + batch])]
            t = time.perf_counter()
            await store.upsert_points(points)
            spent += time.perf_counter() - t
            done += len(points)
            since_index += len(points)
            if index_every and since_index >= index_every and done < synth.faces:
                t = time.perf_counter()
                await store.optimize()
                indexing += time.perf_counter() - t
                index_peak = max(index_peak, getattr(store, "last_index_peak_bytes", 0))
                since_index = 0
                print(
                    f"  {label}: index built at {done:,} faces ({time.perf_counter() - t:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        print(f"  {label}: {done:,} faces stored ({done / spent:,.0f}/s)", file=sys.stderr, flush=True)
    row.upserts_per_s = done / spent

    t = time.perf_counter()
    await store.optimize()
    row.index_s = time.perf_counter() - t
    row.extra["index_total_s"] = indexing + row.index_s
    index_peak = max(index_peak, getattr(store, "last_index_peak_bytes", 0))
    row.extra["index_peak_gb"] = index_peak / 1024**3
    t = time.perf_counter()
    stats = await store.stats()
    row.extra["stats_s"] = time.perf_counter() - t
    row.extra["people"] = stats.people
    assert stats.faces == synth.faces, (stats.faces, synth.faces)

    for q in queries[:5]:  # warm caches
        await store.search(q, 10)
    if warmup is not None:
        # The first searches after an index build fault the memory-mapped vectors they
        # rescore into this process; a serving process has long done so. Both are reported.
        times = []
        for q in queries:
            t = time.perf_counter()
            await store.search(q, 10)
            times.append(time.perf_counter() - t)
        row.extra["first_top10_p50_ms"] = _ms(times, 50)
        for q in warmup:
            await store.search(q, 10)
    times, found = [], []
    for q, expected in zip(queries, truth[0], strict=False):
        t = time.perf_counter()
        hits = await store.search(q, 10)
        times.append(time.perf_counter() - t)
        found.append(len({face_of(h.payload) for h in hits} & set(expected.tolist())) / 10)
    row.top10_p50_ms, row.top10_p99_ms, row.recall = _ms(times, 50), _ms(times, 99), float(np.mean(found))

    times, found = [], []
    for q, expected in zip(queries[:people_queries], truth[1][:people_queries], strict=False):
        t = time.perf_counter()
        people = await store.search_people(q, 10, 1)
        times.append(time.perf_counter() - t)
        names = {p.name for p in people}
        assert len(names) == len(people), "people must be distinct"
        found.append(len(names & {f"Person {p:06d}" for p in expected.tolist()}) / 10)
    row.people_p50_ms, row.people_p99_ms, row.people_recall = _ms(times, 50), _ms(times, 99), float(np.mean(found))
    return row


async def run_embedded(
    synth: Synthetic,
    queries,
    truth,
    root: Path,
    label: str,
    people_queries: int,
    index_every: int = 0,
    warmup: np.ndarray | None = None,
    search_threads: int | None = None,
) -> Row:
    settings = Settings(data_dir=str(root))
    if search_threads is not None:
        settings = settings.replace(**{"store.search_threads": search_threads})
    # The bench builds the index itself (same call the store makes every optimize_every
    # faces), so that upserts and index building are timed apart.
    store = await open_store(settings, optimize_on_open=False, optimize_every=0)
    try:
        return await measure(
            store,
            synth,
            queries,
            truth,
            label,
            batch=1000,
            people_queries=people_queries,
            index_every=index_every,
            warmup=warmup,
        )
    finally:
        await store.close(optimize=False)


async def run_local(synth: Synthetic, queries, truth, people_queries: int) -> Row:
    settings = Settings().replace(**{"store.url": "local::memory:"})
    store = await open_store(settings)
    try:
        return await measure(
            store,
            synth,
            queries,
            truth,
            "qdrant-client local",
            batch=settings.store.upsert_batch,
            people_queries=people_queries,
        )
    finally:
        await store.close()


# -- report --------------------------------------------------------------------------------


def _rss_gb() -> float:
    """This process's peak RSS. (Children report their own VmHWM: Linux carries a parent's
    peak into ru_maxrss across fork and exec, so RUSAGE_CHILDREN would show this one's.)"""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


_SERVING_CODE = """
import asyncio, sys
import numpy as np
from sozy.config import Settings
from sozy.store import open_store
from sozy.store.edge_index import peak_rss_bytes

async def main():
    store = await open_store(Settings(data_dir=sys.argv[1]), create=False, optimize_on_open=False, optimize_every=0)
    for q in np.load(sys.argv[2]):
        await store.search(q, 10)
        await store.search_people(q, 10, 1)
    await store.close(optimize=False)

asyncio.run(main())
print(peak_rss_bytes() // 1024)
"""


def serving_rss_gb(root: Path, queries: np.ndarray) -> float:
    """Peak RSS of a fresh process that opens the indexed store and searches it, as the API does."""
    query_file = root / "queries.npy"
    np.save(query_file, queries)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-c", _SERVING_CODE, str(root), str(query_file)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return int(out.stdout.split()[-1]) / 1024**2


def print_row(row: Row) -> None:
    print(
        f"{row.backend:<22} {row.faces:>10,} {row.upserts_per_s:>10,.0f} {row.index_s:>8.1f} "
        f"{row.top10_p50_ms:>8.2f} {row.top10_p99_ms:>8.2f} {row.people_p50_ms:>8.2f} {row.people_p99_ms:>8.2f} "
        f"{row.recall:>7.3f} {row.people_recall:>7.3f}"
    )


HEADER = (
    f"{'backend':<22} {'faces':>10} {'upserts/s':>10} {'index s':>8} {'top10 p50':>8} {'p99 ms':>8} "
    f"{'people p50':>8} {'p99 ms':>8} {'recall':>7} {'people':>7}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="faces in the big embedded store (default 1,000,000)")
    parser.add_argument("--faces-per-person", type=int, default=10, help="faces per synthetic person (default 10)")
    parser.add_argument(
        "--local-n", type=int, default=20_000, help="faces in the side-by-side comparison (default 20,000)"
    )
    parser.add_argument("--queries", type=int, default=200, help="queries timed per store (default 200)")
    parser.add_argument("--dir", help="where to put the stores (default: a temporary directory, removed after)")
    parser.add_argument("--quick", action="store_true", help="50,000 faces, 5,000 side by side, 50 queries")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1000,
        help="searches (other queries) run before the timed ones, as in a serving process (default 1,000); "
        "the p50 of the first searches after the index build is printed too",
    )
    parser.add_argument(
        "--search-threads",
        type=int,
        default=0,
        help="store.search_threads for the big store (default 0: one per core, as Sozy's default)",
    )
    parser.add_argument(
        "--index-every",
        type=int,
        default=DEFAULT_OPTIMIZE_EVERY,
        help=f"build the index every this many faces, as a crawl's store does (default {DEFAULT_OPTIMIZE_EVERY:,}); "
        "0 = once, after all are stored",
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.local_n, args.queries = 50_000, 5_000, 50
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sozy-bench-store-"))
    root.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"qdrant-edge-py {importlib.metadata.version('qdrant-edge-py')}, qdrant-client "
        f"{importlib.metadata.version('qdrant-client')}; load average at start {load_start[0]:.1f} "
        "(a shared machine: compare ratios, not absolute times); "
        f"big store: store.search_threads {args.search_threads} "
        "(0 = one per core)"
    )

    cal = calibrate()
    big = Synthetic(args.n // args.faces_per_person, args.faces_per_person, cal)
    _, sample = next(big.chunks())
    same = [np.linalg.norm(sample[i] - sample[i + 1]) for i in range(0, 2000, args.faces_per_person)]
    diff = [np.linalg.norm(sample[i] - sample[i + args.faces_per_person * 7 + 3]) for i in range(0, 2000, 10)]
    print(
        f"calibration: real faces, same person median {cal.same_median:.2f} (p95 {cal.same_p95:.2f}), "
        f"different people median {cal.diff_median:.2f} (p5 {cal.diff_p5:.2f}); synthetic same {np.median(same):.2f}, "
        f"different {np.median(diff):.2f} (noise sigma {cal.noise_sigma:.4f}, centre sigma {cal.centre_sigma:.4f})"
    )

    queries = big.queries(args.queries)
    t = time.perf_counter()
    truth = exact_search(big, queries, 10)
    exact_s = (time.perf_counter() - t) / len(queries)
    print(f"exact numpy search over {big.faces:,} faces: {exact_s * 1000:.0f} ms per query (ground truth)")

    people_queries = args.queries
    try:
        big_row = asyncio.run(
            run_embedded(
                big,
                queries,
                truth,
                root / "big",
                "embedded (qdrant-edge)",
                people_queries,
                args.index_every,
                warmup=big.queries(args.warmup, salt=1) if args.warmup else None,
                search_threads=args.search_threads,
            )
        )
        rss_self, rss_child = _rss_gb(), big_row.extra["index_peak_gb"]
        rss_serving = serving_rss_gb(root / "big", queries)
        shutil.rmtree(root / "big", ignore_errors=True)

        small = Synthetic(args.local_n // args.faces_per_person, args.faces_per_person, cal, seed=11)
        small_queries = small.queries(min(args.queries, 100))
        small_truth = exact_search(small, small_queries, 10)
        small_row = asyncio.run(
            run_embedded(small, small_queries, small_truth, root / "small", "embedded (qdrant-edge)", 100)
        )
        # Local mode groups by brute force (hundreds of ms a query): fewer grouped queries.
        local_row = asyncio.run(run_local(small, small_queries, small_truth, people_queries=20))
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(HEADER)
    for row in (big_row, small_row, local_row):
        print_row(row)
    print(
        f"\n{big.faces:,} faces stored in {big.faces / big_row.upserts_per_s:.0f} s, "
        + (
            f"the index built every {args.index_every:,} faces ({big_row.extra['index_total_s']:.0f} s in all), "
            if args.index_every
            else ""
        )
        + f"searchable {big_row.index_s:.0f} s after the last write; "
        + (
            f"top-10 p50 of the first {len(queries)} searches after it {big_row.extra['first_top10_p50_ms']:.2f} ms, "
            f"after {args.warmup:,} others {big_row.top10_p50_ms:.2f} ms; "
            if "first_top10_p50_ms" in big_row.extra
            else ""
        )
        + f"stats() {big_row.extra['stats_s']:.2f} s for "
        f"{big_row.extra['people']:,} people; peak RSS {rss_self:.2f} GB (this process) and "
        f"{rss_child:.2f} GB (the index-building child); a fresh process searching the indexed store "
        f"(as the API does): {rss_serving:.2f} GB; load average at end {os.getloadavg()[0]:.1f}"
    )
    rss = max(rss_self, rss_child)
    checks = [
        ("upserts/s", big_row.upserts_per_s >= GOALS["upserts_per_s"], f"{big_row.upserts_per_s:,.0f} >= 20,000"),
        ("top-10 p50", big_row.top10_p50_ms <= GOALS["top10_p50_ms"], f"{big_row.top10_p50_ms:.2f} ms <= 2"),
        ("people p50", big_row.people_p50_ms <= GOALS["people_p50_ms"], f"{big_row.people_p50_ms:.2f} ms <= 10"),
        ("recall@10", big_row.recall >= GOALS["recall"], f"{big_row.recall:.3f} >= 0.95"),
        ("peak RSS writing and indexing", rss <= GOALS["rss_gb"], f"{rss:.2f} GB <= 2"),
        ("peak RSS searching", rss_serving <= GOALS["rss_gb"], f"{rss_serving:.2f} GB <= 2"),
    ]
    print("goals: " + "; ".join(f"{name} {'ok' if ok else 'MISSED'} ({text})" for name, ok, text in checks))
    print(
        f"at {small.faces:,} faces, qdrant-client local mode vs the embedded engine: upserts at "
        f"{local_row.upserts_per_s / small_row.upserts_per_s:.1f}x its rate, top-10 "
        f"{local_row.top10_p50_ms / small_row.top10_p50_ms:.0f}x slower, people "
        f"{local_row.people_p50_ms / small_row.people_p50_ms:.0f}x slower"
    )
    print(
        f"SUMMARY store: {big.faces:,} faces embedded: {big_row.upserts_per_s:,.0f} upserts/s, "
        f"index {big_row.index_s:.0f} s, "
        f"top-10 p50 {big_row.top10_p50_ms:.2f} ms"
        + (
            f" ({big_row.extra['first_top10_p50_ms']:.2f} ms first after the build)"
            if "first_top10_p50_ms" in big_row.extra
            else ""
        )
        + f", people p50 {big_row.people_p50_ms:.2f} ms, "
        f"recall@10 {big_row.recall:.3f}, peak RSS {rss:.2f} GB writing, {rss_serving:.2f} GB searching; "
        f"local mode at {small.faces:,}: top-10 "
        f"{local_row.top10_p50_ms / small_row.top10_p50_ms:.0f}x, "
        f"people {local_row.people_p50_ms / small_row.people_p50_ms:.0f}x slower"
    )


if __name__ == "__main__":
    main()
