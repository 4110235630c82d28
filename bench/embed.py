"""Face engine benchmark: one process vs the pool, and the engine vs a naive face_recognition loop.

    python bench/embed.py            # the shared photos × 8 (about 200 images), a few minutes on 2 cores
    python bench/embed.py --quick    # each photo once

Side by side, in one run, on examples/faces:

1. single process, pure dlib (sozy's FaceAnalyzer in this process): faces/s;
2. the FaceEngine pool with one worker per core: faces/s, and its
   efficiency = pool ÷ (workers × single)  (goal ≥ 0.90);
3. a naive loop, face_recognition.face_locations + face_encodings on the
   full-resolution photos, in as many processes (multiprocessing.Pool):
   images/s, the engine's speed-up over it (goal ≥ 4×), and whether both
   found the same people (face counts per photo, distance of matched vectors);
4. if a faster dlib is built (scripts/build-fast-dlib.sh → .cache/dlib-fast),
   the same pool with it.

The last line is the key figure.
"""

from __future__ import annotations

import os

# One BLAS thread per process everywhere, so "single process" means one core.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from sozy.config import EngineSettings  # noqa: E402
from sozy.faces.engine import FaceEngine  # noqa: E402
from sozy.faces.plan import available_cpus  # noqa: E402

FACES_DIR = Path(os.environ.get("SOZY_TEST_FACES", REPO_ROOT / "examples" / "faces"))
FAST_DLIB_DIR = REPO_ROOT / ".cache" / "dlib-fast"


