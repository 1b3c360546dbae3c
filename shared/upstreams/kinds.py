"""What an upstream is: its resources, the views made of them, where to ask it.

A resource is one upstream URL whose trimmed response we keep, named ``<kind>:<key>``
with its kind named ``<upstream>:<name>``. The kind says which upstream serves it, the
path template, how pages are followed and how a response is trimmed to the fields we
serve. Trim functions are pure and raise ``UpstreamError`` on a body of the wrong
shape, so malformed upstream data never reaches the cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import InvalidRequest

KEY_RE = re.compile(r"(?!\.+$)[A-Za-z0-9_.-]{1,128}")
KEY_RULE = "1 to 128 letters, digits, '_', '-' or '.' (not only dots)"
SEPARATOR = "/"  # between the values of a key of several parameters: owner/repo


def check_key(key: str, parts: int = 1) -> str:
    """A resource key as upstream ids look: ``parts`` values, each of letters, digits,
    '_', '-' and '.' (not only dots: never '.' or '..'), 1 to 128 of them, joined by '/'."""
    values = key.split(SEPARATOR)
    if len(values) != parts or not all(KEY_RE.fullmatch(v) for v in values):
        raise InvalidRequest(f"invalid id: use {KEY_RULE}"
                             + (f", {parts} of them joined by '/'" if parts > 1 else ""))
    return key


@dataclass(frozen=True)
class Pagination:
    """Offset/limit pages; ``total`` reads the item count from a page's body."""

    limit_param: str
    offset_param: str
    total: Callable[[Any], int]


@dataclass(frozen=True)
class LinkPaging:
    """Pages linked by the ``Link`` header's rel="next" (RFC 8288), as GitHub pages;
    ``size_param`` asks for the page size."""

    size_param: str


@dataclass(frozen=True)
class ResourceKind:
    """One kind of upstream resource: where it is, how its body is trimmed, paged and
    tagged."""

    name: str
    upstream: str
    path: str  # template with one {<name>} per key_names; may carry a query string
    trim: Callable[[Any], Any]  # one page's JSON body -> the data we keep
    pagination: Pagination | LinkPaging | None = None
    # All pages' kept items -> values computed once per change, stored as "derived"
    derive: Callable[[list[Any]], dict[str, Any]] | None = None
    # Served as stored at GET <route> (the allowlist), its key's values named key_names
    read_through: bool = False
    key_names: tuple[str, ...] = ("key",)
    example: str = ""  # a key to show, e.g. in make run's example URLs
    # Templates with {key}: what an operator may purge this kind's resources by, e.g.
    # "event:{key}" puts an event's resources of every kind under the tag "event:<id>".
    tags: tuple[str, ...] = ()

    # Where a read-through resource is served: "/github/repos/{owner}/{repo}"
    route: str = ""
    # The query parameters a read-through takes, typed; part of the key: "Netflix?sort=x"
    query: tuple[Param, ...] = ()

    def shape(self) -> frozenset[str] | None:
        """The fields of a paged resource's data (None: the kept body, any shape)."""
        if self.pagination is None:
            return None
        return frozenset({"count", "pages"} | ({"derived"} if self.derive else set()))

    def check(self, key: str) -> str:
        """``key`` if it is one of this kind's (InvalidRequest if not): its values, then
        any declared query parameters, each once, in name order."""
        base, mark, query = key.partition("?")
        check_key(base, len(self.key_names))
        if mark and key_with_query([base], parse_query(self.query, query)) != key:
            raise InvalidRequest(f"invalid query in {key!r}: not in name order")
        return key

    def resource(self, key: str) -> str:
        """The resource of this kind with ``key`` (checked)."""
        return f"{self.name}:{self.check(key)}"

    def tags_of(self, resource: str) -> list[str]:
        """The tags of one resource of this kind."""
        key = key_of(resource).partition("?")[0]  # a query's answers carry the same tags
        return [tag.replace("{key}", key) for tag in self.tags]

    def tagged(self, tag: str) -> str | None:
        """This kind's resource carrying ``tag``, if one may."""
        for template in self.tags:
            head, _, tail = template.partition("{key}")
            key = tag[len(head):len(tag) - len(tail)]
            if (len(tag) > len(head) + len(tail) and tag.startswith(head)
                    and tag.endswith(tail) and KEY_RE.fullmatch(key)):
                return f"{self.name}:{key}"
        return None

    def path_for(self, resource: str) -> str:
        """The upstream path of ``resource`` (one of this kind)."""
        base, mark, query = key_of(resource).partition("?")
        path = self.path.format(**dict(zip(self.key_names, base.split(SEPARATOR), strict=True)))
        return path + ("&" if "?" in path else "?") + query if mark else path


