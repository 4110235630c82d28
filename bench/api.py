"""Search API benchmark: the whole path (HTTP, upload, engine, store, JSON) against the engine alone.

    python bench/api.py              # 1,000,000 synthetic faces + the shared ones, 8 clients for 60 s
    python bench/api.py --quick      # 50,000 faces, 15 s
    python bench/api.py --faces 200000 --seconds 30 --clients 8 --workers 2

The store is preloaded with ``--faces`` synthetic faces (bench/store.py's generator:
dlib-shaped vectors with full payloads) plus every shared photo's real faces, indexed,
and cached under .bench-cache/ so reruns start at once (--rebuild to redo it).

Two phases, in one run, with the same load generator (``--clients`` callers, each
posting the shared photos in turn, for ``--seconds``):

1. engine alone: the photos straight into a sozy.faces FaceEngine with ``--workers``
   workers, in this process;
2. the API: ``python -m sozy.api`` (uvicorn) in its own process with the same worker
   count, on that store, the photos posted as multipart uploads over HTTP.

Printed: p50/p99 latency, requests/s and errors of both. Goals: API p50 <= 1.15 x the
engine-alone p50; API requests/s >= 0.85 x workers x the engine's rate per worker;
no errors. The last line is the figure.
"""

from __future__ import annotations

import os

# One BLAS thread per process, as in bench/embed.py: workers are the parallelism.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable, Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import httpx  # noqa: E402

from sozy.config import EngineSettings, Settings  # noqa: E402
from sozy.faces.engine import FaceEngine  # noqa: E402
from sozy.faces.plan import available_cpus  # noqa: E402
from sozy.records import FaceRecord, PhotoFaces, sha256_hex  # noqa: E402
from sozy.store import open_store  # noqa: E402

FACES_DIR = Path(os.environ.get("SOZY_TEST_FACES", REPO / "examples" / "faces"))
CACHE_DIR = REPO / ".bench-cache"
# Bump when what goes into the cached store changes.
CACHE_FORMAT = 1
FACES_PER_PERSON = 10
GOAL_LATENCY = 1.15
GOAL_RATE = 0.85
SERVER_START_S = 900.0  # a first start may build the index of a big store


