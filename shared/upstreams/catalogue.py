"""The catalogue: the upstreams cachedproxy may call, their resources and the views made
of them, as data an operator writes (``catalogue.toml``; ``CACHEDPROXY_CATALOGUE`` names
another file). Tokens never go in it: each upstream's token is its ``token`` setting.

    [upstreams.<name>]                 base_url, title, ttl, auth, headers, paging, prefetch
    [upstreams.<name>.params.<param>]  more settings of the upstream: type, default, help
    [upstreams.<name>.resources.<kind>]
        path       "/events/{id}/": one placeholder, the resource's key
        paged      follow the upstream's pages
        checks     [{expr, error}]: JMESPath that must hold of a body, else 502 with error
        not_found  {expr, message}: JMESPath that, when true of a body, means 404
        keep       JMESPath: the part of a body that is kept
    [views.<name>]
        route      "/events-with-subscriptions/{id}/": each {param} a typed parameter
        params     {<param> = {type = "id" | "count" | "choice", ...}}
        parts      {<part> = "<upstream>:<kind>:{param}"}, in the order errors count
        body       JMESPath over {"params": ..., "<part>": its data, ...}
        summary, not_found, schema (the body's JSON Schema, for OpenAPI)

Every expression is compiled, and every reference checked, when the catalogue is loaded:
a broken catalogue is refused whole, with a message naming the upstream, resource or
view and the key.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any
from urllib.parse import urlsplit

import jmespath
from jmespath.exceptions import JMESPathError

from shared.config.declare import SettingsError, option
from shared.errors import NotFound, UpstreamError
from shared.upstreams.kinds import (
    KEY_RE,
    Endpoint,
    LinkPaging,
    Pagination,
    Param,
    ResourceKind,
    Upstream,
    View,
)

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
TAG_RE = re.compile(r"[A-Za-z0-9_:.-]{1,200}")
READ_THROUGH_RE = re.compile(r"(/[A-Za-z0-9_-]*|/\{\w+\})+")
VIEW_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")
PARAM_TYPES = {"id", "count", "choice"}
SETTING_TYPES = {"id": str, "ids": tuple[str, ...]}
STANDARD_SETTINGS = {"base_url", "token", "ttl", "budget_per_hour", "page_size"}


class CatalogueError(SettingsError):
    """The catalogue is malformed; the message names the file, the entry and the key."""


@dataclass(frozen=True)
class Catalogue:
    upstreams: Mapping[str, Upstream]
    views: tuple[View, ...]


def load(path: Path) -> Catalogue:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the catalogue ({exc.strerror})") from None
    return parse(text, str(path))


def parse(text: str, source: str = "catalogue") -> Catalogue:
    """The catalogue in ``text``, or CatalogueError naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{source}: not valid TOML ({exc})") from None
    at = _At(source)
    _only(at, data, {"upstreams", "views"})
    upstreams = {name: _upstream(at.key("upstreams", name), name, spec)
                 for name, spec in _table(at, data, "upstreams").items()}
    if not upstreams:
        raise at.error("upstreams", "the catalogue lists no upstream")
    kinds = {k.name: k for u in upstreams.values() for k in u.kinds}
    views = tuple(_view(at.key("views", name), name, spec, upstreams, kinds)
                  for name, spec in _table(at, data, "views", required=False).items())
    titles = {name: _get(at, spec, "title", str, name)
              for name, spec in data["upstreams"].items()}
    allowed = tuple(_read_through(k, titles[k.upstream]) for k in kinds.values()
                    if k.read_through)
    for view in allowed:
        if view.name in {v.name for v in views}:
            raise at.error(f"views.{view.name}", "is also the name of a read-through "
                                                 "resource's route")
    return Catalogue(upstreams, views + allowed)