@dataclass
class Run:
    label: str
    seconds: float
    images: int
    faces: int
    # CPU time of the processes doing the work: unlike wall time, barely moved by other load.
    cpu_seconds: float = 0.0

    @property
    def cpu_ms_per_image(self) -> float:
        return 1000 * self.cpu_seconds / self.images

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return f"{model}, {available_cpus()} cores, Python {platform.python_version()}"


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time consumed so far by these processes (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def load_photos() -> list[tuple[str, bytes]]:
    with (FACES_DIR / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [(row["path"], (FACES_DIR / row["path"]).read_bytes()) for row in rows]


# -- 1. one process ----------------------------------------------------------------------------


def bench_single(photos: list[tuple[str, bytes]], repeat: int, settings: EngineSettings) -> tuple[Run, dict]:
    from sozy.faces.analyze import FaceAnalyzer

    analyzer = FaceAnalyzer(settings)
    analyzer.analyze(photos[0][1])  # warm-up
    found = {}
    faces = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        for rel, data in photos:
            result = analyzer.analyze(data)
            faces += len(result.faces)
            found[rel] = result
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Run("single process, in-process dlib", seconds, repeat * len(photos), faces, cpu), found


# -- 2. the pool --------------------------------------------------------------------------------


async def bench_pool(
    photos: list[tuple[str, bytes]], repeat: int, settings: EngineSettings, label: str
) -> tuple[Run, dict, str]:
    async with FaceEngine(settings) as engine:
        workers = engine.workers
        await engine.embed_many([data for _, data in photos[:workers]])  # every worker warm
        items = [data for _ in range(repeat) for _, data in photos]
        pids = engine.worker_pids
        started, cpu_started = time.perf_counter(), cpu_seconds(pids)
        results = await engine.embed_many(items)
        seconds, cpu = time.perf_counter() - started, cpu_seconds(pids) - cpu_started
        dlib_file = engine.dlib_file
    failures = [r for r in results if isinstance(r, Exception)]
    if failures:
        raise SystemExit(f"{label}: {len(failures)} photos failed, first: {failures[0]!r}")
    faces = sum(len(r.faces) for r in results)
    found = {rel: r for (rel, _), r in zip(photos, results, strict=False)}
    return Run(label, seconds, len(items), faces, cpu), found, dlib_file


# -- 3. the naive baseline -------------------------------------------------------------------------

_fr = None


def _naive_init() -> None:
    global _fr
    warnings.simplefilter("ignore")  # pkg_resources' deprecation notice, once per process
    import face_recognition

    _fr = face_recognition


def _naive_task(path: str) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    image = _fr.load_image_file(path)
    locations = _fr.face_locations(image)
    vectors = _fr.face_encodings(image, known_face_locations=locations)
    return list(zip(locations, vectors, strict=False))


def naive_available() -> str | None:
    """None when face_recognition imports here, else why not."""
    if importlib.util.find_spec("face_recognition") is None:
        return "face_recognition is not installed"
    if importlib.util.find_spec("pkg_resources") is None:
        return "face_recognition needs pkg_resources: pip install 'setuptools<82'"
    return None


def bench_naive(photos: list[tuple[str, bytes]], repeat: int, workers: int) -> tuple[Run, dict]:
    paths = [str(FACES_DIR / rel) for _ in range(repeat) for rel, _ in photos]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_naive_init) as pool:
        pool.map(_naive_task, paths[:workers], chunksize=1)  # every process warm
        pids = [p.pid for p in multiprocessing.active_children()]
        started, cpu_started = time.perf_counter(), cpu_seconds(pids)
        results = pool.map(_naive_task, paths, chunksize=1)
        seconds, cpu = time.perf_counter() - started, cpu_seconds(pids) - cpu_started
    faces = sum(len(r) for r in results)
    found = {rel: r for (rel, _), r in zip(photos, results, strict=False)}
    label = f"naive face_recognition loop, {workers} processes, full res"
    return Run(label, seconds, len(paths), faces, cpu), found


def compare_people(engine: dict, naive: dict) -> tuple[int, int, float]:
    """(photos with equal face counts, photos, largest distance engine face → nearest naive face)."""
    equal = 0
    worst = 0.0
    for rel, ours in engine.items():
        theirs = naive[rel]
        equal += len(ours.faces) == len(theirs)
        for face in ours.faces:
            if theirs:
                worst = max(worst, min(float(np.linalg.norm(face.vector - v)) for _, v in theirs))
    return equal, len(engine), worst


# -- main ------------------------------------------------------------------------------------------


def fast_dlib_dir(option: str | None) -> str:
    if option is not None:
        return option
    return str(FAST_DLIB_DIR) if list(FAST_DLIB_DIR.glob("_dlib_pybind11*.so")) else ""


def row(run: Run) -> str:
    return (
        f"  {run.label:<54} {run.faces_per_s:6.2f} faces/s {run.images_per_s:6.2f} images/s "
        f"{run.cpu_ms_per_image:6.0f} CPU ms/image  ({run.images} images, {run.seconds:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each photo once (about half a minute per row)")
    parser.add_argument("--repeat", type=int, default=None, help="copies of the photo set (default 8, --quick 1)")
    parser.add_argument("--workers", type=int, default=0, help="pool and baseline processes (default: one per core)")
    parser.add_argument("--fast-dlib", default=None, help=f"dlib build folder (default {FAST_DLIB_DIR} if built)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the face_recognition loop")
    parser.add_argument(
        "--descriptor",
        choices=("onnx", "dlib"),
        default=EngineSettings.descriptor,
        help="engine.descriptor (onnx: ONNX Runtime, the default; dlib: dlib's own)",
    )
    parser.add_argument(
        "--max-side", type=int, default=EngineSettings.max_side, help="engine.max_side (detection size)"
    )
    parser.add_argument(
        "--upsample",
        type=int,
        default=EngineSettings.upsample,
        help="engine.upsample (0: faces under about 80 px at detection size are not found)",
    )
    parser.add_argument(
        "--upsample-below-px",
        type=int,
        default=EngineSettings.upsample_below_px,
        help="engine.upsample_below_px (0: always upsample, as face_recognition does)",
    )
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 8)
    workers = args.workers or available_cpus()
    photos = load_photos()
    import dlib

    print(f"machine: {machine()}")
    print(
        f"photos: {len(photos)} from {FACES_DIR} × {repeat} = {len(photos) * repeat} images; {workers} workers; "
        f"engine max_side {args.max_side}, upsample {args.upsample} (below {args.upsample_below_px} px), "
        f"descriptor {args.descriptor}; in-process dlib {dlib.__version__} (BLAS {dlib.DLIB_USE_BLAS})"
    )

    settings = EngineSettings(
        workers=workers,
        device="cpu",
        max_side=args.max_side,
        upsample=args.upsample,
        upsample_below_px=args.upsample_below_px,
        descriptor=args.descriptor,
    )
    single, _single_found = bench_single(photos, repeat, settings)
    print(row(single))
    pool, pool_found, _ = asyncio.run(
        bench_pool(photos, repeat, settings, f"FaceEngine pool, {workers} workers, default dlib")
    )
    print(row(pool))
    efficiency = pool.faces_per_s / (workers * single.faces_per_s)
    print(f"  efficiency = pool ÷ ({workers} × single) = {efficiency:.2f}  (goal ≥ 0.90)")
    # Other load on the machine moves wall time, not the CPU each photo costs.
    print(f"  CPU efficiency = single ÷ pool CPU ms per image = {single.cpu_ms_per_image / pool.cpu_ms_per_image:.2f}")

    fast_path = fast_dlib_dir(args.fast_dlib)
    fast = None
    if fast_path:
        fast, fast_found, dlib_file = asyncio.run(
            bench_pool(
                photos, repeat, replace(settings, dlib_path=fast_path), f"FaceEngine pool, {workers} workers, fast dlib"
            )
        )
        print(row(fast))
        print(
            f"  fast dlib ({dlib_file}): {fast.faces_per_s / pool.faces_per_s:.2f}× the default pool; "
            f"same faces: {sum(len(fast_found[r].faces) == len(pool_found[r].faces) for r in pool_found)}"
            f"/{len(pool_found)} photos"
        )
    else:
        print("  fast dlib: not built (scripts/build-fast-dlib.sh)")

    speedup = fast_speedup = None
    why_not = None if not args.no_baseline else "skipped (--no-baseline)"
    why_not = why_not or naive_available()
    if why_not is None:
        naive_repeat = 1 if args.quick else max(1, repeat // 4)
        naive, naive_found = bench_naive(photos, naive_repeat, workers)
        print(row(naive))
        equal, total, worst = compare_people(pool_found, naive_found)
        print(
            f"  same people: face counts equal on {equal}/{total} photos; "
            f"every engine face within {worst:.3f} of a naive one (same person < 0.6)"
        )
        speedup = pool.images_per_s / naive.images_per_s
        print(
            f"  engine ÷ naive = {speedup:.2f}× images/s, "
            f"{naive.cpu_ms_per_image / pool.cpu_ms_per_image:.2f}× less CPU per image  (goal ≥ 4×)"
        )
        if fast is not None:
            fast_speedup = fast.images_per_s / naive.images_per_s
            print(
                f"  engine with fast dlib ÷ naive = {fast_speedup:.2f}× images/s, "
                f"{naive.cpu_ms_per_image / fast.cpu_ms_per_image:.2f}× less CPU per image"
            )
    else:
        print(f"  naive baseline: {why_not}")

    key = f"efficiency {efficiency:.2f} on {workers} workers"
    if speedup is not None:
        key += f"; engine vs naive face_recognition {speedup:.2f}× images/s"
        if fast_speedup is not None:
            key += f" ({fast_speedup:.2f}× with fast dlib)"
    print(key)


if __name__ == "__main__":
    main()
