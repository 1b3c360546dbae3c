"""The upstreams and views this deployment knows, from its catalogue, by name.

The rest of the code knows upstreams only through this registry. The catalogue is
``catalogue.toml`` in the project directory unless ``CACHEDPROXY_CATALOGUE`` names another
file; it is read once per process, on first use, and again on a reload (SIGHUP); one
from Consul KV (``<prefix>/catalogue``, shared/config/live.py) stands above it while it
is there. Each is replaced whole, and only by one that loads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from shared.errors import InvalidRequest
from shared.upstreams import catalogue as catalogue_file
from shared.upstreams.catalogue import Catalogue
from shared.upstreams.kinds import ResourceKind, Upstream, View, key_of, kind_name_of

CATALOGUE_ENV = "CACHEDPROXY_CATALOGUE"
DEFAULT_CATALOGUE = Path(__file__).resolve().parents[2] / "catalogue.toml"


def catalogue_path() -> Path:
    """The catalogue file: ``CACHEDPROXY_CATALOGUE``, else catalogue.toml."""
    return Path(os.environ.get(CATALOGUE_ENV) or DEFAULT_CATALOGUE)


_live: Catalogue | None = None  # the catalogue from Consul, once one was applied
_file: Catalogue | None = None  # the file's, once read
_listeners: list[Callable[[], None]] = []


def _from_file() -> Catalogue:
    global _file
    if _file is None:
        _file = catalogue_file.load(catalogue_path())
    return _file


def catalogue() -> Catalogue:
    """This process's catalogue; CatalogueError (a SettingsError) if it is broken."""
    return _live if _live is not None else _from_file()


def from_consul() -> bool:
    """Whether the catalogue in force came from Consul (the file's stands behind it)."""
    return _live is not None


def replace_file(new: Catalogue | None) -> Catalogue | None:
    """Put ``new`` as the file's catalogue (read again on a reload); returns the one it
    replaces. In force unless Consul's is; subscribers hear of it through ``changed()``."""
    global _file
    old, _file = _file, new
    _kinds.cache_clear()
    return old


def replace(new: Catalogue | None) -> Catalogue | None:
    """Put ``new`` in force (None: the file's again); returns the one it replaces.
    Subscribers hear of it through ``changed()``."""
    global _live
    old, _live = _live, new
    _kinds.cache_clear()
    return old


def subscribe(listener: Callable[[], None]) -> None:
    """Call ``listener`` after the catalogue in force changed (routes, clients)."""
    _listeners.append(listener)


def changed() -> None:
    """Tell the subscribers that the catalogue changed."""
    for listener in _listeners:
        listener()


def upstreams() -> dict[str, Upstream]:
    """The upstreams of the catalogue in force, by name."""
    return dict(catalogue().upstreams)


def views() -> tuple[View, ...]:
    """The views of the catalogue in force."""
    return catalogue().views


@functools.cache
def _kinds() -> dict[str, ResourceKind]:
    return {k.name: k for u in catalogue().upstreams.values() for k in u.kinds}


def upstream_of(resource: str) -> str:
    """The upstream serving an already-validated resource name (a dict lookup)."""
    return _kinds()[kind_name_of(resource)].upstream


def tagged(tag: str) -> list[str]:
    """The resources carrying ``tag`` (catalogue ``tags``), of every kind; [] when no
    kind declares a tag of its form."""
    return [r for k in _kinds().values() if (r := k.tagged(tag)) is not None]


def kind_of(resource: str) -> ResourceKind:
    """The resource kind of a resource name, or NotFound."""
    kind = _kinds().get(kind_name_of(resource))
    if kind is None:
        raise InvalidRequest(f"unknown resource kind in {resource!r}")
    kind.check(key_of(resource))
    return kind