@dataclass(frozen=True)
class _At:
    """Where in the catalogue a value is, for error messages."""

    source: str
    path: tuple[str, ...] = ()

    def key(self, *keys: str) -> _At:
        return _At(self.source, (*self.path, *keys))

    def error(self, key: str, message: str) -> CatalogueError:
        where = ".".join(part for part in (*self.path, key) if part)
        return CatalogueError(f"{self.source}: {where}: {message}")


def _table(at: _At, spec: Mapping[str, Any], key: str, required: bool = True
           ) -> dict[str, Any]:
    value = spec.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise at.error(key, "must be a table")
    return value


def _get(at: _At, spec: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
         default: Any = ..., what: str = "") -> Any:
    if key not in spec:
        if default is ...:
            raise at.error(key, "is required")
        return default
    value = spec[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _types(kind):
        raise at.error(key, f"must be {what or _type_name(kind)}")
    return value


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", dict: "a table",
             list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in _types(kind))


def _entry(at: _At, spec: Any, allowed: set[str]) -> None:
    """``spec`` is a table with no key outside ``allowed``."""
    if not isinstance(spec, dict):
        raise at.error("", "must be a table")
    _only(at, spec, allowed)


def _only(at: _At, spec: Mapping[str, Any], allowed: set[str]) -> None:
    for key in spec:
        if key not in allowed:
            raise at.error(key, f"unknown key (known: {', '.join(sorted(allowed))})")


def _expr(at: _At, spec: Mapping[str, Any], key: str) -> Callable[[Any], Any]:
    text = _get(at, spec, key, str)
    try:
        compiled = jmespath.compile(text)
    except JMESPathError as exc:
        raise at.error(key, f"invalid JMESPath ({str(exc).splitlines()[0]})") from None

    def search(value: Any) -> Any:
        try:
            return compiled.search(value)
        except JMESPathError:  # a function given the wrong type: the body is malformed
            return None

    return search


# -- upstreams ---------------------------------------------------------------------------

def _upstream(at: _At, name: str, spec: Any) -> Upstream:
    if not NAME_RE.fullmatch(name):
        raise at.error("", "an upstream's name is 1-32 lower-case letters, digits and '_'")
    _entry(at, spec, {"title", "base_url", "ttl", "budget_per_hour", "timeouts", "auth",
                      "headers", "paging", "params", "prefetch", "resources"})
    title = _get(at, spec, "title", str, name)
    base_url = _get(at, spec, "base_url", str)
    if urlsplit(base_url).scheme not in {"http", "https"}:
        raise at.error("base_url", "must be an http(s) URL")
    ttl = _get(at, spec, "ttl", int, 0)
    budget = _get(at, spec, "budget_per_hour", int, 0)
    timeouts = _table(at, spec, "timeouts", required=False)
    _only(at.key("timeouts"), timeouts, {"connect", "read"})
    connect = _get(at.key("timeouts"), timeouts, "connect", (int, float), 0)
    read = _get(at.key("timeouts"), timeouts, "read", (int, float), 0)
    if connect < 0 or read < 0:
        raise at.key("timeouts").error("connect" if connect < 0 else "read",
                                       "must not be negative")
    if ttl < 0 or budget < 0:
        raise at.error("ttl" if ttl < 0 else "budget_per_hour", "must not be negative")
    auth = _auth(at.key("auth"), _table(at, spec, "auth", required=False))
    headers = _get(at, spec, "headers", dict, {})
    if not all(isinstance(v, str) for v in headers.values()):
        raise at.error("headers", "values must be strings")
    paging = _paging(at.key("paging"), _table(at, spec, "paging", required=False))
    params = {p: _setting(at.key("params", p), p, s)
              for p, s in _table(at, spec, "params", required=False).items()}
    kinds = tuple(_kind(at.key("resources", kind), name, kind, s, paging)
                  for kind, s in _table(at, spec, "resources").items())
    kind_names = {k.name.partition(":")[2] for k in kinds}
    prefetch = []
    for template in _get(at, spec, "prefetch", list, []):
        kind, _, key = template.partition(":") if isinstance(template, str) else ("", "", "")
        fields = _fields(key)
        if kind not in kind_names or len(fields) != 1 or f"{{{fields[0]}}}" != key \
                or fields[0] not in params:
            raise at.error("prefetch", f"{template!r} is not <resource>:{{<param>}} "
                                       "with a resource and a parameter of this upstream")
        prefetch.append((kind, fields[0]))

    section = _section(name, title, base_url, ttl, budget, auth, paging, params)
    limit = paging.max_page_size if paging else 0

    def endpoint(settings: Any) -> Endpoint:
        sent = dict(headers)
        if auth is not None and settings.token:
            sent[auth[0]] = auth[1] + settings.token
        return Endpoint(settings.base_url, sent, getattr(settings, "page_size", 100),
                        float(connect), float(read))

    def resources(settings: Any) -> list[str]:
        """The resources kept warm always: each value's, in the order of the values."""
        expanded = [[f"{name}:{kind}:{v}" for v in _values(settings, param)]
                    for kind, param in prefetch]
        return [r for group in itertools.zip_longest(*expanded) for r in group if r]

    def checks(settings: Any) -> list[tuple[bool, str]]:
        found = [
            (settings.ttl >= 0, f"{name}.ttl must not be negative (0: cache.ttl)"),
            (settings.budget_per_hour >= 0,
             f"{name}.budget_per_hour must not be negative (0: no budget)"),
            (urlsplit(settings.base_url).scheme in {"http", "https"},
             f"{name}.base_url must be an http(s) URL"),
        ]
        if limit:
            found.append((1 <= settings.page_size <= limit,
                          f"{name}.page_size must be between 1 and {limit}"))
        for p in params.values():
            found.append((all(KEY_RE.fullmatch(v) for v in _values(settings, p.name)),
                          f"{name}.{p.name} must {p.must}"))
        return found

    return Upstream(name, section, kinds, endpoint, resources, checks)


