"""Sozy's configuration: one tree of settings, read in one place.

Precedence, lowest first: the defaults below, the TOML file (``$SOZY_CONFIG``,
else ``./config/sozy.toml`` if it exists), ``SOZY_*`` environment variables,
then explicit overrides (command-line flags).

Environment variables name a section and a key: ``SOZY_ENGINE_WORKERS=4``,
``SOZY_STORE_URL=http://qdrant:6333``, ``SOZY_CRAWL_PER_HOST=2``. Top-level keys
have no section: ``SOZY_DATA_DIR=/var/lib/sozy``. ``SOZY_CONFIG`` names the
file, and ``SOZY_TEST_*`` belongs to the test suite; any other ``SOZY_*``
variable that names no setting is an error, so a typo is never silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path("config/sozy.toml")
# Environment variables for the test suite and CI, not settings.
_TEST_PREFIX = "SOZY_TEST_"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class EngineSettings:
    # 0 = one worker per core on CPU, one per GPU on a CUDA build of dlib.
    workers: int = 0
    # "auto" picks "cuda" when a GPU is visible and onnxruntime-gpu (pip install
    # 'sozy[gpu]': descriptors) or a CUDA build of dlib (detection too) can use it.
    device: str = "auto"
    # How the 128-d descriptors are computed: "onnx" (dlib's ResNet weights converted
    # to ONNX, run by onnxruntime: the same vectors, faster; see docs/faces.md) or "dlib".
    descriptor: str = "onnx"
    # Where the converted ONNX model is cached; "" = $XDG_CACHE_HOME/sozy (~/.cache/sozy).
    model_cache_dir: str = ""
    # "auto" = HOG on CPU, CNN (mmod) on GPU.
    detector: str = "auto"
    # Upsamplings of the detection copy: each halves the smallest face found (about
    # 80 px at 0, 40 px at 1) and costs about 4× the time.
    upsample: int = 1
    # Coarse to fine: detect without upsampling first, and upsample only when that
    # finds no face, or a face under this many pixels (at detection size), since
    # smaller ones may then be there too. 0 = always upsample.
    upsample_below_px: int = 120
    # Faces smaller than this (shorter box side, in original pixels) are dropped.
    min_face_px: int = 20
    # Photos are downscaled to this longest side for detection only.
    max_side: int = 1024
    # Photos are shrunk to this longest side as they are decoded (landmarks and descriptors
    # use this copy, boxes are given in original pixels); bounds a worker's memory.
    max_decode_side: int = 4096
    # A photo whose decoding would need more memory than this (Pillow's buffer, e.g.
    # 4 bytes a pixel for RGB or RGBA, plus the shrunk copy) fails alone, before decoding.
    max_decode_mb: int = 160
    # Faces described (landmarks and descriptor) per photo, largest first; the others are
    # only counted. The API asks for fewer per search (20, or 1 with faces=largest).
    max_faces: int = 50
    # Decompression-bomb guard: photos with more pixels are refused.
    max_pixels: int = 60_000_000
    # A task running longer fails with task_timeout (its worker is replaced); 0 = no limit.
    task_timeout_s: float = 60.0
    # Tasks queued or running at once; callers wait beyond this (backpressure).
    max_in_flight: int = 0  # 0 = 4 per worker
    # GPU workers embed this many photos per batch (CNN detector, batched descriptors).
    gpu_batch: int = 16
    # Extra sys.path entry for workers: a directory holding a faster dlib build.
    dlib_path: str = ""


@dataclass(frozen=True)
class StoreSettings:
    # Set: use the Qdrant server at this URL. Empty: the embedded store under data_dir.
    url: str = ""
    api_key: str = ""
    prefer_grpc: bool = False
    collection: str = "faces"
    # Embedded store directory; relative paths are under data_dir.
    path: str = "store"
    # A denser graph than Qdrant's default (m=16, ef_construct 100), whose recall fell off as
    # the store grew, at the same index build time (bench/store.py; figures in the README).
    hnsw_m: int = 32
    hnsw_ef_construct: int = 128
    search_ef: int = 128
    # Threads searching the embedded store's segments in parallel; 0 = one per core.
    search_threads: int = 0
    upsert_batch: int = 256
    timeout_s: float = 30.0
    # A new face this close (L2) to a face of a person taken down is refused, whatever its
    # name: dlib's own same-person rule, since here a miss lets someone back in.
    takedown_distance: float = 0.6


@dataclass(frozen=True)
class IdentitySettings:
    # Check source labels against the person's own faces and attach unnamed faces while
    # crawling (sozy.store.consensus); `python -m sozy.store relabel` does it in bulk.
    consensus: bool = True
    # Two faces closer than this are linked as one person (dlib's own rule).
    link_distance: float = 0.6
    # An unnamed face is attached to a person when their nearest face is closer than this
    # and no other person's is (stricter than 0.6: only clear matches).
    attach_distance: float = 0.5
    # A new face is checked against this many of the person's nearest faces.
    neighbours: int = 16
    # A person needs this many faces before a claim can be outvoted.
    min_faces: int = 3
    # The linked group that is a person's majority holds more than this share of their faces.
    majority: float = 0.5


@dataclass(frozen=True)
class CrawlSettings:
    concurrency: int = 64
    per_host: int = 8
    # Requests per second per host; 0 = no rate limit (per_host still applies).
    per_host_rate: float = 0.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 20.0
    total_timeout_s: float = 60.0
    retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_redirects: int = 5
    max_image_bytes: int = 20 * 1024 * 1024
    max_page_bytes: int = 5 * 1024 * 1024
    respect_robots: bool = True
    robots_token: str = "SozyBot"
    # Identifying User-Agent for Wikimedia APIs (their policy asks for contact info).
    api_user_agent: str = "SozyBot/0.1 (https://github.com/sozy-project/sozy; sozy@example.org)"
    rotate_user_agents: bool = True
    wikidata_api: str = "https://www.wikidata.org/w/api.php"
    commons_api: str = "https://commons.wikimedia.org/w/api.php"
    sparql_url: str = "https://query.wikidata.org/sparql"
    search_url: str = "https://www.bing.com/images/search"
    # Widest Commons thumbnail wanted; Wikimedia renders only standard widths (…, 500, 960,
    # 1280, …), so the widest standard width not above this one is asked for.
    thumb_width: int = 960
    images_per_person: int = 20
    # --top never asks for people with fewer sitelinks (Wikipedias and sister projects linking them).
    top_min_sitelinks: int = 10
    # Folder-source folders whose photos carry no person name (lower-cased).
    unnamed_folders: tuple[str, ...] = ("group", "groups", "unknown", "misc", "various")
    page_depth: int = 1
    max_pages: int = 1000
    thumbnails: bool = False
    thumbnail_px: int = 160
    state_file: str = "crawl.sqlite"
    queue_size: int = 256
    # --ray: photos a node fetches and embeds per unit of work (the unit a lost node's
    # successor redoes; smaller units even out nodes of unequal speed at the end of a crawl).
    cluster_batch: int = 16


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    # Empty: the takedown (DELETE) routes are off.
    admin_key: str = ""
    max_upload_bytes: int = 10 * 1024 * 1024
    # Requests per minute per client address; 0 = unlimited.
    rate_limit_per_minute: int = 60
    # Searches waiting for the engine beyond this are answered 503.
    queue_limit: int = 32
    # Request bodies being read at once; more uploads are answered 503 before any byte is read.
    max_uploads: int = 6
    # A body must arrive within body_timeout_s, with no pause longer than body_idle_timeout_s (else 408).
    body_timeout_s: float = 60.0
    body_idle_timeout_s: float = 10.0
    # With this many connections open (or requests in progress), uvicorn answers 503.
    max_connections: int = 512
    # Idle keep-alive connections are closed after this many seconds.
    keep_alive_s: float = 5.0
    # A request's line and headers must arrive within this many seconds (0 = no limit).
    header_timeout_s: float = 10.0
    # Largest request line plus headers, in bytes (h11's limit).
    max_header_bytes: int = 16384
    # image_url fetches one client may have running at once (the pool holds 64 connections).
    fetches_per_client: int = 4
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed ("*" = any).
    # Empty: forwarded headers are ignored and the client is the TCP peer.
    forwarded_allow_ips: tuple[str, ...] = ()
    # Set: /metrics asks for Authorization: Bearer <metrics_key>. Empty: /metrics is open.
    metrics_key: str = ""
    cors_origins: tuple[str, ...] = ()
    same_person_threshold: float = 0.6
    fetch_timeout_s: float = 10.0
    # Only for tests and private deployments: let image_url reach private addresses.
    allow_private_urls: bool = False


@dataclass(frozen=True)
class Settings:
    data_dir: str = "data"
    log_level: str = "INFO"
    engine: EngineSettings = field(default_factory=EngineSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    crawl: CrawlSettings = field(default_factory=CrawlSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    api: ApiSettings = field(default_factory=ApiSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def store_path(self) -> Path:
        return self.data_path / self.store.path

    def replace(self, **changes: Any) -> Settings:
        """A copy with dotted keys changed: ``s.replace(**{"engine.workers": 2})``."""
        return _apply(self, _nest(changes), origin="override")


def _sections() -> tuple[str, ...]:
    """The names of the settings' sections ([engine], [store], ...), in declaration order."""
    return tuple(f.name for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(_resolve(f.type)))


