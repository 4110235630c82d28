"""Crawl end to end vs the face engine alone, on the same real face photos.

    python bench/crawl.py            # the shared photos × 10 (260 URLs), 2 rounds: a few minutes on 2 cores
    python bench/crawl.py --quick    # × 2 (52 URLs), 1 round: under a minute

A loopback HTTP server (a separate process) serves every photo of
examples/faces under several URLs, each copy with a different JPEG comment
or PNG text chunk: the pixels are the same, the bytes are not, so the
crawler's content dedup skips none of them. In the same run:

1. engine alone: a started ``FaceEngine`` embeds exactly those bytes
   (``embed_many``, all at once): faces/s;
2. crawl: ``run_crawl`` on a URL list of them (fetch, sha256, dedup, engine,
   batched upserts into an embedded store in a temporary folder, SQLite
   state), with the same engine settings: faces stored per second of crawl
   (after startup, as its summary counts it).

Both start from a freshly started engine with the same worker count. The
last line is crawl faces/s ÷ engine faces/s (goal ≥ 0.90): what the rest of
the crawler costs on top of the engine, the slowest stage on a CPU.
"""

from __future__ import annotations

import os

# One BLAS thread per process, as in bench/embed.py: a worker is one core.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import csv  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from sozy.config import Settings, load_settings  # noqa: E402

FACES_DIR = Path(os.environ.get("SOZY_TEST_FACES", REPO_ROOT / "examples" / "faces"))
GOAL = 0.90


@dataclass
class Run:
    label: str
    seconds: float
    photos: int
    faces: int
    # CPU of this process (the event loop, fetch, hashing, state, store) and of the engine
    # workers (start to exit): less moved than wall time by other load on the machine.
    main_cpu_s: float
    workers_cpu_s: float = 0.0
    note: str = ""

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_photo(self) -> float:
        return 1000 * (self.main_cpu_s + self.workers_cpu_s) / max(self.photos, 1)


# -- the photos ---------------------------------------------------------------------------


def source_photos() -> list[Path]:
    with (FACES_DIR / "manifest.csv").open(newline="") as fh:
        return [FACES_DIR / row["path"] for row in csv.DictReader(fh)]


def tagged(data: bytes, tag: int) -> bytes:
    """The same image with ``tag`` written into a comment: other bytes, same pixels."""
    text = f"sozy bench copy {tag}".encode()
    if data[:2] == b"\xff\xd8":  # JPEG: a COM segment right after SOI
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":  # PNG: a tEXt chunk right after IHDR (8 + 25 bytes)
        body = b"Comment\x00" + text
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
        return data[:33] + chunk + data[33:]
    raise ValueError("not a JPEG or PNG")


def copies(sources: list[Path], repeat: int) -> list[tuple[str, bytes]]:
    """(URL path, bytes) for every copy, in the order they are listed."""
    raw = [p.read_bytes() for p in sources]
    out = []
    for i in range(repeat * len(sources)):
        src = sources[i % len(sources)]
        out.append((f"/p/{i:05d}{src.suffix.lower()}", tagged(raw[i % len(sources)], i)))
    return out


# -- the server (own process, so serving costs the crawler's event loop nothing) ------------


