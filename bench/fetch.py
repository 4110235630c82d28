"""Fetch stage alone: Sozy's Fetcher vs img2dataset vs a bare aiohttp loop.

A loopback site of a few thousand ~67 KB JPEGs (made from examples/faces) is
served by nginx when it is installed (``apt-get install nginx-light``), else by
an aiohttp static server in a separate process. The same URL list is then
fetched, in the same run, by:

- ``bare aiohttp``: a loop of ``session.get`` + ``read`` (a reference ceiling);
- ``sozy Fetcher``: ``Fetcher.image`` with the crawler's checks (robots.txt,
  per-host slots, X-Robots-Tag, streaming size cap, image sniffing, rotating
  User-Agents); per_host = concurrency because the whole site is one host;
- ``img2dataset``: ``--output_format files --resize_mode no
  --disable_all_reencoding True`` from its own venv (.cache/bench-venv, made
  on first use), rated by its own stats (first shard start to last shard end)
  and by wall time; the better of the two is used, to be fair to it.

Each client runs ``--rounds`` times, interleaved; the best round counts. The
last line printed is Fetcher images/s ÷ img2dataset images/s (goal: ≥ 2).

    python bench/fetch.py            # 3,000 images, 3 rounds
    python bench/fetch.py --quick    # 600 images, 1 round
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACES = Path(os.environ.get("SOZY_TEST_FACES", ROOT / "examples" / "faces"))
CACHE = ROOT / ".cache" / "bench-fetch"
BENCH_VENV = ROOT / ".cache" / "bench-venv"
TARGET_BYTES = 67_000


@dataclass
class Result:
    name: str
    images: int
    seconds: float
    cpu_seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


# -- the site ---------------------------------------------------------------------


def _jpeg_near(path: Path, target: int) -> bytes:
    """The photo re-encoded as a JPEG of about ``target`` bytes (width found by bisection)."""
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB")
    lo, hi = 64, max(rgb.width, 64)
    best = b""
    for _ in range(12):
        width = (lo + hi) // 2
        height = max(1, round(rgb.height * width / rgb.width))
        buf = io.BytesIO()
        rgb.resize((width, height)).save(buf, "JPEG", quality=85)
        data = buf.getvalue()
        if not best or abs(len(data) - target) < abs(len(best) - target):
            best = data
        if len(data) < target:
            lo = width + 1
        else:
            hi = width - 1
        if lo > hi:
            break
    return best


def make_site(count: int) -> tuple[Path, float]:
    """``count`` JPEGs under .cache/bench-fetch/site-<count>/img/; returns (dir, mean size)."""
    site = CACHE / f"site-{count}"
    done = site / ".complete"
    if not done.exists():
        shutil.rmtree(site, ignore_errors=True)
        (site / "img").mkdir(parents=True)
        sources = sorted(p for p in FACES.rglob("*.jpg") if "partial" not in p.name)
        bases = [_jpeg_near(p, TARGET_BYTES) for p in sources]
        bases = [b for b in bases if len(b) > TARGET_BYTES // 2]
        for i in range(count):
            (site / "img" / f"{i:05d}.jpg").write_bytes(bases[i % len(bases)])
        os.chmod(site, 0o755)
        done.write_text("ok")
    sizes = [p.stat().st_size for p in (site / "img").iterdir()]
    return site, sum(sizes) / len(sizes)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def start_server(site: Path, kind: str) -> tuple[subprocess.Popen, str, str, Path]:
    """Start nginx (or the aiohttp fallback); returns (process, base URL, description, temp dir)."""
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="sozy-bench-fetch-"))
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if kind in ("auto", "nginx") and nginx:
        conf = tmp / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # workers must read the site under .cache
        conf.write_text(
            f"""{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_requests 1000000; keepalive_timeout 60s;
    types {{ image/jpeg jpg; }}
    client_body_temp_path {tmp}/body;
    server {{ listen 127.0.0.1:{port}; root {site}; }}
}}
"""
        )
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")])
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
        desc = f"{version.replace('nginx version: ', '')} (1 worker, sendfile)"
    elif kind == "nginx":
        raise SystemExit("nginx not found: apt-get install -y nginx-light, or --server aiohttp")
    else:
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(site), "--port", str(port)])
        desc = "aiohttp static server (separate process)"
    _wait_port(port, proc)
    return proc, f"http://127.0.0.1:{port}", desc, tmp


def serve(site: Path, port: int) -> None:
    from aiohttp import web

    app = web.Application()
    app.router.add_static("/", site)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# -- clients --------------------------------------------------------------------


async def _pool(urls: Sequence[str], workers: int, fetch: Callable[[str], Awaitable[bool]]) -> int:
    """Run ``fetch`` over ``urls`` with ``workers`` workers; returns successes."""
    it = iter(urls)
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for url in it:
            if await fetch(url):
                ok += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return ok


async def run_bare(urls: Sequence[str], concurrency: int) -> tuple[int, str]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(url: str) -> bool:
            async with session.get(url) as response:
                body = await response.read()
                return response.status == 200 and len(body) > 0

        return await _pool(urls, concurrency, fetch), ""


async def run_fetcher(urls: Sequence[str], concurrency: int) -> tuple[int, str]:
    from sozy.config import CrawlSettings
    from sozy.fetch import Fetcher, FetchError

    settings = CrawlSettings(concurrency=concurrency, per_host=concurrency)
    async with Fetcher(settings) as fetcher:

        async def fetch(url: str) -> bool:
            try:
                got = await fetcher.image(url)
            except FetchError:
                return False
            return got.image_type == "jpeg"

        ok = await _pool(urls, concurrency, fetch)
        note = f"robots.txt loads {fetcher.counters['robots_fetches']}, requests {fetcher.counters['requests']}"
        return ok, note


def timed_async(name: str, loop: str, run: Callable[..., Awaitable[tuple[int, str]]], *args: object) -> Result:
    runner = asyncio.run
    if loop == "uvloop":
        import uvloop

        runner = uvloop.run
    cpu = time.process_time()
    start = time.perf_counter()
    ok, note = runner(run(*args))  # type: ignore[arg-type]
    return Result(name, ok, time.perf_counter() - start, time.process_time() - cpu, note)


def _pick_loop(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def ensure_img2dataset() -> Path | None:
    exe = BENCH_VENV / "bin" / "img2dataset"
    if exe.exists():
        return exe
    print(f"installing img2dataset into {BENCH_VENV} (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "-q", "img2dataset"], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"img2dataset unavailable: {exc}")
        return None
    return exe if exe.exists() else None


def run_img2dataset(exe: Path, url_file: Path, count: int, processes: int, threads: int) -> Result:
    out = Path(tempfile.mkdtemp(prefix="sozy-bench-i2d-"))
    per_shard = -(-count // processes)  # one shard per process, or it uses one process
    cmd = [
        str(exe),
        "--url_list",
        str(url_file),
        "--input_format",
        "txt",
        "--output_folder",
        str(out / "out"),
        "--output_format",
        "files",
        "--resize_mode",
        "no",
        "--disable_all_reencoding",
        "True",
        "--processes_count",
        str(processes),
        "--thread_count",
        str(threads),
        "--number_sample_per_shard",
        str(per_shard),
        "--timeout",
        "10",
        "--retries",
        "0",
        "--enable_wandb",
        "False",
        "--distributor",
        "multiprocessing",
    ]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        print(proc.stderr[-2000:])
        raise RuntimeError(f"img2dataset failed ({proc.returncode})")
    stats = [json.loads(p.read_text()) for p in (out / "out").glob("*_stats.json")]
    shutil.rmtree(out, ignore_errors=True)
    ok = sum(s["successes"] for s in stats)
    span = max(s["end_time"] for s in stats) - min(s["start_time"] for s in stats)
    # Fair to img2dataset: rate it by its own download span (no interpreter
    # start-up, no imports) when that is the better figure.
    seconds = min(span, wall) if span > 0 else wall
    note = f"wall {ok / wall:,.0f} img/s, own stats {ok / span:,.0f} img/s; {processes} proc x {threads} threads"
    return Result("img2dataset", ok, seconds, cpu, note)


# -- main ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="600 images, 1 round")
    parser.add_argument("--images", type=int, default=None, help="site size (default 3000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per client (default 3)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--server", choices=("auto", "nginx", "aiohttp"), default="auto")
    parser.add_argument("--i2d-processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--i2d-threads", type=int, default=64)
    parser.add_argument("--skip-img2dataset", action="store_true")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="asyncio",
        help="event loop for the two aiohttp clients (auto: uvloop when installed)",
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return
    count = args.images or (600 if args.quick else 3000)
    rounds = args.rounds or (1 if args.quick else 3)
    loop = _pick_loop(args.loop)
    # Build the User-Agent pool outside the timed runs: a crawl does it once per process.
    from sozy.fetch.agents import browser_user_agents

    browser_user_agents()

    site, mean_size = make_site(count)
    proc, base, server_desc, tmp = start_server(site, args.server)
    try:
        urls = [f"{base}/img/{i:05d}.jpg" for i in range(count)]
        url_file = tmp / "urls.txt"
        url_file.write_text("\n".join(urls) + "\n")
        i2d = None if args.skip_img2dataset else ensure_img2dataset()
        print(f"site: {count} JPEGs, mean {mean_size / 1000:.1f} KB, served by {server_desc}")
        print(
            f"cpu: {_cpu_model()}, {os.cpu_count()} cores; event loop {loop}; "
            f"concurrency {args.concurrency}; best of {rounds} rounds"
        )
        best: dict[str, Result] = {}
        for _ in range(rounds):
            runs = [
                timed_async("bare aiohttp", loop, run_bare, urls, args.concurrency),
                timed_async("sozy Fetcher", loop, run_fetcher, urls, args.concurrency),
            ]
            if i2d is not None:
                runs.append(run_img2dataset(i2d, url_file, count, args.i2d_processes, args.i2d_threads))
            for result in runs:
                if result.images != count:
                    print(f"  {result.name}: only {result.images}/{count} images fetched")
                if result.name not in best or result.rate > best[result.name].rate:
                    best[result.name] = result
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{'client':<14} {'images':>7} {'seconds':>8} {'images/s':>9} {'cpu ms/img':>10}  notes")
    for r in best.values():
        cpu_ms = 1000 * r.cpu_seconds / max(r.images, 1)
        print(f"{r.name:<14} {r.images:>7} {r.seconds:>8.2f} {r.rate:>9,.0f} {cpu_ms:>10.2f}  {r.note}")
    ours = best["sozy Fetcher"].rate
    print(f"Fetcher / bare aiohttp: {ours / best['bare aiohttp'].rate:.2f}")
    if "img2dataset" in best:
        print(f"Fetcher images/s / img2dataset images/s (goal >= 2): {ours / best['img2dataset'].rate:.2f}")
    else:
        print(f"Fetcher images/s (img2dataset skipped): {ours:.0f}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
