"""Sozy's configuration: one tree of settings, read in one place.

Precedence, lowest first: the defaults below, the TOML file (``$SOZY_CONFIG``,
else ``./config/sozy.toml`` if it exists), ``SOZY_*`` environment variables,
then explicit overrides (command-line flags).

Environment variables name a section and a key: ``SOZY_ENGINE_WORKERS=4``,
``SOZY_STORE_URL=http://qdrant:6333``, ``SOZY_CRAWL_PER_HOST=2``. Top-level keys
have no section: ``SOZY_DATA_DIR=/var/lib/sozy``. ``SOZY_CONFIG`` names the
file, and ``SOZY_TEST_*`` belongs to the test suite; any other ``SOZY_*``
variable that names no setting is an error, so a typo is never silently ignored.

pydantic-settings reads the sources and merges them; every value is checked
(type and range) as the settings are loaded, so a bad one stops the program
before it starts, with a message naming the setting, the value and where it
came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

DEFAULT_CONFIG_PATH = Path("config/sozy.toml")
ENV_PREFIX = "SOZY_"
# Environment variables for the test suite and CI, not settings.
_TEST_PREFIX = "SOZY_TEST_"
_CONFIG_VARIABLE = "SOZY_CONFIG"
# Python's logging levels; uvicorn takes the same names in lower case.
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def _number(value: object) -> object:
    # pydantic would read TOML's true/false as 1/0.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


def _flag(value: object) -> object:
    # An empty environment variable (compose's ${VAR:-}) is false.
    return False if isinstance(value, str) and not value.strip() else value


def _log_level(value: str) -> str:
    if value.upper() not in _LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
    return value


def _words(value: object) -> object:
    # An environment variable holds a list as comma-separated words: "a.example, b.example".
    if isinstance(value, str):
        return tuple(word.strip() for word in value.split(",") if word.strip())
    return value


Device = Literal["auto", "cpu", "cuda"]
Descriptor = Literal["onnx", "dlib"]
Detector = Literal["auto", "hog", "cnn"]
# The ranges every stage may rely on, checked as the settings are loaded.
Count = Annotated[int, BeforeValidator(_number), Field(ge=0)]  # 0 is a value ("auto", "none", "no limit")
Positive = Annotated[int, BeforeValidator(_number), Field(ge=1)]
Port = Annotated[int, BeforeValidator(_number), Field(ge=0, le=65535)]
Seconds = Annotated[float, BeforeValidator(_number), Field(gt=0)]
NonNegative = Annotated[float, BeforeValidator(_number), Field(ge=0)]  # 0 is a value ("no limit")
Share = Annotated[float, BeforeValidator(_number), Field(ge=0, lt=1)]
Distance = Annotated[float, BeforeValidator(_number), Field(gt=0)]  # L2, between face descriptors
Flag = Annotated[bool, BeforeValidator(_flag)]
LogLevel = Annotated[str, AfterValidator(_log_level)]
Words = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_words)]

# Sections refuse keys they do not have; TOML numbers are accepted for strings.
_SECTION = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


@dataclass(frozen=True, config=_SECTION)
class EngineSettings:
    # 0 = one worker per core on CPU, one per GPU on a CUDA build of dlib.
    workers: Count = 0
    # "auto" picks "cuda" when a GPU is visible and onnxruntime-gpu (pip install
    # 'sozy[gpu]': descriptors) or a CUDA build of dlib (detection too) can use it.
    device: Device = "auto"
    # How the 128-d descriptors are computed: "onnx" (dlib's ResNet weights converted
    # to ONNX, run by onnxruntime: the same vectors, faster; see docs/faces.md) or "dlib".
    descriptor: Descriptor = "onnx"
    # Where the converted ONNX model is cached; "" = $XDG_CACHE_HOME/sozy (~/.cache/sozy).
    model_cache_dir: str = ""
    # "auto" = HOG on CPU, CNN (mmod) on GPU.
    detector: Detector = "auto"
    # Upsamplings of the detection copy: each halves the smallest face found and
    # multiplies the detection time (figures in docs/faces.md).
    upsample: Count = 1
    # Coarse to fine: detect without upsampling first, and upsample only when that
    # finds no face, or a face under this many pixels (at detection size), since
    # smaller ones may then be there too. 0 = always upsample.
    upsample_below_px: Count = 120
    # Faces smaller than this (shorter box side, in original pixels) are dropped.
    min_face_px: Count = 20
    # Photos are downscaled to this longest side for detection only.
    max_side: Positive = 1024
    # Photos are shrunk to this longest side as they are decoded (landmarks and descriptors
    # use this copy, boxes are given in original pixels); bounds a worker's memory.
    max_decode_side: Positive = 4096
    # A photo whose decoding would need more memory than this (Pillow's buffer, e.g.
    # 4 bytes a pixel for RGB or RGBA, plus the shrunk copy) fails alone, before decoding.
    max_decode_mb: Positive = 160
    # Faces described (landmarks and descriptor) per photo, largest first; the others are
    # only counted. The API asks for fewer per search (20, or 1 with faces=largest).
    max_faces: Positive = 50
    # Decompression-bomb guard: photos with more pixels are refused.
    max_pixels: Positive = 60_000_000
    # A task running longer fails with task_timeout (its worker is replaced); 0 = no limit.
    task_timeout_s: NonNegative = 60.0
    # Tasks queued or running at once; callers wait beyond this (backpressure).
    max_in_flight: Count = 0  # 0 = 4 per worker
    # GPU workers embed this many photos per batch (CNN detector, batched descriptors).
    gpu_batch: Positive = 16
    # Extra sys.path entry for workers: a directory holding a faster dlib build.
    dlib_path: str = ""


@dataclass(frozen=True, config=_SECTION)
class StoreSettings:
    # Set: use the Qdrant server at this URL. Empty: the embedded store under data_dir.
    url: str = ""
    api_key: str = ""
    prefer_grpc: Flag = False
    collection: str = "faces"
    # Embedded store directory; relative paths are under data_dir.
    path: str = "store"
    # A denser graph than Qdrant's default (m=16, ef_construct 100), whose recall fell off as
    # the store grew (bench/store.py; figures in the README).
    hnsw_m: Count = 32
    hnsw_ef_construct: Positive = 128
    search_ef: Positive = 128
    # Threads searching the embedded store's segments in parallel; 0 = one per core.
    search_threads: Count = 0
    upsert_batch: Positive = 256
    timeout_s: Seconds = 30.0
    # A new face this close (L2) to a face of a person taken down is refused, whatever its
    # name: dlib's own same-person rule, since here a miss lets someone back in.
    takedown_distance: Distance = 0.6


@dataclass(frozen=True, config=_SECTION)
class IdentitySettings:
    # Check source labels against the person's own faces and attach unnamed faces while
    # crawling (sozy.store.consensus); `python -m sozy.store relabel` does it in bulk.
    consensus: Flag = True
    # Two faces closer than this are linked as one person (dlib's own rule).
    link_distance: Distance = 0.6
    # An unnamed face is attached to a person when their nearest face is closer than this
    # and no other person's is (stricter than 0.6: only clear matches).
    attach_distance: Distance = 0.5
    # A new face is checked against this many of the person's nearest faces.
    neighbours: Positive = 16
    # A person needs this many faces before a claim can be outvoted.
    min_faces: Positive = 3
    # The linked group that is a person's majority holds more than this share of their faces.
    majority: Share = 0.5


@dataclass(frozen=True, config=_SECTION)
class CrawlSettings:
    concurrency: Positive = 64
    per_host: Positive = 8
    # Requests per second per host; 0 = no rate limit (per_host still applies).
    per_host_rate: NonNegative = 0.0
    connect_timeout_s: Seconds = 10.0
    read_timeout_s: Seconds = 20.0
    total_timeout_s: Seconds = 60.0
    retries: Count = 3
    backoff_base_s: NonNegative = 0.5
    backoff_max_s: NonNegative = 30.0
    max_redirects: Count = 5
    max_image_bytes: Positive = 20 * 1024 * 1024
    max_page_bytes: Positive = 5 * 1024 * 1024
    respect_robots: Flag = True
    robots_token: str = "SozyBot"
    # Identifying User-Agent for Wikimedia APIs (their policy asks for contact info).
    api_user_agent: str = "SozyBot/0.1 (https://github.com/sozy-project/sozy; sozy@example.org)"
    rotate_user_agents: Flag = True
    wikidata_api: str = "https://www.wikidata.org/w/api.php"
    commons_api: str = "https://commons.wikimedia.org/w/api.php"
    sparql_url: str = "https://query.wikidata.org/sparql"
    search_url: str = "https://www.bing.com/images/search"
    # Widest Commons thumbnail wanted; Wikimedia renders only standard widths (…, 500, 960,
    # 1280, …), so the widest standard width not above this one is asked for.
    thumb_width: Positive = 960
    images_per_person: Positive = 20
    # --top never asks for people with fewer sitelinks (Wikipedias and sister projects linking them).
    top_min_sitelinks: Count = 10
    # Folder-source folders whose photos carry no person name (lower-cased).
    unnamed_folders: Words = ("group", "groups", "unknown", "misc", "various")
    page_depth: Count = 1
    max_pages: Count = 1000
    thumbnails: Flag = False
    thumbnail_px: Positive = 160
    state_file: str = "crawl.sqlite"
    queue_size: Positive = 256
    # --ray: photos a node fetches and embeds per unit of work (the unit a lost node's
    # successor redoes; smaller units even out nodes of unequal speed at the end of a crawl).
    cluster_batch: Positive = 16


@dataclass(frozen=True, config=_SECTION)
class ApiSettings:
    host: str = "127.0.0.1"
    port: Port = 8000
    # Empty: the takedown (DELETE) routes are off.
    admin_key: str = ""
    max_upload_bytes: Positive = 10 * 1024 * 1024
    # Requests per minute per client address; 0 = unlimited.
    rate_limit_per_minute: Count = 60
    # Searches waiting for the engine beyond this are answered 503.
    queue_limit: Count = 32
    # Request bodies being read at once; more uploads are answered 503 before any byte is read.
    max_uploads: Positive = 6
    # A body must arrive within body_timeout_s, with no pause longer than body_idle_timeout_s (else 408).
    body_timeout_s: Seconds = 60.0
    body_idle_timeout_s: Seconds = 10.0
    # With this many connections open (or requests in progress), uvicorn answers 503.
    max_connections: Positive = 512
    # Idle keep-alive connections are closed after this many seconds.
    keep_alive_s: NonNegative = 5.0
    # A request's line and headers must arrive within this many seconds (0 = no limit).
    header_timeout_s: NonNegative = 10.0
    # Largest request line plus headers, in bytes (h11's limit).
    max_header_bytes: Positive = 16384
    # image_url fetches one client may have running at once (the pool holds 64 connections).
    fetches_per_client: Positive = 4
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed ("*" = any).
    # Empty: forwarded headers are ignored and the client is the TCP peer.
    forwarded_allow_ips: Words = ()
    # Set: /metrics asks for Authorization: Bearer <metrics_key>. Empty: /metrics is open.
    metrics_key: str = ""
    cors_origins: Words = ()
    same_person_threshold: Distance = 0.6
    fetch_timeout_s: Seconds = 10.0
    # Only for tests and private deployments: let image_url reach private addresses.
    allow_private_urls: Flag = False


class Settings(BaseSettings):
    """The whole tree. ``Settings()`` is the defaults (and its arguments): reading the
    file and the environment is :func:`load_settings`'s."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        coerce_numbers_to_str=True,
        env_prefix=ENV_PREFIX,
        # SOZY_ENGINE_MODEL_CACHE_DIR: the section, then the key (which may hold "_").
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    data_dir: str = "data"
    log_level: LogLevel = "INFO"
    engine: EngineSettings = Field(default_factory=EngineSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    crawl: CrawlSettings = Field(default_factory=CrawlSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def store_path(self) -> Path:
        return self.data_path / self.store.path

    def replace(self, **changes: Any) -> Settings:
        """A copy with dotted keys changed: ``s.replace(**{"engine.workers": 2})``."""
        return _build(
            InitSettingsSource(Settings, init_kwargs=_nest(changes)),
            InitSettingsSource(Settings, init_kwargs=self.model_dump()),
            origins={"override": _nest(changes)},
        )


_SECTIONS = tuple(name for name, info in Settings.model_fields.items() if info.default_factory is not None)


class _Environment(EnvSettingsSource):
    """``SOZY_*`` variables from a given mapping (``os.environ``, or a test's own)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(Settings)
        self.env_vars = parse_env_vars(environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _setting_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``SOZY_*`` variables that must name a setting; any that names none is an error."""
    top = {ENV_PREFIX + name.upper() for name in Settings.model_fields if name not in _SECTIONS}
    sections = tuple(f"{ENV_PREFIX}{section.upper()}_" for section in _SECTIONS)
    found = {}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or var == _CONFIG_VARIABLE or var.startswith(_TEST_PREFIX):
            continue
        if var.upper() not in top and not var.upper().startswith(sections):
            raise ConfigError(f"environment: unknown setting {var}")
        found[var] = value
    return found


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


def _build(*sources: PydanticBaseSettingsSource, origins: Mapping[str, Mapping[str, Any]]) -> Settings:
    """Settings from ``sources``, highest precedence first. ``origins``: each source's
    values under the name an error message gives them, in the same order."""
    try:
        return Settings(_build_sources=(sources, {}))
    except ValidationError as exc:
        raise ConfigError("; ".join(_explain(error, origins) for error in exc.errors())) from None
    except SettingsError as exc:
        raise ConfigError(f"environment: {exc}") from None


_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_PROBLEMS = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "dataclass_type": "must be a table",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be {expected}",
}


def _explain(error: ErrorDetails, origins: Mapping[str, Mapping[str, Any]]) -> str:
    """``environment (SOZY_CRAWL_PER_HOST): crawl.per_host must be at least 1, got '0'``."""
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    origin = next((name for name, values in origins.items() if _holds(values, loc)), "defaults")
    if origin == "environment":
        origin = f"environment ({ENV_PREFIX}{'_'.join(loc).upper()})"
    if error["type"] in _UNKNOWN:
        return f"{origin}: unknown setting {key}"
    template = _PROBLEMS.get(error["type"])
    ctx = error.get("ctx", {})
    if template is not None:
        problem = template.format(**ctx)
    elif error["type"] == "value_error":
        problem = str(ctx["error"])
    else:
        return f"{origin}: {key}: {error['msg']}, got {error['input']!r}"
    return f"{origin}: {key} {problem}, got {error['input']!r}"


def _holds(values: Mapping[str, Any], loc: list[str]) -> bool:
    for part in loc[:-1]:
        inner = values.get(part)
        if not isinstance(inner, Mapping):
            return False
        values = inner
    return loc[-1] in values


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
    config_path = Path(path) if path else Path(environ.get(_CONFIG_VARIABLE, "") or DEFAULT_CONFIG_PATH)
    if (path or environ.get(_CONFIG_VARIABLE)) and not config_path.is_file():
        raise ConfigError(f"config file not found: {config_path}")
    from_flags = _nest(overrides or {})
    from_env = _Environment(_setting_variables(environ))
    try:
        from_file = TomlConfigSettingsSource(Settings, toml_file=config_path)  # no file: nothing
        origins = {"override": from_flags, "environment": from_env(), str(config_path): from_file()}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    except SettingsError as exc:
        raise ConfigError(f"environment: {exc}") from None
    return _build(InitSettingsSource(Settings, init_kwargs=from_flags), from_env, from_file, origins=origins)
