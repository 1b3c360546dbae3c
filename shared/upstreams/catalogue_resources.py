"""The catalogue's ``[upstreams.<name>.resources.<kind>]`` and ``paging``: where a
resource is, how its bodies are checked and trimmed, how its pages are followed, and
the read-through route of one that allows it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import NotFound, UpstreamError
from shared.upstreams.catalogue_views import parse_param
from shared.upstreams.kinds import (
    SEPARATOR,
    LinkPaging,
    Pagination,
    Param,
    ResourceKind,
    View,
    key_with_query,
)
from shared.upstreams.tables import At, entry, expr, only, placeholders, table, value

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
TAG_RE = re.compile(r"[A-Za-z0-9_:.-]{1,200}")
PATH_RE = re.compile(r"(/([A-Za-z0-9_.-]|\{\w+\})*)+")  # a read-through's path or route
MAX_ITEMS = 100_000  # items of a paged resource served read-through as one list


@dataclass(frozen=True)
class Paging:
    """An upstream's ``paging``: how its paged resources are followed, and page sizes."""

    pagination: Pagination | LinkPaging
    page_size: int
    max_page_size: int


def parse_paging(at: At, spec: Mapping[str, Any]) -> Paging | None:
    """``style = "offset"``: ``limit`` and ``offset`` query parameters and ``count``, the
    JMESPath of the item count in a page; ``style = "link"``: the Link header's next
    page, ``size`` the page size's query parameter."""
    if not spec:
        return None
    style = value(at, spec, "style", str)
    common = {"style", "page_size", "max_page_size"}
    pagination: Pagination | LinkPaging
    if style == "offset":
        only(at, spec, common | {"limit", "offset", "count"})
        count, count_text = expr(at, spec, "count"), spec["count"]

        def total(body: Any) -> int:
            value = count(body)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UpstreamError(f"upstream body has no count at '{count_text}'")
            return value

        pagination = Pagination(value(at, spec, "limit", str), value(at, spec, "offset", str),
                                total)
    elif style == "link":
        only(at, spec, common | {"size"})
        pagination = LinkPaging(value(at, spec, "size", str))
    else:
        raise at.error("style", "must be \"offset\" or \"link\"")
    page_size = value(at, spec, "page_size", int, 100)
    max_page_size = value(at, spec, "max_page_size", int, 100)
    if not 1 <= page_size <= max_page_size:
        raise at.error("page_size", "must be between 1 and max_page_size")
    return Paging(pagination, page_size, max_page_size)



def parse_kind(at: At, upstream: str, name: str, spec: Any, paging: Paging | None
               ) -> ResourceKind:
    """``[upstreams.<upstream>.resources.<name>]``: one kind of resource and how its
    bodies are checked, trimmed and paged."""
    if not NAME_RE.fullmatch(name):
        raise at.error("", "a resource's name is lower-case letters, digits and '_'")
    entry(at, spec, {"path", "paged", "checks", "not_found", "keep", "derive",
                      "read_through", "route", "example", "tags", "query"})
    path = value(at, spec, "path", str)
    fields = placeholders(path)
    if not path.startswith("/") or not fields or len(set(fields)) != len(fields) \
            or not all(f.isidentifier() for f in fields):
        raise at.error("path", "must start with '/' and hold each placeholder once, e.g. "
                               "\"/events/{id}/\" or \"/repos/{owner}/{repo}\"")
    checks = []
    for i, check in enumerate(value(at, spec, "checks", list, [])):
        where = at.key("checks", str(i))
        if not isinstance(check, dict):
            raise where.error("", "must be a table with expr and error")
        only(where, check, {"expr", "error"})
        checks.append((expr(where, check, "expr"), value(where, check, "error", str)))
    not_found = None
    if "not_found" in spec:
        where = at.key("not_found")
        nf = table(at, spec, "not_found")
        only(where, nf, {"expr", "message"})
        not_found = (expr(where, nf, "expr"), value(where, nf, "message", str))
    keep = expr(at, spec, "keep") if "keep" in spec else None

    def trim(body: Any) -> Any:
        for holds, error in checks:
            if holds(body) is not True:
                raise UpstreamError(error)
        if not_found is not None and not_found[0](body) is True:
            raise NotFound(not_found[1])
        return body if keep is None else keep(body)

    pagination = None
    if value(at, spec, "paged", bool, False):
        if paging is None:
            raise at.error("paged", "the upstream declares no paging")
        pagination = paging.pagination
    derive = None
    if "derive" in spec:
        if pagination is None:
            raise at.error("derive", "only a paged resource derives values from its items")
        derive = _derive(at.key("derive"), table(at, spec, "derive"))
    read_through = value(at, spec, "read_through", bool, False)
    if read_through and not PATH_RE.fullmatch(path):
        raise at.error("read_through", "a read-through resource's path is letters, digits, "
                                       "'-', '_', '.', '/' and its placeholders, no query")
    route = _route(at, spec, upstream, path, read_through)
    placeholder = f"{{{fields[0]}}}"
    tags = []
    if len(fields) > 1 and spec.get("tags"):
        raise at.error("tags", "only a resource of one placeholder has tags")
    for i, tag in enumerate(value(at, spec, "tags", list, [])):
        if not isinstance(tag, str) or not TAG_RE.fullmatch(tag.replace(placeholder, "K", 1)) \
                or tag.count(placeholder) != 1:
            raise at.key("tags", str(i)).error(
                "", f"a tag is letters, digits, '_', '-', ':' and '.' around {placeholder}, "
                    f"e.g. \"event:{placeholder}\"")
        tags.append(tag.replace(placeholder, "{key}"))
    query = tuple(parse_param(at.key("query", q), q, s, bounded=True)
                  for q, s in table(at, spec, "query", required=False).items())
    taken = set(fields) | _paging_names(pagination)
    if query and not read_through:
        raise at.error("query", "only a read-through resource takes query parameters")
    for param in query:
        if param.name in taken:
            raise at.key("query").error(param.name, "is a placeholder of the path or a "
                                                    "paging parameter")
    example = value(at, spec, "example", str, "")
    if example and len(example.split(SEPARATOR)) != len(fields):
        raise at.error("example", f"must be a key of {len(fields)} values joined by '/'")
    return ResourceKind(f"{upstream}:{name}", upstream, path, trim, pagination, derive,
                        read_through, tuple(fields), example, tuple(tags), route, query)