def _bench_store() -> ModuleType:
    """bench/store.py, imported by path (bench/ is not a package), for its synthetic faces."""
    spec = importlib.util.spec_from_file_location("sozy_bench_store", REPO / "bench" / "store.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# -- load ----------------------------------------------------------------------------------


@dataclass
class Phase:
    label: str
    latencies: list[float] = field(default_factory=list)
    # Request number (its place in the shared photo sequence) -> latency, to pair phases.
    by_turn: dict[int, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Server-side histogram deltas over the phase (the API phase only).
    server: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")

    def line(self) -> str:
        return (
            f"{self.label:<13} {self.done:>6} requests in {self.seconds:5.1f} s: {self.rps:6.2f} req/s, "
            f"p50 {self.ms(50):7.0f} ms, p99 {self.ms(99):7.0f} ms, errors {len(self.errors)}"
        )


async def drive(
    label: str, call: Callable[[bytes], Awaitable[object]], photos: Sequence[bytes], clients: int, seconds: float
) -> Phase:
    """``clients`` callers taking the next photo of one fixed sequence until ``seconds`` are up;
    requests under way then are finished and counted. Both phases send the same sequence, so
    request n is the same photo in each (photos differ tenfold in cost)."""
    phase = Phase(label)
    deadline = time.perf_counter() + seconds
    turns = iter(range(10**9))

    async def client() -> None:
        while time.perf_counter() < deadline:
            turn = next(turns)
            started = time.perf_counter()
            try:
                await call(photos[turn % len(photos)])
            except Exception as exc:  # counted and shown, never fatal: errors are a result
                phase.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            else:
                phase.latencies.append(time.perf_counter() - started)
                phase.by_turn[turn] = phase.latencies[-1]

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    phase.seconds = time.perf_counter() - started
    return phase


def load_photos() -> list[tuple[str, list[str], bytes]]:
    """(path, people, bytes) of every shared photo."""
    with (FACES_DIR / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [(row["path"], row["people"].split(";"), (FACES_DIR / row["path"]).read_bytes()) for row in rows]


# -- 1. the engine alone ----------------------------------------------------------------------


async def engine_phase(
    photos: list[tuple[str, list[str], bytes]], workers: int, clients: int, seconds: float
) -> tuple[Phase, dict[str, PhotoFaces], str]:
    async with FaceEngine(EngineSettings(workers=workers)) as engine:
        # Every worker warm, and every photo's faces: the store's real faces, and which photos have one.
        results = await engine.embed_many([data for _, _, data in photos])
        found = {rel: r for (rel, _, _), r in zip(photos, results, strict=False) if isinstance(r, PhotoFaces)}
        usable = [data for rel, _, data in photos if rel in found and found[rel].faces]
        phase = await drive("engine alone", engine.embed, usable, clients, seconds)
        return phase, found, engine.model_id


# -- the preloaded store ----------------------------------------------------------------------


def shared_records(photos: list[tuple[str, list[str], bytes]], found: dict[str, PhotoFaces]) -> list[FaceRecord]:
    """The shared photos' faces as a crawl would store them (a group photo's faces unnamed)."""
    records = []
    for rel, people, data in photos:
        photo = found.get(rel)
        if photo is None:
            continue
        for face in photo.faces:
            records.append(
                FaceRecord(
                    vector=face.vector,
                    image_url=f"https://photos.example.org/photos/{rel}",
                    page_url=f"https://photos.example.org/pages/{rel.rsplit('.', 1)[0]}.html",
                    box=face.box,
                    image_width=photo.width,
                    image_height=photo.height,
                    image_sha256=sha256_hex(data),
                    faces_in_image=len(photo.faces),
                    source="folder",
                    model=photo.model,
                    name=people[0] if len(people) == 1 and len(photo.faces) == 1 else None,
                    license="MIT",
                    attribution="face_recognition test images, Adam Geitgey",
                )
            )
    return records


async def build_store(data_dir: Path, faces: int, records: list[FaceRecord]) -> None:
    bench_store = _bench_store()
    synth = bench_store.Synthetic(max(1, faces // FACES_PER_PERSON), FACES_PER_PERSON, bench_store.calibrate())
    store = await open_store(Settings(data_dir=str(data_dir)), optimize_on_open=False, optimize_every=0)
    try:
        stored = 0
        for first, vectors in synth.chunks():
            for start in range(0, len(vectors), 1000):
                chunk = vectors[start : start + 1000]
                await store.upsert_points([synth.point(first + start + i, v) for i, v in enumerate(chunk)])
            stored += len(vectors)
            print(f"  store: {stored:,} synthetic faces", file=sys.stderr, flush=True)
        await store.upsert(records)
        print("  store: building the search index...", file=sys.stderr, flush=True)
        await store.optimize()
    finally:
        await store.close(optimize=False)


def cached_store(faces: int, records: list[FaceRecord], rebuild: bool) -> tuple[Path, bool]:
    """The data dir of a store with ``faces`` synthetic faces + ``records``, built once and kept."""
    key = hashlib.sha256(f"{CACHE_FORMAT} {faces} {sorted(r.id for r in records)} {records[0].model}".encode())
    root = CACHE_DIR / f"api-store-{faces}-{key.hexdigest()[:10]}"
    complete = root / "complete"  # written last: a killed build is redone
    if complete.is_file() and not rebuild:
        return root / "data", False
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    asyncio.run(build_store(root / "data", faces, records))
    complete.write_text("ok\n")
    return root / "data", True


# -- 2. the API -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def api_server(data_dir: Path, workers: int, log: Path, settings: dict[str, str] | None = None) -> Iterator[str]:
    """``python -m sozy.api`` on a free port, no rate limit unless ``settings`` (SOZY_* variables)
    say otherwise; yields its URL once /readyz says ready."""
    port = free_port()
    # Only the settings given here: no SOZY_* from the caller's shell, no ./config/sozy.toml.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOZY_")}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH", "")])),
        SOZY_CONFIG=str(log.parent / "none.toml"),
        SOZY_API_RATE_LIMIT_PER_MINUTE="0",
    )
    env.update(settings or {})
    (log.parent / "none.toml").write_text("")
    command = [
        sys.executable, "-m", "sozy.api", "--data-dir", str(data_dir), "--port", str(port),
        "--workers", str(workers), "--log-level", "WARNING",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the API exited with {process.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the API was not ready after {SERVER_START_S:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def api_phase(url: str, photos: Sequence[bytes], clients: int, seconds: float, warm: int) -> Phase:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def search(data: bytes) -> None:
            response = await http.post("/v1/search", files={"image": ("photo.jpg", data, "image/jpeg")})
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:120]}")
            if not response.json()["faces"][0]["matches"]:
                raise RuntimeError("no matches")

        await asyncio.gather(*(search(photos[i % len(photos)]) for i in range(warm)))
        before = server_times((await http.get("/metrics")).text)
        phase = await drive("api", search, photos, clients, seconds)
        after = server_times((await http.get("/metrics")).text)
    phase.server = {key: after[key] - before.get(key, 0.0) for key in after}
    return phase


# The server's own account of where a search's time went: (metric, labels it must carry).
SERVER_METRICS = {
    "request": ("sozy_http_request_duration_seconds", ('route="/v1/search"', 'status="200"')),
    "embed": ("sozy_embed_duration_seconds", ()),
    "store": ("sozy_store_duration_seconds", ('operation="search_people"',)),
}


def server_times(text: str) -> dict[str, float]:
    """Histogram sums and counts from /metrics: ``{"embed_sum": s, "embed_count": n, ...}``."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        for key, (metric, labels) in SERVER_METRICS.items():
            for part in ("sum", "count"):
                if line.startswith(f"{metric}_{part}") and all(label in line for label in labels):
                    values[f"{key}_{part}"] = values.get(f"{key}_{part}", 0.0) + float(line.rsplit(" ", 1)[1])
    return values


def breakdown(server: dict[str, float]) -> str:
    """Mean server-side time per search, split into engine, store and the rest (HTTP, upload, JSON)."""
    searches = server.get("request_count", 0.0)
    if not searches:
        return "server: no searches counted"
    request = 1000 * server["request_sum"] / searches
    embed = 1000 * server.get("embed_sum", 0.0) / searches
    store = 1000 * server.get("store_sum", 0.0) / searches
    calls = server.get("store_count", 0.0) / searches
    return (
        f"server, mean per search: {request:.0f} ms = engine {embed:.0f} ms (queue included) + store "
        f"{store:.1f} ms ({calls:.1f} people searches) + the rest {request - embed - store:.1f} ms "
        "(upload parsing, JSON, middleware)"
    )


# -- report -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000, help="synthetic faces in the store (default 1,000,000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase (default 60)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--workers", type=int, default=0, help="engine workers, both phases (default: one per core)")
    parser.add_argument("--quick", action="store_true", help="50,000 faces, 15 s per phase")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    args = parser.parse_args()
    if args.quick:
        args.faces, args.seconds = 50_000, 15.0
    workers = args.workers or available_cpus()
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        f"load average at start {os.getloadavg()[0]:.1f} (a shared machine: compare ratios, not absolute times)"
    )
    photos = load_photos()
    engine, found, model = asyncio.run(engine_phase(photos, workers, args.clients, args.seconds))
    usable = [data for rel, _, data in photos if rel in found and found[rel].faces]
    print(
        f"photos: {len(usable)} of {len(photos)} shared photos have a face ({model}); "
        f"{args.clients} clients, {workers} engine workers, {args.seconds:.0f} s per phase"
    )
    records = shared_records(photos, found)
    started = time.perf_counter()
    data_dir, built = cached_store(args.faces, records, args.rebuild)
    what = f"built in {time.perf_counter() - started:.0f} s" if built else "cached"
    print(f"store: {args.faces:,} synthetic + {len(records)} shared faces ({what}: {data_dir.parent})")
    with api_server(data_dir, workers, data_dir.parent / "api.log") as url:
        api = asyncio.run(api_phase(url, usable, args.clients, args.seconds, warm=2 * workers))
    print(engine.line())
    print(api.line())
    print(breakdown(api.server))
    for error in sorted(set(api.errors + engine.errors))[:5]:
        print(f"  error: {error}")
    rate = engine.rps / workers  # the engine's photos/s per worker, under the same load
    # p50 over the requests both phases made (same photos), so the photo mix cancels out.
    both = sorted(engine.by_turn.keys() & api.by_turn.keys())
    latency_ratio = float(np.median([api.by_turn[t] for t in both]) / np.median([engine.by_turn[t] for t in both]))
    rate_ratio = api.rps / (workers * rate)
    errors = len(api.errors)
    ok = latency_ratio <= GOAL_LATENCY and rate_ratio >= GOAL_RATE and errors == 0
    print(
        f"engine rate {rate:.2f} photos/s per worker; {len(both)} requests paired for the p50 ratio; "
        f"load average at end {os.getloadavg()[0]:.1f}; "
        f"goals {'met' if ok else 'MISSED'}"
    )
    print(
        f"api p50 / engine-alone: {latency_ratio:.2f} (goal <= {GOAL_LATENCY}); "
        f"rps / (workers x engine rate): {rate_ratio:.2f} (goal >= {GOAL_RATE}); errors {errors}"
    )


if __name__ == "__main__":
    main()