def _values(settings: Any, param: str) -> tuple[str, ...]:
    """A parameter setting's values: those of an ``ids`` list, or the one ``id``."""
    return _values_of(getattr(settings, param))


def _auth(at: _At, spec: Mapping[str, Any]) -> tuple[str, str] | None:
    if not spec:
        return None
    _only(at, spec, {"header", "scheme"})
    header = _get(at, spec, "header", str)
    scheme = _get(at, spec, "scheme", str, "")
    return header, f"{scheme} " if scheme else ""


@dataclass(frozen=True)
class _Paging:
    pagination: Pagination | LinkPaging
    page_size: int
    max_page_size: int


def _paging(at: _At, spec: Mapping[str, Any]) -> _Paging | None:
    """``style = "offset"``: ``limit`` and ``offset`` query parameters and ``count``, the
    JMESPath of the item count in a page; ``style = "link"``: the Link header's next
    page, ``size`` the page size's query parameter."""
    if not spec:
        return None
    style = _get(at, spec, "style", str)
    common = {"style", "page_size", "max_page_size"}
    pagination: Pagination | LinkPaging
    if style == "offset":
        _only(at, spec, common | {"limit", "offset", "count"})
        count, count_text = _expr(at, spec, "count"), spec["count"]

        def total(body: Any) -> int:
            value = count(body)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UpstreamError(f"upstream body has no count at '{count_text}'")
            return value

        pagination = Pagination(_get(at, spec, "limit", str), _get(at, spec, "offset", str),
                                total)
    elif style == "link":
        _only(at, spec, common | {"size"})
        pagination = LinkPaging(_get(at, spec, "size", str))
    else:
        raise at.error("style", "must be \"offset\" or \"link\"")
    page_size = _get(at, spec, "page_size", int, 100)
    max_page_size = _get(at, spec, "max_page_size", int, 100)
    if not 1 <= page_size <= max_page_size:
        raise at.error("page_size", "must be between 1 and max_page_size")
    return _Paging(pagination, page_size, max_page_size)