def _paging_names(pagination: Pagination | LinkPaging | None) -> set[str]:
    if isinstance(pagination, Pagination):
        return {pagination.limit_param, pagination.offset_param}
    if isinstance(pagination, LinkPaging):
        return {pagination.size_param, "page"}
    return set()


def _route(at: At, spec: Mapping[str, Any], upstream: str, path: str, read_through: bool
           ) -> str:
    """Where a read-through resource is served: ``route``, else ``/<upstream><path>``."""
    if "route" not in spec:
        return f"/{upstream}{path}" if read_through else ""
    route = value(at, spec, "route", str)
    if not read_through:
        raise at.error("route", "only a read-through resource has a route")
    if not PATH_RE.fullmatch(route) or route.startswith("//") \
            or sorted(placeholders(route)) != sorted(placeholders(path)):
        raise at.error("route", "must start with '/', use letters, digits, '-', '_', '.' "
                                "and hold each of the path's placeholders once")
    return route


def read_through_view(kind: ResourceKind, title: str) -> View:
    """``GET <route>``: a read-through resource, served as stored; a paged one as one
    list of its pages' items (at most ``MAX_ITEMS``)."""
    names = kind.key_names

    def resources(values: Mapping[str, Any], settings: Any) -> list[str]:
        given = {p.name: values[p.name] for p in kind.query if p.name in values}
        return [f"{kind.name}:{key_with_query([values[n] for n in names], given)}"]

    def build(values: Mapping[str, Any], data: Sequence[Any]) -> Any:
        if kind.pagination is None:
            return data[0]
        return [item for page in data[0]["pages"]
                for item in (page if isinstance(page, list) else [page])][:MAX_ITEMS]

    examples = kind.example.split(SEPARATOR) if kind.example else [""] * len(names)
    return View(kind.name.replace(":", "-").replace("_", "-"), kind.route,
                tuple(Param(n, "id", f"{title} {n}", e) for n, e in zip(names, examples,
                                                                        strict=True)),
                resources, build,
                f"{title}'s {kind.path}" + (" (all pages)" if kind.pagination else "")
                + ", read through the cache", {}, allowlist=True, query=kind.query)


def _derive(at: At, spec: Mapping[str, Any]) -> Callable[[list[Any]], dict[str, Any]]:
    """``{<name> = JMESPath over {"items": all pages' items}}``: computed when the
    resource changes and stored with it, e.g. a list sorted for a top-N view."""
    expressions = {name: expr(at, spec, name) for name in spec}

    def derive(items: list[Any]) -> dict[str, Any]:
        derived = {}
        for name, expression in expressions.items():
            value = expression({"items": items})
            if value is None:
                raise UpstreamError(f"upstream items give no '{name}'")
            derived[name] = value
        return derived

    return derive
