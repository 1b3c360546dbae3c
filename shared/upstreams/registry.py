"""Every resource kind this deployment knows, by name."""

from __future__ import annotations

from shared.errors import InvalidRequest
from shared.upstreams import c42
from shared.upstreams.kinds import ResourceKind, check_key, key_of, kind_name_of

KINDS: dict[str, ResourceKind] = {kind.name: kind for kind in c42.KINDS}


def upstream_of(resource: str) -> str:
    """The upstream serving an already-validated resource name (a dict lookup)."""
    return KINDS[kind_name_of(resource)].upstream


def kind_of(resource: str) -> ResourceKind:
    kind = KINDS.get(kind_name_of(resource))
    if kind is None:
        raise InvalidRequest(f"unknown resource kind in {resource!r}")
    check_key(key_of(resource))
    return kind
