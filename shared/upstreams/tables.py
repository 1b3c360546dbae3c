"""Reading the catalogue's TOML tables: typed values, known keys, compiled JMESPath and
placeholders, with errors that name the file, the entry and the key (``At``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from string import Formatter
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from shared.config.declare import SettingsError


class CatalogueError(SettingsError):
    """The catalogue is malformed; the message names the file, the entry and the key."""


@dataclass(frozen=True)
class At:
    """Where in the catalogue a value is, for error messages."""

    source: str
    path: tuple[str, ...] = ()

    def key(self, *keys: str) -> At:
        """The place one key further in."""
        return At(self.source, (*self.path, *keys))

    def error(self, key: str, message: str) -> CatalogueError:
        """A CatalogueError naming this place and ``key``."""
        where = ".".join(part for part in (*self.path, key) if part)
        return CatalogueError(f"{self.source}: {where}: {message}")


def table(at: At, spec: Mapping[str, Any], key: str, required: bool = True
           ) -> dict[str, Any]:
    """The table at ``key`` (empty when absent and not ``required``)."""
    value = spec.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise at.error(key, "must be a table")
    return value


def value(at: At, spec: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
         default: Any = ..., what: str = "") -> Any:
    """The value at ``key`` of ``kind``, else its ``default``; CatalogueError when
    it is missing or of another type."""
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


def entry(at: At, spec: Any, allowed: set[str]) -> None:
    """``spec`` is a table with no key outside ``allowed``."""
    if not isinstance(spec, dict):
        raise at.error("", "must be a table")
    only(at, spec, allowed)


def only(at: At, spec: Mapping[str, Any], allowed: set[str]) -> None:
    """CatalogueError if ``spec`` has a key outside ``allowed``."""
    for key in spec:
        if key not in allowed:
            raise at.error(key, f"unknown key (known: {', '.join(sorted(allowed))})")


def expr(at: At, spec: Mapping[str, Any], key: str) -> Callable[[Any], Any]:
    """The compiled JMESPath at ``key``."""
    text = value(at, spec, key, str)
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


def placeholders(template: str) -> list[str]:
    """The {names} in a template, in order."""
    return [f for _, f, _, _ in Formatter().parse(template) if f is not None]
