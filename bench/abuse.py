"""Hostile clients against ``python -m sozy.api``: what one request can cost, and what a crowd of bad ones does.

    python bench/abuse.py                    # the full run, with a 10-minute soak
    python bench/abuse.py --soak-seconds 120 # a shorter soak

Loopback only (the server, and every client on its own 127.0.1.x address, so the
per-client rate limit applies as it would to real clients), bounded in count and
time. A small embedded store holds the shared photos' faces. In one run:

1. crowd vs one face: a 100-face photo tiled from the shared photos' face crops
   against a one-face photo, each searched ``--reps`` times one after the other
   (median latency); in-process, the same crowd with every face described, as
   the engine did before faces were chosen before describing. Goal: crowd ≤ 6×
   one face with the default engine.
2. peak worker memory (VmHWM, reset before each photo through
   /proc/PID/clear_refs) for the largest photos the defaults allow: a
   7740×7740 16-bit PNG and the largest RGBA PNG under engine.max_decode_mb
   (the 7740×7740 RGBA, over that budget, must be refused alone). Goal ≤ 400 MB.
3. server memory (RSS) growth while 30 uploads that declared 6 MB sent all but
   the last KB and stalled. Goal ≤ 50 MB.
4. a soak: ``--clients`` clients (half good, half hostile: garbage, bombs,
   smuggling, stalled and dripping bodies, bad parameters, blocked image_url
   targets, oversized headers...) for ``--soak-seconds``. Goals: no response with
   status 500; server RSS growth < 10% (from after a warm-up to the end); every
   good request answered, or refused with 429/503 and a Retry-After.

The last line is the key figure.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from sozy.config import EngineSettings, Settings  # noqa: E402
from sozy.faces.engine import FaceEngine  # noqa: E402
from sozy.faces.plan import available_cpus  # noqa: E402
from sozy.records import PhotoFaces  # noqa: E402
from sozy.store import open_store  # noqa: E402

GOAL_CROWD_RATIO = 6.0
GOAL_WORKER_MB = 400
GOAL_STALL_MB = 50
GOAL_RSS_GROWTH = 0.10
CAP_SIDE = 7740  # 59.9 Mpx, just under engine.max_pixels
CROWD_FACES = 100
STALLED_UPLOADS = 30
STALLED_BYTES = 6 * 1024 * 1024
MB = 1024 * 1024


def _bench_api() -> ModuleType:
    """bench/api.py, imported by path (bench/ is not a package): its photos, records and server."""
    spec = importlib.util.spec_from_file_location("sozy_bench_api", REPO / "bench" / "api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# -- /proc -----------------------------------------------------------------------------------


def proc_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def server_pid(port: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"sozy.api" in cmd and str(port).encode() in cmd:
                return int(entry.name)
    raise SystemExit(f"no sozy.api process on port {port}")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


# -- photos ----------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def face_crops(photos: list[tuple[str, list[str], bytes]], found: dict[str, PhotoFaces]) -> list[Image.Image]:
    """Every shared face, cropped with room around it (the detector needs some), square."""
    crops = []
    for rel, _, data in photos:
        photo = found.get(rel)
        if photo is None:
            continue
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        for face in photo.faces:
            b = face.box
            side = int(max(b.width, b.height) * 1.8)
            cx, cy = (b.left + b.right) // 2, (b.top + b.bottom) // 2
            crops.append(image.crop((cx - side // 2, cy - side // 2, cx + side // 2, cy + side // 2)))
    return crops


def crowd_photo(crops: list[Image.Image], faces: int = CROWD_FACES, tile: int = 150) -> bytes:
    """``faces`` faces in a square grid, each a shared face crop (mirrored and shaded on reuse)."""
    columns = int(np.ceil(np.sqrt(faces)))
    canvas = Image.new("RGB", (columns * tile, columns * tile), (128, 128, 128))
    for i in range(faces):
        crop = crops[i % len(crops)].resize((tile, tile), Image.Resampling.LANCZOS)
        if (i // len(crops)) % 2:
            crop = ImageOps.mirror(crop)
        gain = 1 + 0.08 * ((i // len(crops)) % 3)
        crop = crop.point(lambda v, k=gain: min(255, int(v * k)))
        canvas.paste(crop, ((i % columns) * tile, (i // columns) * tile))
    return encode(canvas, "JPEG", quality=90)


def with_face(canvas: Image.Image, face: Image.Image) -> Image.Image:
    canvas.paste(face.convert(canvas.mode) if canvas.mode != "I;16" else _as_16bit(face), (200, 200))
    return canvas


def _as_16bit(face: Image.Image) -> Image.Image:
    grey = np.asarray(face.convert("L"), dtype=np.uint16) * 257
    return Image.frombytes("I;16", face.size, grey.astype("<u2").tobytes())


def largest_photos(face: Image.Image, max_decode_mb: int) -> dict[str, bytes]:
    """The largest photos the defaults allow (and one RGBA over the decode budget), each with a face."""
    # The face as shot (about 400 px): found by the upsampled pass of the 1024 px detection copy.
    rgba_side = int(np.sqrt((max_decode_mb * MB) // 5))  # 4 bytes a pixel + the halved copy
    return {
        f"16-bit PNG {CAP_SIDE}x{CAP_SIDE}": encode(with_face(Image.new("I;16", (CAP_SIDE,) * 2, 40000), face), "PNG"),
        f"RGBA PNG {rgba_side}x{rgba_side}": encode(
            with_face(Image.new("RGBA", (rgba_side,) * 2, (90, 140, 200, 255)), face), "PNG"
        ),
        f"RGB JPEG {CAP_SIDE}x{CAP_SIDE}": encode(
            with_face(Image.new("RGB", (CAP_SIDE,) * 2, (90, 140, 200)), face), "JPEG"
        ),
        f"RGBA PNG {CAP_SIDE}x{CAP_SIDE} (over the budget)": encode(
            Image.new("RGBA", (CAP_SIDE,) * 2, (1, 2, 3, 4)), "PNG"
        ),
    }


# -- 1. crowd vs one face ----------------------------------------------------------------------


def timed_search(url: str, data: bytes, reps: int) -> tuple[float, httpx.Response]:
    times, response = [], None
    with httpx.Client(timeout=300) as http:
        for _ in range(reps):
            started = time.perf_counter()
            response = http.post(f"{url}/v1/search", content=data, headers={"Content-Type": "image/jpeg"})
            times.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"search failed: {response.status_code} {response.text[:300]}")
    assert response is not None
    return statistics.median(times), response


# -- 3. stalled uploads ------------------------------------------------------------------------


def stalled_uploads(url: str, pid: int) -> tuple[float, Counter[str]]:
    """30 uploads declaring 6 MB that send all but the last KB; RSS growth while they stall."""
    host, port = url.removeprefix("http://").split(":")
    before = proc_kb(pid, "VmRSS")
    reset_peak(pid)
    socks: list[socket.socket] = []
    outcome: Counter[str] = Counter()
    head = (
        b"POST /v1/search HTTP/1.1\r\nHost: sozy\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
        % STALLED_BYTES
    )
    body = b"\xff\xd8\xff\xe0" + bytes(STALLED_BYTES - 1024 - 4)

    def send(index: int) -> None:
        sock = socket.create_connection((host, int(port)), timeout=30, source_address=(f"127.0.2.{index + 1}", 0))
        socks.append(sock)
        try:
            sock.sendall(head + body)
            outcome["sent all but the last KB"] += 1
        except OSError:
            outcome["cut off by the server"] += 1

    threads = [threading.Thread(target=send, args=(i,)) for i in range(STALLED_UPLOADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    time.sleep(2.0)  # let the server take in what is in flight (a measurement delay, not a sync point)
    growth = (proc_kb(pid, "VmHWM") - before) / 1024
    for sock in socks:
        sock.settimeout(30)
        try:
            status = sock.recv(64).split(b" ")[1].decode()
        except (OSError, IndexError):
            status = "closed"
        outcome[f"answered {status}"] += 1
        sock.close()
    return growth, outcome


# -- 4. the soak -------------------------------------------------------------------------------


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    good_unanswered: list[str] = field(default_factory=list)
    status_500: list[str] = field(default_factory=list)
    good: int = 0
    bad: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, good: bool, status: int | None, headers: dict[str, str], note: str = "") -> None:
        with self.lock:
            self.statuses[f"{kind} {status}"] += 1
            if good:
                self.good += 1
            else:
                self.bad += 1
            if status == 500:
                self.status_500.append(f"{kind}: {note}")
            if good and not (status in (200, 422) or (status in (429, 503) and "retry-after" in headers)):
                self.good_unanswered.append(f"{kind}: {status} {note}")


def raw_exchange(
    url: str,
    source: str,
    data: bytes,
    *,
    pause_after: int | None = None,
    pause_s: float = 0.0,
    drip_s: float = 0.0,
    timeout: float = 90.0,
) -> tuple[int | None, dict[str, str]]:
    """Send ``data`` on a raw socket (optionally pausing, or dripping a byte at a time); read one response head."""
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout, source_address=(source, 0)) as sock:
            if drip_s:
                sock.settimeout(drip_s)
                for i in range(len(data)):
                    sock.sendall(data[i : i + 1])
                    try:
                        if sock.recv(1, socket.MSG_PEEK):
                            break
                    except TimeoutError:
                        continue
                sock.settimeout(timeout)
            elif pause_after is not None:
                sock.sendall(data[:pause_after])
                time.sleep(pause_s)  # the hostile client's stall
                with contextlib.suppress(OSError):
                    sock.sendall(data[pause_after:])
            else:
                with contextlib.suppress(OSError):
                    sock.sendall(data)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                head += chunk
    except OSError:
        return None, {}
    if not head.startswith(b"HTTP/1.1 "):
        return None, {}
    lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers


def post_head(length: int, content_type: str = "image/jpeg", extra: str = "") -> bytes:
    return (
        f"POST /v1/search HTTP/1.1\r\nHost: sozy\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def hostile_requests(photos: list[bytes], big16: bytes) -> list[tuple[str, float, dict[str, object]]]:
    """(kind, weight, how) of every bad request the soak sends."""
    jpeg = photos[0]
    bomb = bytes.fromhex("89504e470d0a1a0a0000000d49484452000186a0000186a00806000000") + b"\0" * 400
    smuggle = (
        b"POST /v1/search HTTP/1.1\r\nHost: sozy\r\nContent-Type: image/jpeg\r\nContent-Length: 44\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/stats HTTP/1.1\r\nHost: sozy\r\n\r\n"
    )
    parts = "".join(f'--b\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(20)) + "--b--\r\n"
    return [
        ("garbage body", 10, {"raw": post_head(20000) + os.urandom(20000)}),
        ("truncated jpeg", 8, {"raw": post_head(len(jpeg) // 2) + jpeg[: len(jpeg) // 2]}),
        ("pixel bomb png", 8, {"raw": post_head(len(bomb), "image/png") + bomb}),
        ("k=superscript", 8, {"http": ("POST", "/v1/search?k=%C2%B2", jpeg)}),
        ("k=arabic digits", 4, {"http": ("POST", "/v1/search?per_person=%D9%A3", jpeg)}),
        ("CL+TE smuggling", 8, {"raw": smuggle}),
        (
            "unread body + pipelined",
            6,
            {"raw": post_head(300, "text/plain") + b"x" * 300 + b"GET /healthz HTTP/1.1\r\nHost: s\r\n\r\n"},
        ),
        ("declared 50 MB", 6, {"raw": post_head(50 * MB)}),
        ("stalled body", 2, {"raw": post_head(len(jpeg)) + jpeg, "pause_after": len(jpeg) // 2, "pause_s": 12.0}),
        ("dripping body", 1, {"raw": post_head(len(jpeg)) + jpeg, "drip_s": 0.5}),
        ("huge header", 4, {"raw": b"GET /v1/stats HTTP/1.1\r\nHost: s\r\nX-A: " + b"a" * 70000 + b"\r\n\r\n"}),
        ("not http", 4, {"raw": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200) + b"\r\n\r\n"}),
        ("multipart 20 parts", 4, {"raw": post_head(len(parts), "multipart/form-data; boundary=b") + parts.encode()}),
        ("image_url loopback", 4, {"http": ("POST", "/v1/search", {"image_url": "http://127.0.0.1:22/x.jpg"})}),
        ("image_url metadata", 4, {"http": ("POST", "/v1/search", {"image_url": "http://169.254.169.254/latest/"})}),
        ("bad base64", 4, {"http": ("POST", "/v1/search", {"image_base64": "!!!not base64!!!"})}),
        ("deep json", 2, {"raw": post_head(200000, "application/json") + b"[" * 100000 + b"]" * 100000}),
        ("takedown without key", 4, {"http": ("DELETE", "/v1/faces?name=obama&token=x", None)}),
        ("unknown face id", 4, {"http": ("GET", f"/v1/faces/{uuid.uuid4()}", None)}),
        ("16-bit PNG at the cap", 1, {"http": ("POST", "/v1/search", big16)}),
    ]


def soak(
    url: str, pid: int, photos: list[bytes], crowd: bytes, big16: bytes, clients: int, seconds: float
) -> dict[str, object]:
    tally = Tally()
    bad_kinds = hostile_requests(photos, big16)
    deadline = time.monotonic() + seconds
    rss: list[int] = []

    def good_client(index: int) -> None:
        source = f"127.0.1.{index + 1}"
        rng = random.Random(index)
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=url, timeout=120, transport=transport) as http:
            while time.monotonic() < deadline:
                roll = rng.random()
                try:
                    if roll < 0.8:
                        data = crowd if roll < 0.05 else rng.choice(photos)
                        kind = "good search (crowd)" if roll < 0.05 else "good search"
                        response = http.post("/v1/search", files={"image": ("p.jpg", data, "image/jpeg")})
                    else:
                        kind = "good stats"
                        response = http.get("/v1/stats")
                    status, headers = response.status_code, dict(response.headers)
                except httpx.HTTPError as exc:
                    kind, status, headers = kind, None, {}
                    tally.record(kind, True, None, {}, repr(exc))
                    continue
                tally.record(kind, True, status, {k.lower(): v for k, v in headers.items()})
                if status in (429, 503):
                    time.sleep(min(10.0, float(headers.get("retry-after", "1"))))  # a polite client waits

    def bad_client(index: int) -> None:
        source = f"127.0.1.{100 + index}"
        rng = random.Random(1000 + index)
        weights = [w for _, w, _ in bad_kinds]
        with httpx.Client(base_url=url, timeout=120, transport=httpx.HTTPTransport(local_address=source)) as http:
            while time.monotonic() < deadline:
                kind, _, how = rng.choices(bad_kinds, weights)[0]
                if "raw" in how:
                    status, headers = raw_exchange(
                        url,
                        source,
                        how["raw"],  # type: ignore[arg-type]
                        pause_after=how.get("pause_after"),
                        pause_s=how.get("pause_s", 0.0),  # type: ignore[arg-type]
                        drip_s=how.get("drip_s", 0.0),  # type: ignore[arg-type]
                    )
                else:
                    method, path, payload = how["http"]  # type: ignore[misc]
                    try:
                        if isinstance(payload, dict):
                            response = http.request(method, path, json=payload)
                        elif payload is None:
                            response = http.request(method, path)
                        else:
                            response = http.request(
                                method, path, content=payload, headers={"Content-Type": "image/png"}
                            )
                        status, headers = response.status_code, dict(response.headers)
                    except httpx.HTTPError:
                        status, headers = None, {}
                tally.record(kind, False, status, headers)

    def sample_rss() -> None:
        while time.monotonic() < deadline:
            rss.append(proc_kb(pid, "VmRSS"))
            time.sleep(5.0)

    good = clients // 2
    threads = [threading.Thread(target=good_client, args=(i,)) for i in range(good)]
    threads += [threading.Thread(target=bad_client, args=(i,)) for i in range(clients - good)]
    sampler = threading.Thread(target=sample_rss)
    for t in threads:
        t.start()
    sampler.start()
    for t in threads:
        t.join(seconds + 300)
    sampler.join(30)
    rss.append(proc_kb(pid, "VmRSS"))
    # Growth from after the first minute (warm caches, allocator arenas) to the end.
    warm = rss[min(len(rss) - 1, max(1, len(rss) // 10))]
    return {
        "tally": tally,
        "rss_start_mb": rss[0] / 1024,
        "rss_warm_mb": warm / 1024,
        "rss_end_mb": rss[-1] / 1024,
        "rss_max_mb": max(rss) / 1024,
        "growth": (rss[-1] - warm) / warm,
    }


# -- main --------------------------------------------------------------------------------------


async def prepare(
    api: ModuleType, workers: int, data_dir: Path
) -> tuple[list[tuple[str, list[str], bytes]], dict[str, PhotoFaces], dict[str, float]]:
    """The shared photos' faces into a small store; in-process timings of the crowd photo."""
    photos = api.load_photos()
    async with FaceEngine(EngineSettings(workers=workers)) as engine:
        results = await engine.embed_many([data for _, _, data in photos])
        found = {rel: r for (rel, _, _), r in zip(photos, results, strict=False) if isinstance(r, PhotoFaces)}
        crowd = crowd_photo(face_crops(photos, found))
        one = (api.FACES_DIR / "obama" / "obama.jpg").read_bytes()
        timings: dict[str, float] = {}
        for label, data, cap in (
            ("one", one, 20),
            ("crowd, 20 described", crowd, 20),
            ("crowd, all described", crowd, 0),
        ):
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                photo = await engine.embed(data, max_faces=cap)
                runs.append(time.perf_counter() - started)
            timings[label] = statistics.median(runs)
            timings[f"{label} faces"] = photo.faces_in_image
    store = await open_store(Settings(data_dir=str(data_dir)))
    await store.upsert(api.shared_records(photos, found))
    await store.close()
    return photos, found, timings | {"crowd bytes": float(len(crowd))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=0, help="engine workers (default: one per core)")
    parser.add_argument("--reps", type=int, default=5, help="searches of each photo in the crowd test")
    parser.add_argument("--clients", type=int, default=32, help="soak clients, half of them hostile")
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="soak length (default 10 minutes)")
    args = parser.parse_args()
    workers = args.workers or available_cpus()
    api = _bench_api()
    with open("/proc/loadavg") as fh:
        print(f"load before: {fh.read().split()[:3]}, {workers} workers, {os.cpu_count()} cores", flush=True)

    with tempfile.TemporaryDirectory(prefix="sozy-abuse-") as tmp:
        root = Path(tmp)
        photos, found, inproc = asyncio.run(prepare(api, workers, root / "data"))
        crowd = crowd_photo(face_crops(photos, found))
        one = (api.FACES_DIR / "obama" / "obama.jpg").read_bytes()
        face = Image.open(io.BytesIO(one)).convert("RGB")
        defaults = EngineSettings()
        large = largest_photos(face, defaults.max_decode_mb)
        good_photos = [data for rel, _, data in photos if rel in found and found[rel].faces]
        print(
            f"engine in process: one face {inproc['one'] * 1000:.0f} ms; "
            f"crowd of {inproc['crowd, 20 described faces']:.0f} "
            f"faces {inproc['crowd, 20 described'] * 1000:.0f} ms with 20 described, "
            f"{inproc['crowd, all described'] * 1000:.0f} ms with all described (before)",
            flush=True,
        )
        settings = {"SOZY_API_RATE_LIMIT_PER_MINUTE": "60"}
        with api.api_server(root / "data", workers, root / "server.log", settings) as url:
            port = int(url.rsplit(":", 1)[1])
            pid = server_pid(port)
            # 1. crowd vs one face
            timed_search(url, one, 2)  # warm
            one_s, _ = timed_search(url, one, args.reps)
            crowd_s, crowd_response = timed_search(url, crowd, args.reps)
            ratio = crowd_s / one_s
            described = len(crowd_response.json()["faces"])
            print(
                f"1. search: one face {one_s * 1000:.0f} ms, "
                f"crowd ({described} faces searched) {crowd_s * 1000:.0f} ms: "
                f"crowd / one = {ratio:.2f} (goal <= {GOAL_CROWD_RATIO:g})",
                flush=True,
            )
            # 2. peak worker memory
            peaks: dict[str, float] = {}
            with httpx.Client(timeout=300) as http:
                for label, data in large.items():
                    workers_now = children(pid)
                    for w in workers_now:
                        reset_peak(w)
                    response = http.post(f"{url}/v1/search", content=data, headers={"Content-Type": "image/png"})
                    peak = max(proc_kb(w, "VmHWM") for w in children(pid)) / 1024
                    peaks[label] = peak
                    code = response.json().get("error", {}).get("code", "ok") if response.status_code != 200 else "ok"
                    print(
                        f"2. {label} ({len(data) / MB:.1f} MB upload): HTTP {response.status_code} {code}, "
                        f"worker peak {peak:.0f} MiB",
                        flush=True,
                    )
            allowed_peak = max(v for k, v in peaks.items() if "over the budget" not in k and "JPEG" not in k)
            # 3. stalled uploads
            stall_mb, stall_outcome = stalled_uploads(url, pid)
            print(
                f"3. {STALLED_UPLOADS} stalled {STALLED_BYTES // MB} MB uploads: server RSS +{stall_mb:.0f} MiB "
                f"(goal <= {GOAL_STALL_MB}); {dict(stall_outcome)}",
                flush=True,
            )
            # 4. soak
            result = soak(url, pid, good_photos, crowd, large[next(iter(large))], args.clients, args.soak_seconds)
            tally: Tally = result["tally"]  # type: ignore[assignment]
        with open("/proc/loadavg") as fh:
            load_after = fh.read().split()[:3]
    print(
        f"4. soak {args.soak_seconds:.0f} s, {args.clients} clients: {tally.good} good and {tally.bad} hostile requests"
    )
    for key, count in sorted(tally.statuses.items()):
        print(f"   {count:6d}  {key}")
    print(
        f"   server RSS {result['rss_start_mb']:.0f} MiB at start, {result['rss_warm_mb']:.0f} after warm-up, "
        f"{result['rss_end_mb']:.0f} at the end (max {result['rss_max_mb']:.0f}): growth {result['growth'] * 100:+.1f}%"
    )
    for line in (tally.status_500 + tally.good_unanswered)[:20]:
        print(f"   ! {line}")
    print(f"load after: {load_after}")
    met = {
        "crowd": ratio <= GOAL_CROWD_RATIO,
        "memory": allowed_peak <= GOAL_WORKER_MB,
        "stall": stall_mb <= GOAL_STALL_MB,
        "soak": not tally.status_500 and not tally.good_unanswered and float(result["growth"]) < GOAL_RSS_GROWTH,  # type: ignore[arg-type]
    }
    print(json.dumps({k: ("met" if v else "MISSED") for k, v in met.items()}))
    print(
        f"crowd/one = {ratio:.2f}x, worker peak = {allowed_peak:.0f} MiB, stalled uploads = +{stall_mb:.0f} MiB, "
        f"soak: {len(tally.status_500)} x 500, RSS {float(result['growth']) * 100:+.1f}%, "  # type: ignore[arg-type]
        f"{len(tally.good_unanswered)} good unanswered"
    )


if __name__ == "__main__":
    main()
