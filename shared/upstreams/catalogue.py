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
import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.config.declare import option
from shared.upstreams.catalogue_resources import (
    NAME_RE,
    Paging,
    parse_kind,
    parse_paging,
    read_through_view,
)
from shared.upstreams.catalogue_views import parse_view
from shared.upstreams.kinds import (
    KEY_RE,
    Endpoint,
    Upstream,
    View,
)
from shared.upstreams.tables import (
    At,
    CatalogueError,
    entry,
    only,
    placeholders,
    table,
    value,
)

SETTING_TYPES = {"id": str, "ids": tuple[str, ...]}
STANDARD_SETTINGS = {"base_url", "token", "ttl", "min_ttl", "max_age", "budget_per_hour",
                     "max_in_flight", "page_size"}


@dataclass(frozen=True)
class Catalogue:
    """What a catalogue file declares: the upstreams (with their resources) and views."""

    upstreams: Mapping[str, Upstream]
    views: tuple[View, ...]
    text: str = ""  # what it was read from: the same text is the same catalogue


def load(path: Path) -> Catalogue:
    """The catalogue in the file at ``path``, or CatalogueError naming what is wrong."""
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
    at = At(source)
    only(at, data, {"upstreams", "views"})
    upstreams = {name: _upstream(at.key("upstreams", name), name, spec)
                 for name, spec in table(at, data, "upstreams").items()}
    if not upstreams:
        raise at.error("upstreams", "the catalogue lists no upstream")
    kinds = {k.name: k for u in upstreams.values() for k in u.kinds}
    views = tuple(parse_view(at.key("views", name), name, spec, upstreams, kinds)
                  for name, spec in table(at, data, "views", required=False).items())
    titles = {name: value(at, spec, "title", str, name)
              for name, spec in data["upstreams"].items()}
    allowed = tuple(read_through_view(k, titles[k.upstream]) for k in kinds.values()
                    if k.read_through)
    for view in allowed:
        if view.name in {v.name for v in views}:
            raise at.error(f"views.{view.name}", "is also the name of a read-through "
                                                 "resource's route")
    return Catalogue(upstreams, views + allowed, text)


# -- upstreams ---------------------------------------------------------------------------

def _upstream(at: At, name: str, spec: Any) -> Upstream:
    if not NAME_RE.fullmatch(name):
        raise at.error("", "an upstream's name is 1-32 lower-case letters, digits and '_'")
    entry(at, spec, {"title", "base_url", "ttl", "min_ttl", "max_age", "budget_per_hour",
                      "max_in_flight", "timeouts", "auth", "headers", "paging", "params",
                      "prefetch", "resources", "freshness"})
    freshness = value(at, spec, "freshness", str, "configured")
    if freshness not in {"configured", "upstream"}:
        raise at.error("freshness", "must be \"configured\" (ttl) or \"upstream\" (the "
                                    "answers' Cache-Control, within min_ttl and max_age)")
    title = value(at, spec, "title", str, name)
    base_url = value(at, spec, "base_url", str)
    if urlsplit(base_url).scheme not in {"http", "https"}:
        raise at.error("base_url", "must be an http(s) URL")
    ttl = value(at, spec, "ttl", int, 0)
    min_ttl, max_age = value(at, spec, "min_ttl", int, 0), value(at, spec, "max_age", int, 0)
    budget = value(at, spec, "budget_per_hour", int, 0)
    in_flight = value(at, spec, "max_in_flight", int, 0)
    timeouts = table(at, spec, "timeouts", required=False)
    only(at.key("timeouts"), timeouts, {"connect", "read"})
    connect = value(at.key("timeouts"), timeouts, "connect", (int, float), 0)
    read = value(at.key("timeouts"), timeouts, "read", (int, float), 0)
    if connect < 0 or read < 0:
        raise at.key("timeouts").error("connect" if connect < 0 else "read",
                                       "must not be negative")
    for key, number in (("ttl", ttl), ("min_ttl", min_ttl), ("max_age", max_age),
                        ("budget_per_hour", budget), ("max_in_flight", in_flight)):
        if number < 0:
            raise at.error(key, "must not be negative")
    auth = _auth(at.key("auth"), table(at, spec, "auth", required=False))
    headers = value(at, spec, "headers", dict, {})
    if not all(isinstance(v, str) for v in headers.values()):
        raise at.error("headers", "values must be strings")
    paging = parse_paging(at.key("paging"), table(at, spec, "paging", required=False))
    params = {p: _setting(at.key("params", p), p, s)
              for p, s in table(at, spec, "params", required=False).items()}
    kinds = tuple(parse_kind(at.key("resources", kind), name, kind, s, paging)
                  for kind, s in table(at, spec, "resources").items())
    kind_names = {k.name.partition(":")[2] for k in kinds}
    prefetch = []
    for template in value(at, spec, "prefetch", list, []):
        kind, _, key = template.partition(":") if isinstance(template, str) else ("", "", "")
        fields = placeholders(key)
        if kind not in kind_names or len(fields) != 1 or f"{{{fields[0]}}}" != key \
                or fields[0] not in params:
            raise at.error("prefetch", f"{template!r} is not <resource>:{{<param>}} "
                                       "with a resource and a parameter of this upstream")
        prefetch.append((kind, fields[0]))

    section = _section(name, title, base_url, (ttl, min_ttl, max_age, budget, in_flight), auth,
                       paging, params)
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
            (settings.min_ttl >= 0 and settings.max_age >= 0,
             f"{name}.min_ttl and {name}.max_age must not be negative (0: refresh's)"),
            (settings.budget_per_hour >= 0,
             f"{name}.budget_per_hour must not be negative (0: no budget)"),
            (0 <= settings.max_in_flight <= 1024,
             f"{name}.max_in_flight must be 0-1024 (0: upstream.max_in_flight)"),
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

    return Upstream(name, section, kinds, endpoint, resources, checks, freshness)


