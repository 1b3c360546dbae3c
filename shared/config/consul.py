"""Consul KV as a source of settings: its keys, a watcher that follows them, and the
command that seeds them.

Keys mirror the ini file, ``<prefix>/<section>/<key>``, with plain string values, and
``<prefix>/catalogue`` holds a whole catalogue (TOML). The watcher follows the prefix
with blocking queries (``index`` + ``wait``, honouring ``X-Consul-Index``, resetting when
the index goes backwards) and backs off while Consul is unreachable; what it reads is
applied by shared/config/live.py.

``python -m shared.config.live seed`` puts every live option's current value under the
prefix, leaving keys that exist alone.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.config.settings import Layer, Option, load_settings, option_value, options

log = logging.getLogger(__name__)

WATCH_WAIT = "30s"  # how long one blocking query may hold
CONNECT_TIMEOUT = 3.0  # Consul's HTTP timeout on top of the wait
RETRY_MIN, RETRY_MAX = 0.5, 30.0
CATALOGUE_KEY = "catalogue"  # <prefix>/catalogue: the whole catalogue, TOML


def consul_key(prefix: str, opt: Option) -> str:
    """The Consul key of an option: ``<prefix>/<section>/<key>``."""
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


class ConsulWatcher(threading.Thread):
    """Follows the KV prefix with blocking queries and feeds each change to ``apply``."""

    def __init__(self, apply: Callable[[Layer, str | None], object], client: Any,
                 prefix: str) -> None:
        super().__init__(name="consul-watcher", daemon=True)
        self.apply = apply  # LiveSettings.apply: a new layer, and the catalogue's text
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
            self.apply(kv_layer(items, self.prefix), kv_catalogue(items, self.prefix))
            self.applied.set()
        return True

    def run(self) -> None:
        """Query until stopped, backing off while Consul does not answer."""
        delay = RETRY_MIN
        while not self.stopped.is_set():
            if self.fetch_once():
                delay = RETRY_MIN
            else:
                self.stopped.wait(delay)
                delay = min(delay * 2, RETRY_MAX)

    def stop(self) -> None:
        """End the watch (at the latest when the query under way returns)."""
        self.stopped.set()


def consul_client(address: str, token: str) -> Any:
    """A py-consul client with an HTTP timeout; the token goes in a header."""
    import consul  # py-consul

    url = urlsplit(address if "://" in address else f"http://{address}")
    return consul.Consul(
        host=url.hostname or "127.0.0.1",
        port=url.port or 8500,
        scheme=url.scheme,
        token=token or None,
        connections_timeout=CONNECT_TIMEOUT,
    )


def seed(environ: Mapping[str, str]) -> list[str]:
    """Put every live option's current value into Consul, leaving keys that exist alone
    (check-and-set with index 0); returns the keys written."""
    settings = load_settings(environ)
    client = consul_client(settings.consul.address, settings.consul.token)
    written = []
    for opt in options():
        if not opt.live:
            continue
        value = option_value(settings, opt)
        text = ", ".join(value) if isinstance(value, tuple) else str(value)
        key = consul_key(settings.consul.prefix, opt)
        if client.kv.put(key, text, cas=0):
            written.append(key)
    return written


def seed_command() -> None:
    """``python -m shared.config.live seed``: seed Consul, one line per key written. A
    missing address, a bad option or a Consul that does not answer is one JSON line on
    stderr (exit code 2, or 1 when Consul did not answer), never a traceback."""
    import consul  # py-consul

    from shared.cli import environ, guarded

    def run() -> int:
        given = environ()
        if sys.argv[1:] != ["seed"] or not given.get("CONSUL_HTTP_ADDR"):
            print(json.dumps({"error": {"code": "usage", "message": (
                "usage: CONSUL_HTTP_ADDR=host:port python -m shared.config.live seed")}}),
                  file=sys.stderr)
            return 2
        try:
            written = seed(given)
        except (OSError, consul.ConsulException) as exc:  # requests' errors are OSErrors
            print(json.dumps({"error": {"code": "unavailable", "message": (
                f"consul at {given['CONSUL_HTTP_ADDR']} did not answer: "
                f"{type(exc).__name__}")}}), file=sys.stderr)
            return 1
        for key in written:
            print(f"seeded {key}")
        return 0

    sys.exit(guarded(run))
