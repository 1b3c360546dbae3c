"""Live settings: configuration that follows Consul KV while the process runs.

Keys mirror the ini file, ``<prefix>/<section>/<key>``, with plain string values. Every
change is rebuilt into settings as defaults < config.ini < Consul < environment, then:

- a malformed value (``cache/ttl = abc``) is rejected with a log line naming its Consul
  key, and that key keeps its last good value;
- an update that fails the cross-field checks is rejected whole;
- an option that only applies at start-up (``live`` is false: the Redis URL, ports ...)
  is logged as "restart needed" and keeps its running value, never half-applied.

A watcher thread (shared/config/consul.py) follows the prefix and keeps the last good
configuration while Consul is unreachable. This module also holds the process's own
settings (``process_settings``): loaded once, followed live.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from shared.config.checks import validate
from shared.config.consul import (
    CATALOGUE_KEY,
    ConsulWatcher,
    consul_client,
    consul_key,
    seed_command,
)
from shared.config.settings import (
    Layer,
    Settings,
    SettingsError,
    find_config_file,
    load_settings,
    option_value,
    options,
    parse_value,
    read_ini,
)
from shared.telemetry.logs import refuse_to_start
from shared.upstreams import catalogue as catalogue_file
from shared.upstreams import registry
from shared.upstreams.catalogue import Catalogue, CatalogueError

log = logging.getLogger(__name__)

START_SECTIONS = {"consul"}  # never read from Consul itself

Listener = Callable[[Settings, Settings], None]  # (old, new)


class LiveSettings:
    """The current settings of this process, updated from Consul KV."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)
        path = find_config_file(self.environ)
        self._ini: list[tuple[str, Layer]] = [] if path is None else [(str(path), read_ini(path))]
        self._current = load_settings(self.environ)
        self._good: dict[tuple[str, str], str] = {}  # last good Consul value per option
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.watcher: ConsulWatcher | None = None
        self._catalogue_text: str | None = None  # the Consul catalogue in force
        self._last_good_text: str | None = None

    def get(self) -> Settings:
        """The settings in force now."""
        return self._current

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(old, new)`` after each change applied."""
        self._listeners.append(listener)

    def apply(self, layer: Layer, catalogue_text: str | None = None) -> Settings:
        """Take a new Consul layer, and the catalogue kept in Consul (None: none there,
        the file's); returns the settings now in force. A catalogue that does not
        load, or that the settings do not validate against, is rejected whole and the
        one in force stays."""
        prefix = self._current.consul.prefix
        with self._lock:
            swapped, previous = self._take_catalogue(catalogue_text)
            good: dict[tuple[str, str], str] = {}
            for opt in options():
                raw = layer.get(opt.section, {}).get(opt.key)
                if raw is None or opt.section in START_SECTIONS:
                    continue
                try:
                    parse_value(opt, raw, "consul")
                    good[(opt.section, opt.key)] = raw
                except SettingsError as exc:
                    log.error(
                        "config value rejected",
                        extra={"key": consul_key(prefix, opt), "error": str(exc)},
                    )
                    if (opt.section, opt.key) in self._good:
                        good[(opt.section, opt.key)] = self._good[(opt.section, opt.key)]
            consul: dict[str, dict[str, str]] = {}
            for (section, key), raw in good.items():
                consul.setdefault(section, {})[key] = raw
            try:
                wanted = load_settings(
                    self.environ, extra_layers=[("consul", consul)], ini=self._ini
                )
            except SettingsError as exc:
                log.error("config update rejected", extra={"error": str(exc)})
                if swapped:
                    registry.replace(previous)  # the catalogue goes back with them
                    self._catalogue_text = self._last_good_text
                return self._current
            old = self._current
            new = self._keep_restart_only(old, wanted, prefix)
            self._good = good
            self._current = new
        self._announce(old, new, None if not swapped else "consul" if catalogue_text else "file")
        return new

    def reload(self) -> Settings:
        """Read config.ini and the catalogue file again (SIGHUP); returns the settings
        now in force. One that does not load, or that the settings do not validate
        against, is refused whole with a log line naming the place, and what is in force
        stays, as a Consul update is refused. The file's catalogue is in force unless
        Consul holds one."""
        path = find_config_file(self.environ)
        try:
            ini = [] if path is None else [(str(path), read_ini(path))]
            fresh = catalogue_file.load(registry.catalogue_path())
        except SettingsError as exc:
            log.error("reload rejected", extra={"error": str(exc)})
            return self._current
        prefix = self._current.consul.prefix
        with self._lock:
            before = registry.replace_file(None)
            if before is not None and before.text == fresh.text:
                fresh = before  # the same catalogue: its settings' classes stay
            registry.replace_file(fresh)
            consul: dict[str, dict[str, str]] = {}
            for (section, key), raw in self._good.items():
                consul.setdefault(section, {})[key] = raw
            try:
                wanted = load_settings(self.environ, extra_layers=[("consul", consul)], ini=ini)
            except SettingsError as exc:
                registry.replace_file(before)
                log.error("reload rejected", extra={"error": str(exc)})
                return self._current
            old, self._ini = self._current, ini
            new = self._current = self._keep_restart_only(old, wanted, prefix)
        swapped = not registry.from_consul() and (before is None or before.text != fresh.text)
        log.info("reloaded", extra={"config": str(path) if path else None,
                                    "catalogue": str(registry.catalogue_path())})
        self._announce(old, new, "file" if swapped else None)
        return new

    def _announce(self, old: Settings, new: Settings, catalogue: str | None) -> None:
        """Log what changed and tell the subscribers: the catalogue (from ``catalogue``,
        "consul" or "file"; None: it did not change), then the settings' listeners."""
        if catalogue is not None:
            log.info("catalogue applied", extra={
                "source": catalogue, "upstreams": list(registry.upstreams()),
                "views": [v.name for v in registry.views()]})
            registry.changed()
        if new != old:
            changed = [f"{o.section}.{o.key}" for o in options()
                       if option_value(new, o) != option_value(old, o)]
            log.info("config applied", extra={"changed": changed})
            for listener in self._listeners:
                try:
                    listener(old, new)
                except Exception:
                    log.exception("config listener failed")

    def _take_catalogue(self, text: str | None) -> tuple[bool, Catalogue | None]:
        """Put the Consul catalogue ``text`` in force if it changed and loads; returns
        whether it did, and the catalogue it replaced (None: the file's)."""
        if text == self._catalogue_text:
            return False, None
        prefix = self._current.consul.prefix
        try:
            new = catalogue_file.parse(text, f"consul {prefix}/{CATALOGUE_KEY}") \
                if text else None
        except CatalogueError as exc:
            log.error("catalogue update rejected", extra={"error": str(exc)})
            return False, None
        self._last_good_text, self._catalogue_text = self._catalogue_text, text
        return True, registry.replace(new)

    @staticmethod
    def _keep_restart_only(old: Settings, wanted: Settings, prefix: str) -> Settings:
        keep: dict[str, dict[str, Any]] = {}
        for opt in options():
            if opt.section not in old.upstreams and opt.section in wanted.upstreams:
                continue  # an upstream the catalogue just added: nothing is running
            if not opt.live and option_value(wanted, opt) != option_value(old, opt):
                log.warning(
                    "restart needed",
                    extra={"key": consul_key(prefix, opt), "option": f"{opt.section}.{opt.key}"},
                )
                keep.setdefault(opt.section, {})[opt.key] = option_value(old, opt)
        return validate(wanted.replace(**keep)) if keep else wanted


def live_settings(environ: Mapping[str, str]) -> LiveSettings:
    """This process's settings; with a Consul address, read Consul once now (a short
    timeout) and keep following it in the background."""
    live = LiveSettings(environ)
    consul = live.get().consul
    if not consul.address:
        return live
    watcher = ConsulWatcher(live.apply, consul_client(consul.address, consul.token), consul.prefix)
    if not watcher.fetch_once():
        log.warning(
            "consul unreachable at start: using config.ini and the environment",
            extra={"consul": consul.address},
        )
    live.watcher = watcher
    watcher.start()
    return live


# Options this process was given on its command line (``--consul``): they rank above
# the environment without being written into it.
_command_line: dict[str, str] = {}
_process: tuple[int, LiveSettings] | None = None


def set_command_line(values: Mapping[str, str]) -> None:
    """Options from the command line, by environment variable name; taken by the next
    ``process_settings()``."""
    global _process
    _command_line.update(values)
    if _process is not None and _process[1].watcher is not None:
        _process[1].watcher.stop()
    _process = None


def process_environ() -> dict[str, str]:
    """The environment with the command line's options on top."""
    return {**os.environ, **_command_line}


def process_settings() -> LiveSettings:
    """This process's settings: loaded once and followed live, with the log level applied
    as it changes. A forked child (a pool process) loads its own, since the watcher
    thread does not cross the fork."""
    global _process
    if _process is None or _process[0] != os.getpid():
        live = live_settings(process_environ())
        live.subscribe(apply_log_level)
        _process = (os.getpid(), live)
    return _process[1]


def settings_or_exit() -> Settings:
    """This process's settings now; a bad option or catalogue ends the process with one
    JSON line naming the key, exit code 2."""
    try:
        return process_settings().get()
    except SettingsError as exc:
        refuse_to_start(exc)


def apply_log_level(old: Settings, new: Settings) -> None:
    """Follow a change of ``log.level``."""
    if old.log.level != new.log.level:
        logging.getLogger().setLevel(new.log.level.upper())


if __name__ == "__main__":
    seed_command()