@dataclass(frozen=True)
class _Setting:
    name: str
    type: str
    default: Any
    help: str
    must: str  # what a value must be, for the error


def _setting(at: _At, name: str, spec: Any) -> _Setting:
    if not NAME_RE.fullmatch(name) or name in STANDARD_SETTINGS:
        raise at.error("", "a parameter's name is lower-case letters, digits and '_', "
                           f"and not one of {', '.join(sorted(STANDARD_SETTINGS))}")
    _entry(at, spec, {"type", "default", "help", "items"})
    kind = _get(at, spec, "type", str)
    if kind not in SETTING_TYPES:
        raise at.error("type", "must be \"id\" or \"ids\"")
    items = _get(at, spec, "items", str, "ids")
    if kind == "ids":
        default = tuple(_get(at, spec, "default", list, []))
        must = f"list {items} (letters, digits, '_' and '-')"
    else:
        default = _get(at, spec, "default", str)
        must = "be an id (letters, digits, '_' and '-')"
    if not all(isinstance(v, str) and KEY_RE.fullmatch(v) for v in _values_of(default)):
        raise at.error("default", f"must {must}")
    return _Setting(name, kind, default, _get(at, spec, "help", str, name), must)


def _values_of(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _section(name: str, title: str, base_url: str, ttl: int, budget: int,
             auth: tuple[str, str] | None, paging: _Paging | None,
             params: Mapping[str, _Setting]) -> type:
    """The upstream's settings section: ``[<name>]``, ``<NAME>_*``, ``<prefix>/<name>/*``."""
    env = name.upper()
    fields: list[tuple[str, Any, Any]] = [
        ("base_url", str, option(base_url, f"{env}_BASE_URL", f"{title} API base URL")),
        ("token", str, option("", f"{env}_TOKEN", f"{title} API token" + (
            f" (sent as '{auth[0]}: {auth[1]}<token>')" if auth else ""), live=True)),
        ("ttl", int, option(ttl, f"{env}_TTL",
                            f"Seconds {title} responses stay fresh; 0: cache.ttl", live=True)),
        ("budget_per_hour", int, option(
            budget, f"{env}_BUDGET_PER_HOUR",
            f"Requests an hour refreshes of {title} stay within; 0: no budget", live=True)),
    ]
    if paging is not None:
        fields.append(("page_size", int, option(
            paging.page_size, f"{env}_PAGE_SIZE",
            f"Items per upstream page (1-{paging.max_page_size})", live=True)))
    for p in params.values():
        fields.append((p.name, SETTING_TYPES[p.type], option(
            p.default, f"{env}_{p.name.upper()}", p.help, live=True)))
    return dataclasses.make_dataclass(f"{name.title()}Settings", fields, frozen=True)


# -- resources ---------------------------------------------------------------------------

def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in Formatter().parse(template) if f is not None]


