"""The catalogue's ``[views.<name>]``: a route, typed parameters, the parts (resources)
it is made of, and a JMESPath body over them (``view``)."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.upstreams.kinds import KEY_RE, Param, ResourceKind, Upstream, View
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
    params = tuple(_param(at.key("params", p), p, s)
                   for p, s in table(at, spec, "params", required=False).items())
    names = {p.name for p in params}
    if not route.startswith("/") or route.startswith("//") or set(placeholders(route)) != names \
            or len(placeholders(route)) != len(names) or re.search(r"[^A-Za-z0-9/{}_-]", route):
        raise at.error("route", "must start with '/', use letters, digits, '-', '_' and "
                                "hold each parameter once as {name}")
    parts = table(at, spec, "parts")
    templates = []
    for part, template in parts.items():
        where = at.key("parts")
        if not isinstance(template, str) or not part.isidentifier() or part == "params":
            raise where.error(part, "must be \"<upstream>:<resource>:{<param>}\"")
        kind_name, _, key = template.rpartition(":")
        fields = placeholders(key)
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

    schema = value(at, spec, "schema", dict, {})
    return View(name, route, params, resources, build,
                value(at, spec, "summary", str, name), schema,
                value(at, spec, "not_found", str, "not found upstream"))


PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def _body(at: At, spec: Mapping[str, Any], params: Mapping[str, Param]
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
    if not named:
        search = expr(at, spec, "body")
        return lambda values: search
    example = {p.name: p.choices[0] if p.choices else 1 for p in params.values()}
    expr(at, {"body": _fill(text, example)}, "body")  # refused here, not per request

    @functools.lru_cache(maxsize=1024)
    def compiled(filled: str) -> Callable[[Any], Any]:
        return expr(at, {"body": filled}, "body")

    return lambda values: compiled(_fill(text, values))


def _fill(text: str, values: Mapping[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def _param(at: At, name: str, spec: Any) -> Param:
    if not name.isidentifier():
        raise at.error("", "a parameter's name is a Python-style identifier")
    entry(at, spec, {"type", "description", "example", "choices"})
    kind = value(at, spec, "type", str)
    if kind not in PARAM_TYPES:
        raise at.error("type", "must be \"id\", \"count\" or \"choice\"")
    choices = tuple(value(at, spec, "choices", list, []))
    if (kind == "choice") != bool(choices) or not all(
            isinstance(c, str) and KEY_RE.fullmatch(c) for c in choices):
        raise at.error("choices", "a \"choice\" parameter lists its choices (ids), "
                                  "and only it has choices")
    return Param(name, kind, value(at, spec, "description", str, ""),
                 str(value(at, spec, "example", (str, int), "")), choices)