def serve(repeat: int, port: int) -> None:
    from aiohttp import web

    types = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
    files = dict(copies(source_photos(), repeat))

    async def photo(request: web.Request) -> web.Response:
        data = files.get(request.path)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type=types[Path(request.path).suffix])

    app = web.Application()
    app.router.add_get("/p/{name}", photo)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(repeat: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--repeat", str(repeat), "--port", str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the photo server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("the photo server did not start")


# -- the two runs --------------------------------------------------------------------------


async def bench_engine(settings: Settings, bodies: list[bytes]) -> Run:
    from sozy.faces import FaceEngine

    async with FaceEngine(settings.engine) as engine:
        cpu, started = time.process_time(), time.perf_counter()
        results = await engine.embed_many(bodies)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        workers = engine.workers
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise SystemExit(f"engine: {len(failed)} photos failed, first: {failed[0]!r}")
    faces = sum(len(r.faces) for r in results)  # type: ignore[union-attr]
    return Run(f"engine alone, {workers} workers", seconds, len(bodies), faces, cpu)


async def bench_crawl(settings: Settings, url_list: Path) -> Run:
    from sozy.crawl.plan import CrawlPlan
    from sozy.crawl.runner import run_crawl

    cpu = time.process_time()
    result = await run_crawl(
        settings, CrawlPlan(url_lists=(url_list,)), progress=False, print_summary=False, handle_signals=False
    )
    cpu = time.process_time() - cpu
    s = result.summary
    run = s["run"]
    if result.exit_code != 0 or run["failed"] or run["skipped"]:
        print(f"  crawl: exit {result.exit_code}, failed {run['failed_by_reason']}, skipped {run['skipped_by_reason']}")
    # The store's close (index build) comes after duration_s, like the engine's shutdown.
    rates = s["rates"]
    note = (
        f"startup {s['startup_s']:.1f} s; engine busy {rates['embedded']['active_s']:.1f} s "
        f"(first to last photo out of it); fetched {run['fetched']}, done {run['photos_done']}"
    )
    return Run(
        f"crawl, {s['engine']['workers']} workers", s["duration_s"], run["photos_done"], run["faces_stored"], cpu, note
    )


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def measured(run: Callable[[], Run]) -> Run:
    """``run()`` with the CPU it used: this process's, and that of the children it reaped (the workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.workers_cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def one_round(settings: Settings, bodies: list[bytes], url_list: Path, *, crawl_first: bool) -> tuple[Run, Run]:
    """(engine alone, crawl), each printed as it ends."""
    runs: dict[str, Run] = {}
    for kind in ("crawl", "engine") if crawl_first else ("engine", "crawl"):
        if kind == "engine":
            runs[kind] = measured(lambda: asyncio.run(bench_engine(settings, bodies)))
        else:
            runs[kind] = measured(lambda: asyncio.run(bench_crawl(settings, url_list)))
        print(row(runs[kind]), flush=True)
    return runs["engine"], runs["crawl"]


def row(run: Run) -> str:
    return (
        f"  {run.label:<26} {run.faces_per_s:6.2f} faces/s {run.photos / run.seconds:6.2f} photos/s "
        f"{run.cpu_ms_per_photo:5.0f} CPU ms/photo ({1000 * run.main_cpu_s / max(run.photos, 1):.0f} main) "
        f"({run.photos} photos, {run.faces} faces, {run.seconds:.1f} s){'; ' + run.note if run.note else ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each photo twice (about a minute)")
    parser.add_argument("--repeat", type=int, default=None, help="copies of the photo set (default 10, --quick 2)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="engine and crawl runs, interleaved; the best of each counts (default 2, --quick 1)",
    )
    parser.add_argument("--workers", type=int, default=0, help="engine workers (default: one per core)")
    parser.add_argument("--thumbnails", action="store_true", help="the crawl also writes face thumbnails")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeat = args.repeat or (2 if args.quick else 10)
    rounds = args.rounds or (1 if args.quick else 2)
    if args.serve:
        serve(repeat, args.port)
        return

    from sozy.faces.plan import available_cpus

    workers = args.workers or available_cpus()
    photos = copies(source_photos(), repeat)
    print(f"machine: {machine()}")
    print(
        f"photos: {len(photos) // repeat} from {FACES_DIR} × {repeat} = {len(photos)} URLs, distinct bytes; "
        f"{workers} engine workers; thumbnails {'on' if args.thumbnails else 'off'}; best of {rounds} round(s)"
    )
    proc, base = start_server(repeat)
    tmp = Path(tempfile.mkdtemp(prefix="sozy-bench-crawl-"))
    try:
        url_list = tmp / "urls.txt"
        url_list.write_text("".join(f"{base}{path}\n" for path, _ in photos))
        bodies = [data for _, data in photos]
        engine = crawl = None
        for n in range(rounds):
            # A fresh data dir each round: a crawl that resumed would have nothing to do.
            settings = load_settings(
                environ={},
                overrides={
                    "data_dir": str(tmp / f"data-{n}"),
                    "log_level": "WARNING",
                    "engine.workers": workers,
                    "crawl.thumbnails": args.thumbnails,
                },
            )
            # Which goes first alternates, so load that comes and goes favours neither.
            e, c = one_round(settings, bodies, url_list, crawl_first=n % 2 == 1)
            print(f"  round {n + 1}: crawl/engine {c.faces_per_s / e.faces_per_s:.2f}")
            engine = e if engine is None or e.faces_per_s > engine.faces_per_s else engine
            crawl = c if crawl is None or c.faces_per_s > crawl.faces_per_s else crawl
        assert engine is not None and crawl is not None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    if crawl.faces != engine.faces:
        print(f"  note: the crawl stored {crawl.faces} faces, the engine found {engine.faces}")
    print(
        f"  CPU per photo, crawl ÷ engine alone: {crawl.cpu_ms_per_photo / engine.cpu_ms_per_photo:.2f} "
        f"(what the crawler adds, whatever else runs on the machine)"
    )
    ratio = crawl.faces_per_s / engine.faces_per_s
    print(f"crawl/engine faces/s ratio: {ratio:.2f} (goal >= {GOAL:.2f})")


if __name__ == "__main__":
    main()
