"""Views: what a client asks for, as a pure function of cached resources."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.store.entry import Entry
from shared.upstreams import c42


@dataclass(frozen=True)
class View:
    name: str
    resources: Callable[[str], list[str]]  # the view's id -> the resources it is made of
    build: Callable[[str, Sequence[Entry]], dict[str, Any]]  # id, their entries -> body


def _event_with_subscriptions(key: str, parts: Sequence[Entry]) -> dict[str, Any]:
    event, subscriptions = parts
    return {
        "id": key,
        "title": event.data["title"],
        "names": c42.subscriber_names(subscriptions.data),
    }


EVENTS_WITH_SUBSCRIPTIONS = View(
    name="events-with-subscriptions",
    resources=c42.event_resources,
    build=_event_with_subscriptions,
)