def _values(settings: Any, param: str) -> tuple[str, ...]:
    """A parameter setting's values: those of an ``ids`` list, or the one ``id``."""
    return _values_of(getattr(settings, param))


def _auth(at: At, spec: Mapping[str, Any]) -> tuple[str, str] | None:
    if not spec:
        return None
    only(at, spec, {"header", "scheme"})
    header = value(at, spec, "header", str)
    scheme = value(at, spec, "scheme", str, "")
    return header, f"{scheme} " if scheme else ""


@dataclass(frozen=True)
class _Setting:
    name: str
    type: str
    default: Any
    help: str
    must: str  # what a value must be, for the error


def _setting(at: At, name: str, spec: Any) -> _Setting:
    if not NAME_RE.fullmatch(name) or name in STANDARD_SETTINGS:
        raise at.error("", "a parameter's name is lower-case letters, digits and '_', "
                           f"and not one of {', '.join(sorted(STANDARD_SETTINGS))}")
    entry(at, spec, {"type", "default", "help", "items"})
    kind = value(at, spec, "type", str)
    if kind not in SETTING_TYPES:
        raise at.error("type", "must be \"id\" or \"ids\"")
    items = value(at, spec, "items", str, "ids")
    if kind == "ids":
        default = tuple(value(at, spec, "default", list, []))
        must = f"list {items} (letters, digits, '_' and '-')"
    else:
        default = value(at, spec, "default", str)
        must = "be an id (letters, digits, '_' and '-')"
    if not all(isinstance(v, str) and KEY_RE.fullmatch(v) for v in _values_of(default)):
        raise at.error("default", f"must {must}")
    return _Setting(name, kind, default, value(at, spec, "help", str, name), must)


def _values_of(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _section(name: str, title: str, base_url: str, numbers: tuple[int, int, int, int, int],
             auth: tuple[str, str] | None, paging: Paging | None,
             params: Mapping[str, _Setting]) -> type:
    """The upstream's settings section: ``[<name>]``, ``<NAME>_*``, ``<prefix>/<name>/*``;
    ``numbers`` are the catalogue's ttl, min_ttl, max_age, budget_per_hour and
    max_in_flight."""
    env = name.upper()
    ttl, min_ttl, max_age, budget, in_flight = numbers
    fields: list[tuple[str, Any, Any]] = [
        ("base_url", str, option(base_url, f"{env}_BASE_URL", f"{title} API base URL")),
        ("token", str, option("", f"{env}_TOKEN", f"{title} API token" + (
            f" (sent as '{auth[0]}: {auth[1]}<token>')" if auth else ""), live=True)),
        ("ttl", int, option(ttl, f"{env}_TTL",
                            f"Seconds {title} responses stay fresh; 0: cache.ttl", live=True)),
        ("min_ttl", int, option(
            min_ttl, f"{env}_MIN_TTL", f"Shortest TTL a budget plan may give a {title} "
            "resource; 0: refresh.min_ttl", live=True)),
        ("max_age", int, option(
            max_age, f"{env}_MAX_AGE", f"Longest TTL a budget plan may give a {title} "
            "resource; 0: refresh.max_age", live=True)),
        ("budget_per_hour", int, option(
            budget, f"{env}_BUDGET_PER_HOUR",
            f"Requests an hour to {title} stay within, misses spending at most "
            "upstream.miss_share of it; 0: no budget", live=True)),
        ("max_in_flight", int, option(
            in_flight, f"{env}_MAX_IN_FLIGHT",
            f"Requests to {title} a worker process has in flight at once; "
            "0: upstream.max_in_flight",
            live=True)),
    ]
    if paging is not None:
        fields.append(("page_size", int, option(
            paging.page_size, f"{env}_PAGE_SIZE",
            f"Items per upstream page (1-{paging.max_page_size})", live=True)))
    for p in params.values():
        fields.append((p.name, SETTING_TYPES[p.type], option(
            p.default, f"{env}_{p.name.upper()}", p.help, live=True)))
    return dataclasses.make_dataclass(f"{name.title()}Settings", fields, frozen=True)