def parse_query(declared: Sequence[Param], query: str) -> dict[str, Any]:
    """A query of ``declared`` parameters, each once and valid, as sent (no
    percent-encoding: no value needs any); InvalidRequest for anything else."""
    params = {p.name: p for p in declared}
    found: dict[str, Any] = {}
    for pair in query.split("&"):
        name, eq, raw = pair.partition("=")
        if not eq or name not in params or name in found or "%" in pair or "+" in pair:
            raise InvalidRequest("only the declared query parameters, each once")
        found[name] = params[name].parse(raw)
    return found


def key_with_query(values: Sequence[Any], query: Mapping[str, Any]) -> str:
    """A resource key: its values joined by '/', then the query parameters given, in
    name order (the same query, the same key)."""
    key = SEPARATOR.join(str(v) for v in values)
    if not query:
        return key
    return key + "?" + "&".join(f"{name}={query[name]}" for name in sorted(query))


def key_of(resource: str) -> str:
    """The key of a resource name (``upstream:kind:key``)."""
    return resource.rpartition(":")[2]


def kind_name_of(resource: str) -> str:
    """The kind of a resource name (``upstream:kind``)."""
    return resource.rpartition(":")[0]


@dataclass(frozen=True)
class Param:
    """A typed parameter of a view's route (or a read-through's query): ``id`` (letters,
    digits, '_', '-' and '.', 1 to 128), ``count`` (a positive integer, at most
    ``maximum`` when it is set) or one of ``choices``."""

    name: str
    type: str  # "id", "count" or "choice"
    description: str = ""
    example: str = ""
    choices: tuple[str, ...] = ()
    maximum: int = 0  # of a count; 0: none

    def parse(self, raw: str) -> str | int:
        """The value of ``raw``, or InvalidRequest saying what is accepted."""
        if self.type == "count":
            if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or (
                    self.maximum and int(raw) > self.maximum):
                raise InvalidRequest(f"invalid {self.name}: use a positive integer"
                                     + (f" up to {self.maximum}" if self.maximum else ""))
            return int(raw)
        if self.type == "choice":
            if raw not in self.choices:
                raise InvalidRequest(f"invalid {self.name}: use one of {', '.join(self.choices)}")
            return raw
        if not KEY_RE.fullmatch(raw):
            raise InvalidRequest(f"invalid {self.name}: use {KEY_RULE}")
        return raw


@dataclass(frozen=True)
class View:
    """A combined view, ``GET <route>``: the resources its parameters name, built into
    one body. ``build`` is a pure function of the parameters and the parts' data."""

    name: str
    route: str  # "/events-with-subscriptions/{id}/": each {name} is a parameter
    params: tuple[Param, ...]
    # (parameters, settings) -> the resources it is made of, in the order errors count
    resources: Callable[[Mapping[str, Any], Any], list[str]]
    build: Callable[[Mapping[str, Any], Sequence[Any]], Any]  # parameters, parts' data -> body
    summary: str  # what a client gets, for the OpenAPI description
    schema: Mapping[str, Any]  # JSON Schema of the body
    not_found: str = "not found upstream"  # the message when a part does not exist
    allowlist: bool = False  # a read-through: a path outside the allowlist is a 404
    query: tuple[Param, ...] = ()  # the query parameters a read-through takes


@dataclass(frozen=True)
class Endpoint:
    """Where and how to ask an upstream."""

    base_url: str
    headers: Mapping[str, str]  # sent with every request, e.g. authentication
    page_size: int = 100
    connect_timeout: float = 0.0  # seconds; 0: [upstream] connect_timeout
    read_timeout: float = 0.0  # seconds; 0: [upstream] read_timeout


@dataclass(frozen=True)
class Upstream:
    """One upstream API: everything the rest of the code may know about it.

    ``section`` is its settings section, a frozen dataclass of ``option()`` fields read
    from ``[<name>]`` in config.ini, ``<prefix>/<name>/<key>`` in Consul and its own
    environment variables; a ``ttl`` field (0: cache.ttl) sets its resources' freshness.
    """

    name: str  # its resources' prefix and its settings section
    section: type
    kinds: tuple[ResourceKind, ...]
    endpoint: Callable[[Any], Endpoint]  # its settings section -> where and how to ask
    prefetch: Callable[[Any], list[str]] = lambda section: []  # resources kept warm always
    checks: Callable[[Any], list[tuple[bool, str]]] = lambda section: []  # (ok, message)
    # "upstream": each answer's Cache-Control (or Expires) sets its TTL, within min_ttl and
    # max_age, and one that forbids storing is not cached; "configured": ttl only
    freshness: str = "configured"
