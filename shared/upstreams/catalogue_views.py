"""The catalogue's ``[views.<name>]``: a route, typed parameters, the parts (resources)
it is made of, and a JMESPath body over them (``view``)."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jmespath

from shared.upstreams.kinds import KEY_RE, SEPARATOR, Param, ResourceKind, Upstream, View
from shared.upstreams.tables import At, entry, expr, placeholders, table, value

VIEW_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")
PARAM_TYPES = {"id", "count", "choice"}


def parse_view(at: At, name: str, spec: Any, upstreams: Mapping[str, Upstream],
          kinds: Mapping[str, ResourceKind]) -> View:
    """``[views.<name>]``: a view, its parameters checked against its route and its
    parts against the upstreams' resources."""
    if not VIEW_NAME_RE.fullmatch(name):
        raise at.error("", "a view's name is lower-case letters, digits and '-'")
    entry(at, spec, {"route", "summary", "params", "parts", "body", "not_found", "schema"})
    route = value(at, spec, "route", str)
    params = tuple(parse_param(at.key("params", p), p, s)
                   for p, s in table(at, spec, "params", required=False).items())
    _check_route(at, route, [p.name for p in params])
    names = {p.name for p in params}
    parts = table(at, spec, "parts")
    templates = []
    for part, template in parts.items():
        where = at.key("parts")
        if not isinstance(template, str) or not part.isidentifier() or part == "params":
            raise where.error(part, "must be \"<upstream>:<resource>:{<param>}\"")
        kind_name, _, key = template.rpartition(":")
        fields = placeholders(key)
        if kind_name not in kinds:
            raise where.error(part, f"{template!r}: no resource {kind_name!r} in the catalogue")
        wanted = len(kinds[kind_name].key_names)
        if len(fields) != wanted or SEPARATOR.join(f"{{{f}}}" for f in fields) != key:
            raise where.error(part, f"{template!r}: the key of {kind_name} is "
                                    + SEPARATOR.join(["{<param>}"] * wanted))
        values = []
        for field in fields:
            scope, _, setting = field.partition(".")
            if setting:
                section_fields = {f.name for f in dataclasses.fields(upstreams[scope].section)} \
                    if scope in upstreams else set()
                if setting not in section_fields:
                    raise where.error(part, f"{{{field}}} names no setting of an upstream")
            elif field not in names:
                raise where.error(part, f"{{{field}}} is not a parameter of the view")
            values.append((scope, setting))
        templates.append((kind_name, values))
    shapes = {part: kinds[kind].shape() for part, (kind, _) in zip(parts, templates,
                                                                    strict=True)}
    body = _body(at, spec, {p.name: p for p in params}, shapes)
    part_names = list(parts)

    def resources(values: Mapping[str, Any], settings: Any) -> list[str]:
        return [f"{kind}:" + SEPARATOR.join(
                    str(getattr(settings.section(scope), setting) if setting else values[scope])
                    for scope, setting in key)
                for kind, key in templates]

    def build(values: Mapping[str, Any], data: Sequence[Any]) -> Any:
        document = {"params": dict(values), **dict(zip(part_names, data, strict=True))}
        return body(values)(document)

    schema = value(at, spec, "schema", dict, {})
    return View(name, route, params, resources, build,
                value(at, spec, "summary", str, name), schema,
                value(at, spec, "not_found", str, "not found upstream"))


PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def _check_route(at: At, route: str, params: Sequence[str]) -> None:
    """A route starts with '/', is letters, digits, '-', '_', '.' and '/', and holds each
    declared parameter once; the error names what is wrong."""
    found = placeholders(route)
    if not route.startswith("/") or route.startswith("//") \
            or re.search(r"[^A-Za-z0-9/{}_.-]", route):
        raise at.error("route", "must start with '/' and use letters, digits, '-', '_', '.' "
                                "and {parameters}")
    for name in found:
        if name not in params:
            raise at.error("route", f"{{{name}}} is not declared: add params.{name} = "
                                    "{ type = \"id\" } (or \"count\", \"choice\")")
    for name in params:
        if found.count(name) != 1:
            raise at.error("route", f"must hold the parameter {name} once, as {{{name}}}")


