"""Settings: defaults < config.ini < extra layers < environment, with clear errors."""

from pathlib import Path

import pytest

from shared.config import docs as config_docs
from shared.config.settings import Settings, SettingsError, load_settings, options


def write_ini(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.ini"
    path.write_text(text)
    return {"CACHEDPROXY_CONFIG": str(path)}


def test_defaults_apply_without_any_source(tmp_path):
    """With an empty config file and no environment, every option has its default."""
    settings = load_settings(write_ini(tmp_path, ""))
    assert settings == Settings()
    assert settings.cache.ttl == 252
    assert settings.api.host == "127.0.0.1" and settings.api.port == 8080
    assert settings.flower.address == "127.0.0.1" and settings.flower.port == 5555
    assert settings.api.miss_wait_timeout == 10.0


def test_ini_overrides_defaults_and_env_overrides_ini(tmp_path):
    """config.ini beats the defaults; an environment variable beats config.ini."""
    env = write_ini(tmp_path, "[cache]\nttl = 60\n[c42]\nbase_url = https://c42.example/api/v2\n")
    settings = load_settings(env)
    assert settings.cache.ttl == 60
    assert settings.section("c42").base_url == "https://c42.example/api/v2"
    settings = load_settings({**env, "CACHE_TTL": "7"})
    assert settings.cache.ttl == 7
    assert settings.section("c42").base_url == "https://c42.example/api/v2"


def test_extra_layer_sits_between_ini_and_env(tmp_path):
    """A layer such as Consul KV overrides config.ini but not the environment."""
    env = write_ini(tmp_path, "[cache]\nttl = 60\n[api]\nport = 9000\n")
    layer = ("consul", {"cache": {"ttl": "30"}, "api": {"port": "9100"}})
    settings = load_settings({**env, "API_PORT": "9200"}, extra_layers=[layer])
    assert settings.cache.ttl == 30
    assert settings.api.port == 9200


def test_malformed_value_names_key_and_source(tmp_path):
    """A value of the wrong type is rejected with the option and where it came from."""
    env = write_ini(tmp_path, "[cache]\nttl = abc\n")
    with pytest.raises(SettingsError, match=r"cache\.ttl .*config\.ini.*'abc'"):
        load_settings(env)
    with pytest.raises(SettingsError, match=r"api\.port \(environment\)"):
        load_settings({**write_ini(tmp_path, ""), "API_PORT": "eighty"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CACHE_TTL", "0", "cache.ttl"),
        ("C42_PAGE_SIZE", "101", "page_size"),
        ("C42_BASE_URL", "ftp://x", "base_url"),
        ("REDIS_URL", "localhost:6379", "redis.url"),
        ("LOG_LEVEL", "LOUD", "log.level"),
    ],
)
def test_out_of_range_values_are_rejected(tmp_path, name, value, message):
    """Values that parse but make no sense are refused at start-up."""
    with pytest.raises(SettingsError, match=message):
        load_settings({**write_ini(tmp_path, ""), name: value})


def test_explicit_config_path_must_exist(tmp_path):
    """CACHEDPROXY_CONFIG naming a missing file is an error, not a silent fallback."""
    with pytest.raises(SettingsError, match="CACHEDPROXY_CONFIG"):
        load_settings({"CACHEDPROXY_CONFIG": str(tmp_path / "missing.ini")})


def test_every_option_has_a_distinct_environment_variable():
    """No two options share an environment variable."""
    names = [opt.env for opt in options()]
    assert len(names) == len(set(names))
    assert {"REDIS_URL", "C42_BASE_URL", "C42_TOKEN", "CACHE_TTL", "API_HOST", "API_PORT",
            "FLOWER_PORT"} <= set(names)


def test_config_docs_are_current():
    """config.ini.example and the settings table of docs/CONFIGURATION.md are what the
    declarations render (regenerate with: python -m shared.config.docs)."""
    root = Path(__file__).resolve().parents[2]
    assert (root / "config.ini.example").read_text() == config_docs.ini_example()
    page = (root / config_docs.REFERENCE).read_text()
    assert config_docs.markdown_table() in page


def test_example_config_parses_to_the_defaults():
    """Every option is in config.ini.example, and the file parses to the defaults."""
    example = Path(__file__).resolve().parents[2] / "config.ini.example"
    for opt in options():
        assert f"{opt.key} =" in example.read_text(), opt.key
    assert load_settings({"CACHEDPROXY_CONFIG": str(example)}) == Settings()