def _resolve(tp: Any) -> Any:
    if isinstance(tp, str):
        return {
            "EngineSettings": EngineSettings,
            "StoreSettings": StoreSettings,
            "CrawlSettings": CrawlSettings,
            "IdentitySettings": IdentitySettings,
            "ApiSettings": ApiSettings,
        }.get(tp, tp)
    return tp


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Turn a TOML or environment value into the field's type, or fail clearly."""
    origin = typing.get_origin(tp)
    if origin is tuple or tp is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(str(v) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return tp(value) if tp is float or not isinstance(value, float) else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if isinstance(tp, types.UnionType):  # pragma: no cover - no such fields yet
        return value
    raise ConfigError(f"{where}: unsupported type {tp!r}")


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue  # an unset command-line flag changes nothing
        section, _, name = key.partition(".")
        if name:
            nested.setdefault(section, {})[name] = value
        else:
            nested[section] = value
    return nested


def _apply(settings: Settings, values: Mapping[str, Any], origin: str) -> Settings:
    sections = _sections()
    top_types = _field_types(Settings)
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key in sections:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            current = getattr(settings, key)
            types_ = _field_types(type(current))
            sub: dict[str, Any] = {}
            for name, v in value.items():
                if name not in types_:
                    raise ConfigError(f"{origin}: unknown setting {key}.{name}")
                sub[name] = _coerce(v, types_[name], f"{origin}: {key}.{name}")
            changes[key] = dataclasses.replace(current, **sub)
        elif key in top_types:
            changes[key] = _coerce(value, top_types[key], f"{origin}: {key}")
        else:
            raise ConfigError(f"{origin}: unknown setting {key}")
    return dataclasses.replace(settings, **changes)


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    sections = _sections()
    top = {f.name for f in dataclasses.fields(Settings)} - set(sections)
    values: dict[str, Any] = {}
    for var, raw in environ.items():
        if not var.startswith("SOZY_") or var == "SOZY_CONFIG" or var.startswith(_TEST_PREFIX):
            continue
        rest = var[len("SOZY_") :].lower()
        if rest in top:
            values[rest] = raw
            continue
        for section in sections:
            if rest.startswith(section + "_"):
                values.setdefault(section, {})[rest[len(section) + 1 :]] = raw
                break
        else:
            raise ConfigError(f"environment: unknown setting {var}")
    return values


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the settings: defaults, then file, then ``SOZY_*`` env, then overrides.

    ``overrides`` takes dotted keys (``{"store.url": "http://..."}``); ``None``
    values are ignored so unset command-line flags can be passed straight in.
    """
    environ = os.environ if environ is None else environ
    settings = Settings()
    config_path = Path(path) if path else Path(environ.get("SOZY_CONFIG", "") or DEFAULT_CONFIG_PATH)
    if (path or environ.get("SOZY_CONFIG")) and not config_path.is_file():
        raise ConfigError(f"config file not found: {config_path}")
    if config_path.is_file():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
        settings = _apply(settings, data, origin=str(config_path))
    settings = _apply(settings, _from_env(environ), origin="environment")
    if overrides:
        settings = _apply(settings, _nest(overrides), origin="override")
    return settings