def _body(at: At, spec: Mapping[str, Any], params: Mapping[str, Param],
          shapes: Mapping[str, frozenset[str] | None]
          ) -> Callable[[Mapping[str, Any]], Callable[[Any], Any]]:
    """The view's body: parameter values -> its JMESPath search. ``${n}`` in the text is
    a count or choice parameter's value, put in before compiling (JMESPath has no
    variables): ``repos.derived.${field}[:${n}]``. Only those types may appear, and their
    values are validated first, so nothing else can be written into the expression."""
    text = value(at, spec, "body", str)
    named = PLACEHOLDER.findall(text)
    for name in named:
        if name not in params or params[name].type not in {"count", "choice"}:
            raise at.error("body", f"${{{name}}} is not a count or choice parameter")
    example = {p.name: p.choices[0] if p.choices else 1 for p in params.values()}
    filled = _fill(text, example)
    expr(at, {"body": filled}, "body")  # refused here, not per request
    for name, field in root_fields(jmespath.compile(filled).parsed):
        if name == "params":
            if field is not None and field not in params:
                raise at.error("body", f"params.{field} is not a parameter of the view "
                                       f"(it has {', '.join(params) or 'none'})")
        elif name not in shapes:
            raise at.error("body", f"{name!r} is not a part of the view or params "
                                   f"(parts: {', '.join(shapes)})")
        elif field is not None and (fields := shapes[name]) is not None and field not in fields:
            raise at.error("body", f"{name}.{field}: a paged part has only "
                                   f"{', '.join(sorted(fields))}")
    if not named:
        search = expr(at, spec, "body")
        return lambda values: search

    @functools.lru_cache(maxsize=1024)
    def compiled(filled: str) -> Callable[[Any], Any]:
        return expr(at, {"body": filled}, "body")

    return lambda values: compiled(_fill(text, values))


def root_fields(node: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    """The fields a parsed JMESPath expression reads of the document it is given, each
    with the field it then reads of that one, if it does: ``{t: event.title}`` reads
    ("event", "title"). What is read of projected items is not of the document."""
    kind, children = node["type"], node.get("children") or []
    if kind == "field":
        yield node["value"], None
    elif kind == "subexpression":
        first, rest = children[0], children[1:]
        if first["type"] == "current" and rest:
            yield from root_fields({"type": "subexpression", "children": rest} if len(rest) > 1
                                   else rest[0])
        elif first["type"] == "field":
            second = rest[0] if rest and rest[0]["type"] == "field" else None
            yield first["value"], second["value"] if second else None
        else:
            yield from root_fields(first)
    elif kind in {"index_expression", "projection", "filter_projection", "value_projection",
                  "pipe"}:
        yield from root_fields(children[0])  # the rest reads items or the left's result
    elif kind in {"flatten", "not_expression", "key_val_pair", "or_expression",
                  "and_expression", "comparator", "multi_select_list", "multi_select_dict",
                  "function_expression"}:
        for child in children:
            if isinstance(child, dict):
                yield from root_fields(child)


def _fill(text: str, values: Mapping[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def parse_param(at: At, name: str, spec: Any, bounded: bool = False) -> Param:
    """A typed parameter: of a view's route, or (``bounded``: a count may have a ``max``)
    of a read-through's query."""
    if not name.isidentifier():
        raise at.error("", "a parameter's name is a Python-style identifier")
    entry(at, spec, {"type", "description", "example", "choices"} | ({"max"} if bounded else set()))
    kind = value(at, spec, "type", str)
    if kind not in PARAM_TYPES:
        raise at.error("type", "must be \"id\", \"count\" or \"choice\"")
    choices = tuple(value(at, spec, "choices", list, []))
    if (kind == "choice") != bool(choices) or not all(
            isinstance(c, str) and KEY_RE.fullmatch(c) for c in choices):
        raise at.error("choices", "a \"choice\" parameter lists its choices (ids), "
                                  "and only it has choices")
    maximum = value(at, spec, "max", int, 0)
    if maximum < 0 or (maximum and kind != "count"):
        raise at.error("max", "only a \"count\" has a max, a positive integer")
    return Param(name, kind, value(at, spec, "description", str, ""),
                 str(value(at, spec, "example", (str, int), "")), choices, maximum)
