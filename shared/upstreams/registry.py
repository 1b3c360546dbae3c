"""Every upstream this deployment knows, and their resource kinds and views by name.

The rest of the code knows upstreams only through this registry; adding one is a module
beside ``c42.py`` and a line here.
"""

from __future__ import annotations

from shared.errors import InvalidRequest
from shared.upstreams import c42
from shared.upstreams.kinds import ResourceKind, Upstream, View, check_key, key_of, kind_name_of

UPSTREAMS: dict[str, Upstream] = {u.name: u for u in (c42.UPSTREAM,)}
KINDS: dict[str, ResourceKind] = {k.name: k for u in UPSTREAMS.values() for k in u.kinds}
VIEWS: tuple[View, ...] = tuple(v for u in UPSTREAMS.values() for v in u.views)


def upstream_of(resource: str) -> str:
    """The upstream serving an already-validated resource name (a dict lookup)."""
    return KINDS[kind_name_of(resource)].upstream


def kind_of(resource: str) -> ResourceKind:
    kind = KINDS.get(kind_name_of(resource))
    if kind is None:
        raise InvalidRequest(f"unknown resource kind in {resource!r}")
    check_key(key_of(resource))
    return kind
