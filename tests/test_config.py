"""Settings: defaults, the TOML file, SOZY_* environment and overrides, in that order."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from sozy.config import ConfigError, CrawlSettings, EngineSettings, Settings, load_settings

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config" / "sozy.toml"


def test_defaults_without_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config/sozy.toml here
    assert load_settings(environ={}) == Settings()


def test_shipped_config_file_lists_every_setting_with_its_default() -> None:
    """config/sozy.toml documents the defaults: it must not drift from the code."""
    data = tomllib.loads(REPO_CONFIG.read_text(encoding="utf-8"))
    defaults = Settings()
    for name in Settings.model_fields:
        value = getattr(defaults, name)
        if dataclasses.is_dataclass(value):
            section = data.get(name)
            assert isinstance(section, dict), f"[{name}] missing from {REPO_CONFIG}"
            for sub in dataclasses.fields(value):
                assert sub.name in section, f"{name}.{sub.name} missing from {REPO_CONFIG}"
                expected = getattr(value, sub.name)
                got = section[sub.name]
                got = tuple(got) if isinstance(expected, tuple) else got
                assert got == expected, f"{name}.{sub.name}: file has {got!r}, code {expected!r}"
            assert set(section) == {f.name for f in dataclasses.fields(value)}
        else:
            assert data.get(name) == value
    assert set(data) == set(Settings.model_fields)
    assert load_settings(path=REPO_CONFIG, environ={}) == defaults


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "sozy.toml"
    config.write_text('data_dir = "/srv/sozy"\n[engine]\nworkers = 3\n[crawl]\nper_host = 2\n')
    env = {
        "SOZY_ENGINE_WORKERS": "5",
        "SOZY_STORE_URL": "http://qdrant:6333",
        "SOZY_API_CORS_ORIGINS": "a.example, b.example",
    }
    settings = load_settings(path=config, environ=env, overrides={"crawl.per_host": 7, "store.api_key": None})

    assert settings.data_dir == "/srv/sozy"
    assert settings.engine.workers == 5  # env beats file
    assert settings.crawl.per_host == 7  # override beats file
    assert settings.store.url == "http://qdrant:6333"
    assert settings.store.api_key == ""  # a None override changes nothing
    assert settings.api.cors_origins == ("a.example", "b.example")
    assert settings.store_path == Path("/srv/sozy/store")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SOZY_ENGINE_WORKERS": "many"}, "engine.workers"),
        ({"SOZY_CRAWL_RESPECT_ROBOTS": "perhaps"}, "crawl.respect_robots"),
        ({"SOZY_NOPE": "1"}, "SOZY_NOPE"),
        ({"SOZY_ENGINE_NOPE": "1"}, "engine.nope"),
        ({"SOZY_ENGINE": "{}"}, "SOZY_ENGINE"),  # a section is no setting
        ({"SOZY_ENGINE_WORKERS": "-1"}, "SOZY_ENGINE_WORKERS): engine.workers must be at least 0, got '-1'"),
        ({"SOZY_CRAWL_PER_HOST": "0"}, "crawl.per_host must be at least 1"),
        ({"SOZY_ENGINE_DEVICE": "tpu"}, "engine.device must be 'auto', 'cpu' or 'cuda', got 'tpu'"),
        ({"SOZY_ENGINE_DESCRIPTOR": "tf"}, "engine.descriptor must be 'onnx' or 'dlib'"),
        ({"SOZY_ENGINE_DETECTOR": "yolo"}, "engine.detector must be 'auto', 'hog' or 'cnn'"),
        ({"SOZY_IDENTITY_MAJORITY": "1.5"}, "identity.majority must be less than 1"),
        ({"SOZY_API_PORT": "70000"}, "api.port must be at most 65535"),
        ({"SOZY_LOG_LEVEL": "LOUD"}, "log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"),
    ],
)
def test_bad_environment_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ=env)


def test_config_and_test_suite_variables_are_not_settings() -> None:
    env = {"SOZY_CONFIG": "", "SOZY_TEST_FACES": "/x", "SOZY_TEST_REQUIRE_BROWSER": "1", "PATH": "/bin"}
    assert load_settings(environ=env) == load_settings(environ={})


def test_bad_file_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[engine\nworkers = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_settings(path=config, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(path=tmp_path / "missing.toml", environ={})
    config.write_text("[engine]\nworkers = true\n")
    with pytest.raises(ConfigError, match=r"engine\.workers"):
        load_settings(path=config, environ={})
    config.write_text("[engine]\nmax_side = 0\n[crawl]\ntimeouts = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path=config, environ={})
    assert "bad.toml: engine.max_side must be at least 1, got 0" in str(caught.value)
    assert "bad.toml: unknown setting crawl.timeouts" in str(caught.value)


def test_out_of_range_overrides_and_flags_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"override: crawl\.concurrency must be at least 1, got 0"):
        load_settings(environ={}, overrides={"crawl.concurrency": 0})
    with pytest.raises(ConfigError, match=r"engine\.workers must be at least 0"):
        Settings().replace(**{"engine.workers": -1})
    # A section built or changed in code is checked too: no stage needs its own check.
    with pytest.raises(ValueError, match="concurrency"):
        CrawlSettings(concurrency=0)
    with pytest.raises(ValueError, match="per_host"):
        dataclasses.replace(CrawlSettings(), per_host=0)
    with pytest.raises(ValueError, match="device"):
        EngineSettings(device="tpu")  # type: ignore[arg-type]


def test_environment_values_as_compose_and_shells_write_them() -> None:
    env = {
        "SOZY_ENGINE_MODEL_CACHE_DIR": "/data/cache",  # a key holding "_"
        "SOZY_API_FORWARDED_ALLOW_IPS": "",  # compose's ${VAR:-}: none
        "SOZY_CRAWL_THUMBNAILS": "",  # empty: false
        "SOZY_CRAWL_RESPECT_ROBOTS": "off",
        "SOZY_API_PORT": "8080",
        "SOZY_IDENTITY_MAJORITY": "0.75",
    }
    settings = load_settings(environ=env)
    assert settings.engine.model_cache_dir == "/data/cache"
    assert settings.api.forwarded_allow_ips == ()
    assert settings.crawl.thumbnails is False
    assert settings.crawl.respect_robots is False
    assert settings.api.port == 8080
    assert settings.identity.majority == 0.75


def test_replace_with_dotted_keys() -> None:
    settings = Settings().replace(**{"engine.workers": 2, "data_dir": "/tmp/x"})
    assert settings.engine.workers == 2
    assert settings.data_dir == "/tmp/x"
    assert Settings().engine.workers == 0  # frozen: the original is untouched


def test_an_empty_variable_still_beats_the_file(tmp_path: Path) -> None:
    config = tmp_path / "sozy.toml"
    config.write_text('[store]\nurl = "http://qdrant:6333"\n[api]\ncors_origins = ["a.example"]\n')
    assert load_settings(path=config, environ={}).store.url == "http://qdrant:6333"
    settings = load_settings(path=config, environ={"SOZY_STORE_URL": "", "SOZY_API_CORS_ORIGINS": ""})
    assert (settings.store.url, settings.api.cors_origins) == ("", ())