def _kind(at: _At, upstream: str, name: str, spec: Any, paging: _Paging | None
          ) -> ResourceKind:
    if not NAME_RE.fullmatch(name):
        raise at.error("", "a resource's name is lower-case letters, digits and '_'")
    _entry(at, spec, {"path", "paged", "checks", "not_found", "keep", "derive",
                      "read_through", "example", "tags"})
    path = _get(at, spec, "path", str)
    fields = _fields(path)
    if not path.startswith("/") or len(fields) != 1 or not fields[0].isidentifier():
        raise at.error("path", "must start with '/' and hold one placeholder, e.g. {id}")
    checks = []
    for i, check in enumerate(_get(at, spec, "checks", list, [])):
        where = at.key("checks", str(i))
        if not isinstance(check, dict):
            raise where.error("", "must be a table with expr and error")
        _only(where, check, {"expr", "error"})
        checks.append((_expr(where, check, "expr"), _get(where, check, "error", str)))
    not_found = None
    if "not_found" in spec:
        where = at.key("not_found")
        nf = _table(at, spec, "not_found")
        _only(where, nf, {"expr", "message"})
        not_found = (_expr(where, nf, "expr"), _get(where, nf, "message", str))
    keep = _expr(at, spec, "keep")

    def trim(body: Any) -> Any:
        for holds, error in checks:
            if holds(body) is not True:
                raise UpstreamError(error)
        if not_found is not None and not_found[0](body) is True:
            raise NotFound(not_found[1])
        return keep(body)

    pagination = None
    if _get(at, spec, "paged", bool, False):
        if paging is None:
            raise at.error("paged", "the upstream declares no paging")
        pagination = paging.pagination
    derive = None
    if "derive" in spec:
        if pagination is None:
            raise at.error("derive", "only a paged resource derives values from its items")
        derive = _derive(at.key("derive"), _table(at, spec, "derive"))
    read_through = _get(at, spec, "read_through", bool, False)
    if read_through and (pagination is not None or not READ_THROUGH_RE.fullmatch(path)):
        raise at.error("read_through", "a read-through resource is one page at a path of "
                                       "letters, digits, '-', '_' and '/', no query")
    placeholder = f"{{{fields[0]}}}"
    tags = []
    for i, tag in enumerate(_get(at, spec, "tags", list, [])):
        if not isinstance(tag, str) or not TAG_RE.fullmatch(tag.replace(placeholder, "K", 1)) \
                or tag.count(placeholder) != 1:
            raise at.key("tags", str(i)).error(
                "", f"a tag is letters, digits, '_', '-', ':' and '.' around {placeholder}, "
                    f"e.g. \"event:{placeholder}\"")
        tags.append(tag.replace(placeholder, "{key}"))
    return ResourceKind(f"{upstream}:{name}", upstream, path.replace(placeholder, "{key}"),
                        trim, pagination, derive, read_through, fields[0],
                        _get(at, spec, "example", str, ""), tuple(tags))


def _read_through(kind: ResourceKind, title: str) -> View:
    """``GET /<upstream><path>``: a read-through resource, served as kept."""
    route = f"/{kind.upstream}" + kind.path.replace("{key}", f"{{{kind.key_name}}}")

    def resources(values: Mapping[str, Any], settings: Any) -> list[str]:
        return [f"{kind.name}:{values[kind.key_name]}"]

    return View(kind.name.replace(":", "-").replace("_", "-"), route,
                (Param(kind.key_name, "id", f"{title} {kind.key_name}", kind.example),),
                resources, lambda values, data: data[0],
                f"{title}'s {route.removeprefix('/' + kind.upstream)}, read through the cache",
                {}, allowlist=True)


def _derive(at: _At, spec: Mapping[str, Any]) -> Callable[[list[Any]], dict[str, Any]]:
    """``{<name> = JMESPath over {"items": all pages' items}}``: computed when the
    resource changes and stored with it, e.g. a list sorted for a top-N view."""
    expressions = {name: _expr(at, spec, name) for name in spec}

    def derive(items: list[Any]) -> dict[str, Any]:
        derived = {}
        for name, expression in expressions.items():
            value = expression({"items": items})
            if value is None:
                raise UpstreamError(f"upstream items give no '{name}'")
            derived[name] = value
        return derived

    return derive


# -- views -------------------------------------------------------------------------------

