"""Typed, frozen settings built once per process from layered sources.

Precedence, lowest first: built-in defaults < ``config.ini`` < extra layers (Consul KV)
< environment variables. The options are declared in shared/config/sections.py; this
module reads the sources, parses each value by its declared type and checks the result
(shared/config/checks.py).
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config.checks import validate
from shared.config.declare import SettingsError
from shared.config.sections import (
    MAX_WAIT,
    AccessSettings,
    AdminSettings,
    ApiSettings,
    CacheSettings,
    ConsulSettings,
    FlowerSettings,
    LogSettings,
    RedisSettings,
    RefreshSettings,
    Settings,
    UpstreamSettings,
    WorkerSettings,
)
from shared.upstreams.registry import upstreams

__all__ = [  # the sections are declared in shared/config/sections.py
    "MAX_WAIT", "AccessSettings", "AdminSettings", "ApiSettings", "CacheSettings",
    "ConsulSettings", "FlowerSettings", "LogSettings", "RedisSettings", "RefreshSettings",
    "Settings", "SettingsError", "UpstreamSettings", "WorkerSettings", "Layer", "Option",
    "PROJECT_DIR", "CONFIG_ENV", "build", "env_layer", "find_config_file", "load_settings",
    "option_value", "options", "parse_value", "read_ini", "sections",
]

PROJECT_DIR = Path(__file__).resolve().parents[2]
CONFIG_ENV = "CACHEDPROXY_CONFIG"
CONFIG_SEARCH_PATH = (Path("/etc/cachedproxy/config.ini"), PROJECT_DIR / "config.ini")

# A layer maps ini section -> key -> raw string value.
Layer = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class Option:
    """One option as declared: where it is read from, its type, default and help."""

    section: str
    key: str
    env: str
    type: type
    default: Any
    help: str
    live: bool


def sections() -> Iterator[tuple[str, type]]:
    """Every settings section's name and type: the core ones, then each upstream's."""
    hints = typing.get_type_hints(Settings)
    for f in dataclasses.fields(Settings):
        if f.name != "upstreams":
            yield f.name, hints[f.name]
    for name, upstream in upstreams().items():
        yield name, upstream.section


def options() -> Iterator[Option]:
    """Every option, in declaration order."""
    for section, section_type in sections():
        hints = typing.get_type_hints(section_type)
        for f in dataclasses.fields(section_type):
            meta = f.metadata
            yield Option(
                section,
                f.name,
                meta["env"],
                hints[f.name],
                f.default,
                meta["help"],
                meta["live"],
            )


def option_value(settings: Settings, opt: Option) -> Any:
    """An option's value in ``settings``; None for an upstream they do not have."""
    try:
        return getattr(settings.section(opt.section), opt.key)
    except AttributeError:  # an upstream the catalogue added or removed
        return None


def find_config_file(environ: Mapping[str, str]) -> Path | None:
    """The first config.ini of the search path; an explicit CACHEDPROXY_CONFIG must exist."""
    explicit = environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SettingsError(f"{CONFIG_ENV}={explicit} is not a readable file")
        return path
    return next((p for p in CONFIG_SEARCH_PATH if p.is_file()), None)


def read_ini(path: Path) -> Layer:
    """The layer of a config.ini file."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise SettingsError(f"{path}: {exc}") from exc
    return {s: dict(parser.items(s)) for s in parser.sections()}


def given(environ: Mapping[str, str], section: str, key: str) -> bool:
    """Whether an option is given in config.ini or the environment, rather than left at
    its default (what ``make run`` must not replace with its own)."""
    path = find_config_file(environ)
    ini = read_ini(path) if path is not None else {}
    return any(bool(layer.get(section, {}).get(key)) for layer in (ini, env_layer(environ)))


def env_layer(environ: Mapping[str, str]) -> Layer:
    """The layer of the environment: each option's variable, where set."""
    layer: dict[str, dict[str, str]] = {}
    for opt in options():
        if opt.env in environ:
            layer.setdefault(opt.section, {})[opt.key] = environ[opt.env]
    return layer


def parse_value(opt: Option, raw: str, source: str) -> Any:
    """An option's raw string as its declared type, or SettingsError naming the key
    and where the value came from."""
    name = f"{opt.section}.{opt.key} ({source})"
    raw = raw.strip()
    try:
        if opt.type == tuple[str, ...]:
            return tuple(item.strip() for item in raw.split(",") if item.strip())
        if opt.type is bool:
            lowered = raw.lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return lowered in {"1", "true", "yes", "on"}
        return opt.type(raw)
    except ValueError:
        kind = getattr(opt.type, "__name__", "list")
        raise SettingsError(f"{name}: {raw!r} is not a valid {kind}") from None


def build(layers: Sequence[tuple[str, Layer]]) -> Settings:
    """Settings from named layers, later layers winning; unknown keys are ignored."""
    values: dict[str, dict[str, Any]] = {}
    for opt in options():
        for source, layer in layers:
            raw = layer.get(opt.section, {}).get(opt.key)
            if raw is not None:
                values.setdefault(opt.section, {})[opt.key] = parse_value(opt, raw, source)
    return validate(Settings().replace(**values))


def load_settings(
    environ: Mapping[str, str] | None = None,
    extra_layers: Sequence[tuple[str, Layer]] = (),
    ini: Sequence[tuple[str, Layer]] | None = None,
) -> Settings:
    """Build the settings of this process: defaults < config.ini < extra layers < env.

    ``ini`` is the config file's layer when the caller has read it already.
    """
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Layer]] = []
    if ini is None:
        path = find_config_file(environ)
        ini = [] if path is None else [(str(path), read_ini(path))]
    layers.extend(ini)
    layers.extend(extra_layers)
    layers.append(("environment", env_layer(environ)))
    return build(layers)
