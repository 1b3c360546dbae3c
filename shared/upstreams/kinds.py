"""What a resource is: one upstream URL whose trimmed response we keep.

A resource is named ``<kind>:<key>``, e.g. ``c42:event:42``. Its kind says which upstream
serves it, the path template, how pages are followed and how a response is trimmed to the
fields we serve. Trim functions are pure and raise ``UpstreamError`` on a body of the wrong
shape, so malformed upstream data never reaches the cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import InvalidRequest

KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_key(key: str) -> str:
    """A resource key as upstream ids look: letters, digits, '_' and '-', 1 to 128 of them."""
    if not KEY_RE.fullmatch(key):
        raise InvalidRequest(
            "invalid id: use 1 to 128 letters, digits, '_' or '-'"
        )
    return key


@dataclass(frozen=True)
class Pagination:
    """Offset/limit pages; ``total`` reads the item count from a page's body."""

    limit_param: str
    offset_param: str
    total: Callable[[Any], int]


@dataclass(frozen=True)
class ResourceKind:
    name: str
    upstream: str
    path: str  # template with {key}; may carry a query string
    trim: Callable[[Any], Any]  # one page's JSON body -> the data we keep
    pagination: Pagination | None = None

    def resource(self, key: str) -> str:
        return f"{self.name}:{check_key(key)}"

    def path_for(self, resource: str) -> str:
        return self.path.format(key=key_of(resource))


def key_of(resource: str) -> str:
    return resource.rpartition(":")[2]


def kind_name_of(resource: str) -> str:
    return resource.rpartition(":")[0]