def _view(at: _At, name: str, spec: Any, upstreams: Mapping[str, Upstream],
          kinds: Mapping[str, ResourceKind]) -> View:
    if not VIEW_NAME_RE.fullmatch(name):
        raise at.error("", "a view's name is lower-case letters, digits and '-'")
    _entry(at, spec, {"route", "summary", "params", "parts", "body", "not_found", "schema"})
    route = _get(at, spec, "route", str)
    params = tuple(_param(at.key("params", p), p, s)
                   for p, s in _table(at, spec, "params", required=False).items())
    names = {p.name for p in params}
    if not route.startswith("/") or route.startswith("//") or set(_fields(route)) != names \
            or len(_fields(route)) != len(names) or re.search(r"[^A-Za-z0-9/{}_-]", route):
        raise at.error("route", "must start with '/', use letters, digits, '-', '_' and "
                                "hold each parameter once as {name}")
    parts = _table(at, spec, "parts")
    templates = []
    for part, template in parts.items():
        where = at.key("parts")
        if not isinstance(template, str) or not part.isidentifier() or part == "params":
            raise where.error(part, "must be \"<upstream>:<resource>:{<param>}\"")
        kind_name, _, key = template.rpartition(":")
        fields = _fields(key)
        if kind_name not in kinds or len(fields) != 1 or f"{{{fields[0]}}}" != key:
            raise where.error(part, f"{template!r}: no such resource, or its key is not "
                                    "one {placeholder}")
        field = fields[0]
        scope, _, setting = field.partition(".")
        if setting:
            section_fields = {f.name for f in dataclasses.fields(upstreams[scope].section)} \
                if scope in upstreams else set()
            if setting not in section_fields:
                raise where.error(part, f"{{{field}}} names no setting of an upstream")
        elif field not in names:
            raise where.error(part, f"{{{field}}} is not a parameter of the view")
        templates.append((kind_name, scope, setting))
    body = _body(at, spec, {p.name: p for p in params})
    part_names = list(parts)

    def resources(values: Mapping[str, Any], settings: Any) -> list[str]:
        return [f"{kind}:{getattr(settings.section(scope), setting) if setting else values[scope]}"
                for kind, scope, setting in templates]

    def build(values: Mapping[str, Any], data: Sequence[Any]) -> Any:
        document = {"params": dict(values), **dict(zip(part_names, data, strict=True))}
        return body(values)(document)

    schema = _get(at, spec, "schema", dict, {})
    return View(name, route, params, resources, build,
                _get(at, spec, "summary", str, name), schema,
                _get(at, spec, "not_found", str, "not found upstream"))


PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def _body(at: _At, spec: Mapping[str, Any], params: Mapping[str, Param]
          ) -> Callable[[Mapping[str, Any]], Callable[[Any], Any]]:
    """The view's body: parameter values -> its JMESPath search. ``${n}`` in the text is
    a count or choice parameter's value, put in before compiling (JMESPath has no
    variables): ``repos.derived.${field}[:${n}]``. Only those types may appear, and their
    values are validated first, so nothing else can be written into the expression."""
    text = _get(at, spec, "body", str)
    named = PLACEHOLDER.findall(text)
    for name in named:
        if name not in params or params[name].type not in {"count", "choice"}:
            raise at.error("body", f"${{{name}}} is not a count or choice parameter")
    if not named:
        search = _expr(at, spec, "body")
        return lambda values: search
    example = {p.name: p.choices[0] if p.choices else 1 for p in params.values()}
    _expr(at, {"body": _fill(text, example)}, "body")  # refused here, not per request

    @functools.lru_cache(maxsize=1024)
    def compiled(filled: str) -> Callable[[Any], Any]:
        return _expr(at, {"body": filled}, "body")

    return lambda values: compiled(_fill(text, values))


def _fill(text: str, values: Mapping[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def _param(at: _At, name: str, spec: Any) -> Param:
    if not name.isidentifier():
        raise at.error("", "a parameter's name is a Python-style identifier")
    _entry(at, spec, {"type", "description", "example", "choices"})
    kind = _get(at, spec, "type", str)
    if kind not in PARAM_TYPES:
        raise at.error("type", "must be \"id\", \"count\" or \"choice\"")
    choices = tuple(_get(at, spec, "choices", list, []))
    if (kind == "choice") != bool(choices) or not all(
            isinstance(c, str) and KEY_RE.fullmatch(c) for c in choices):
        raise at.error("choices", "a \"choice\" parameter lists its choices (ids), "
                                  "and only it has choices")
    return Param(name, kind, _get(at, spec, "description", str, ""),
                 str(_get(at, spec, "example", (str, int), "")), choices)
