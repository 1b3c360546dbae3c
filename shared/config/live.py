"""Live settings: configuration that follows Consul KV while the process runs.

Keys mirror the ini file, ``<prefix>/<section>/<key>``, with plain string values. Every
change is rebuilt into settings as defaults < config.ini < Consul < environment, then:

- a malformed value (``cache/ttl = abc``) is rejected with a log line naming its Consul
  key, and that key keeps its last good value;
- an update that fails the cross-field checks is rejected whole;
- an option that only applies at start-up (``live`` is false: the Redis URL, ports ...)
  is logged as "restart needed" and keeps its running value, never half-applied.

A watcher thread follows the prefix with Consul blocking queries (``index`` + ``wait``,
honouring ``X-Consul-Index``, resetting when the index goes backwards) and backs off while
Consul is unreachable, keeping the last good configuration.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.config.checks import validate
from shared.config.settings import (
    Layer,
    Option,
    Settings,
    SettingsError,
    find_config_file,
    load_settings,
    options,
    parse_value,
    read_ini,
)
from shared.telemetry.logs import refuse_to_start
from shared.upstreams import catalogue as catalogue_file
from shared.upstreams import registry
from shared.upstreams.catalogue import Catalogue, CatalogueError

log = logging.getLogger(__name__)

WATCH_WAIT = "30s"  # how long one blocking query may hold
CONNECT_TIMEOUT = 3.0  # Consul's HTTP timeout on top of the wait
RETRY_MIN, RETRY_MAX = 0.5, 30.0
START_SECTIONS = {"consul"}  # never read from Consul itself
CATALOGUE_KEY = "catalogue"  # <prefix>/catalogue: the whole catalogue, TOML

Listener = Callable[[Settings, Settings], None]  # (old, new)


def consul_key(prefix: str, opt: Option) -> str:
    return f"{prefix}/{opt.section}/{opt.key}"


def kv_catalogue(items: list[Mapping[str, Any]] | None, prefix: str) -> str | None:
    """The catalogue kept in Consul at ``<prefix>/catalogue`` (TOML), if any."""
    for item in items or []:
        if item["Key"] == f"{prefix.rstrip('/')}/{CATALOGUE_KEY}" and item.get("Value"):
            value = item["Value"]
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def kv_layer(items: list[Mapping[str, Any]] | None, prefix: str) -> Layer:
    """Consul's recurse listing -> {section: {key: value}}; other keys are ignored."""
    layer: dict[str, dict[str, str]] = {}
    for item in items or []:
        parts = item["Key"].removeprefix(prefix.rstrip("/") + "/").split("/")
        value = item.get("Value")
        if len(parts) != 2 or value is None:
            continue
        text = value.decode() if isinstance(value, bytes) else str(value)
        layer.setdefault(parts[0], {})[parts[1]] = text
    return layer


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
        return self._current

    def subscribe(self, listener: Listener) -> None:
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
        if swapped:
            log.info("catalogue applied", extra={
                "source": "consul" if catalogue_text else "file",
                "upstreams": list(registry.upstreams()),
                "views": [v.name for v in registry.views()]})
            registry.changed()
        if new != old:
            changed = [
                f"{o.section}.{o.key}" for o in options() if _value(new, o) != _value(old, o)
            ]
            log.info("config applied", extra={"changed": changed})
            for listener in self._listeners:
                try:
                    listener(old, new)
                except Exception:
                    log.exception("config listener failed")
        return new

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
            if not opt.live and _value(wanted, opt) != _value(old, opt):
                log.warning(
                    "restart needed",
                    extra={"key": consul_key(prefix, opt), "option": f"{opt.section}.{opt.key}"},
                )
                keep.setdefault(opt.section, {})[opt.key] = _value(old, opt)
        return validate(wanted.replace(**keep)) if keep else wanted


def _value(settings: Settings, opt: Option) -> Any:
    """An option's value; None for an upstream these settings do not have."""
    try:
        return getattr(settings.section(opt.section), opt.key)
    except AttributeError:  # an upstream the catalogue added or removed
        return None


class ConsulWatcher(threading.Thread):
    """Follows the KV prefix with blocking queries and feeds changes to LiveSettings."""

    def __init__(self, live: LiveSettings, client: Any, prefix: str) -> None:
        super().__init__(name="consul-watcher", daemon=True)
        self.live = live
        self.client = client
        self.prefix = prefix
        self.index = 0
        self.stopped = threading.Event()
        self.applied = threading.Event()  # set after each applied listing (tests)

    def fetch_once(self) -> bool:
        """One query: blocking when an index is known. False if Consul did not answer."""
        try:
            index, items = self.client.kv.get(
                self.prefix + "/", recurse=True, index=self.index or None,
                wait=WATCH_WAIT if self.index else None,
            )
        except Exception as exc:  # py-consul raises requests' and its own errors
            log.warning(
                "consul unreachable, keeping the current configuration",
                extra={"error": type(exc).__name__},
            )
            return False
        index = int(index or 0)
        if index < self.index or index <= 0:
            # Consul's index went backwards (a restore, a new cluster): start over.
            self.index = 0
        elif index != self.index:
            self.index = index
            self.live.apply(kv_layer(items, self.prefix), kv_catalogue(items, self.prefix))
            self.applied.set()
        return True

    def run(self) -> None:
        delay = RETRY_MIN
        while not self.stopped.is_set():
            if self.fetch_once():
                delay = RETRY_MIN
            else:
                self.stopped.wait(delay)
                delay = min(delay * 2, RETRY_MAX)

    def stop(self) -> None:
        self.stopped.set()


def consul_client(address: str, token: str) -> Any:
    import consul  # py-consul

    url = urlsplit(address if "://" in address else f"http://{address}")
    return consul.Consul(
        host=url.hostname or "127.0.0.1",
        port=url.port or 8500,
        scheme=url.scheme,
        token=token or None,
        connections_timeout=CONNECT_TIMEOUT,
    )


def live_settings(environ: Mapping[str, str]) -> LiveSettings:
    """This process's settings; with a Consul address, read Consul once now (a short
    timeout) and keep following it in the background."""
    live = LiveSettings(environ)
    consul = live.get().consul
    if not consul.address:
        return live
    watcher = ConsulWatcher(live, consul_client(consul.address, consul.token), consul.prefix)
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
    if old.log.level != new.log.level:
        logging.getLogger().setLevel(new.log.level.upper())



def seed(environ: Mapping[str, str]) -> list[str]:
    """Put every live option's current value into Consul, leaving keys that exist alone
    (check-and-set with index 0); returns the keys written."""
    settings = load_settings(environ)
    client = consul_client(settings.consul.address, settings.consul.token)
    written = []
    for opt in options():
        if not opt.live:
            continue
        value = _value(settings, opt)
        text = ", ".join(value) if isinstance(value, tuple) else str(value)
        key = consul_key(settings.consul.prefix, opt)
        if client.kv.put(key, text, cas=0):
            written.append(key)
    return written


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["seed"] or not os.environ.get("CONSUL_HTTP_ADDR"):
        sys.exit("usage: CONSUL_HTTP_ADDR=host:port python -m shared.config.live seed")
    for written in seed(os.environ):
        print(f"seeded {written}")
