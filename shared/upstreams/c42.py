"""The Calendar42 upstream: its settings, resource kinds, the trimming of its JSON bodies,
and the view made of them, ``/events-with-subscriptions/<id>/``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.config.declare import option
from shared.errors import NotFound, UpstreamError
from shared.upstreams.kinds import KEY_RE, Endpoint, Pagination, ResourceKind, Upstream, View

NAME = "c42"


def _data_list(body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise UpstreamError("upstream body has no 'data' list")
    return body["data"]


def trim_event(body: Any) -> dict[str, str]:
    """An event body -> ``{"id", "title"}``."""
    data = _data_list(body)
    if not data:
        raise NotFound("event not found")
    event = data[0]
    if not isinstance(event, dict) or not isinstance(event.get("title"), str):
        raise UpstreamError("upstream event has no string 'title'")
    return {"id": str(event.get("id", "")), "title": event["title"]}


def trim_subscriptions(body: Any) -> list[str]:
    """One page of subscriptions -> the subscribers' first names, in upstream order.

    Subscribers without a first name are left out.
    """
    names = []
    for item in _data_list(body):
        subscriber = item.get("subscriber") if isinstance(item, dict) else None
        if not isinstance(subscriber, dict):
            raise UpstreamError("upstream subscription has no 'subscriber' object")
        first_name = subscriber.get("first_name")
        if isinstance(first_name, str) and first_name:
            names.append(first_name)
    return names


def subscription_count(body: Any) -> int:
    meta = body.get("meta_data") if isinstance(body, dict) else None
    count = meta.get("count") if isinstance(meta, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise UpstreamError("upstream subscriptions have no 'meta_data.count'")
    return count


EVENT = ResourceKind(
    name="c42:event", upstream=NAME, path="/events/{key}/", trim=trim_event
)
SUBSCRIPTIONS = ResourceKind(
    name="c42:subscriptions",
    upstream=NAME,
    # C42 takes an unquoted bracket list here.
    path="/event-subscriptions/?event_ids=[{key}]",
    trim=trim_subscriptions,
    pagination=Pagination("limit", "offset", subscription_count),
)


def event_resources(event_id: str) -> list[str]:
    """The resources an event's views are made of."""
    return [EVENT.resource(event_id), SUBSCRIPTIONS.resource(event_id)]


def subscriber_names(data: Any) -> list[str]:
    """All first names of a subscriptions entry, pages joined in upstream order."""
    return [name for page in data["pages"] for name in page]


def event_with_subscriptions(event_id: str, parts: Sequence[Any]) -> dict[str, Any]:
    """``{"id", "title", "names"}`` from an event's and its subscriptions' data."""
    event, subscriptions = parts
    return {"id": event_id, "title": event["title"], "names": subscriber_names(subscriptions)}


EVENTS_WITH_SUBSCRIPTIONS = View(
    name="events-with-subscriptions",
    resources=event_resources,
    build=event_with_subscriptions,
    summary="A Calendar42 event's title and its subscribers' first names",
    id_description="Calendar42 event id",
    example_id="launch-party",
    schema={
        "type": "object",
        "required": ["id", "title", "names"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "names": {"type": "array", "items": {"type": "string"},
                      "description": "Subscribers' first names, in upstream order"},
        },
    },
    not_found="no such event upstream",
)


@dataclass(frozen=True)
class C42Settings:
    """The ``[c42]`` settings section."""

    base_url: str = option(
        "http://127.0.0.1:8042/api/v2", "C42_BASE_URL", "Calendar42 API base URL"
    )
    token: str = option(
        "", "C42_TOKEN", "Calendar42 API token (sent as 'Token <token>')", live=True
    )
    ttl: int = option(
        0, "C42_TTL", "Seconds Calendar42 responses stay fresh; 0: cache.ttl", live=True
    )
    page_size: int = option(
        10, "C42_PAGE_SIZE", "Subscriptions per upstream page (1-100)", live=True
    )
    prefetch: tuple[str, ...] = option(
        (), "C42_PREFETCH", "Event ids kept warm always, comma-separated", live=True
    )


def endpoint(section: C42Settings) -> Endpoint:
    auth = {"Authorization": f"Token {section.token}"} if section.token else {}
    return Endpoint(section.base_url, auth, section.page_size)


def prefetch(section: C42Settings) -> list[str]:
    return [r for event_id in section.prefetch for r in event_resources(event_id)]


def checks(section: C42Settings) -> list[tuple[bool, str]]:
    return [
        (section.ttl >= 0, "c42.ttl must not be negative (0: cache.ttl)"),
        (1 <= section.page_size <= 100, "c42.page_size must be between 1 and 100"),
        (urlsplit(section.base_url).scheme in {"http", "https"},
         "c42.base_url must be an http(s) URL"),
        (all(KEY_RE.fullmatch(k) for k in section.prefetch),
         "c42.prefetch must list event ids (letters, digits, '_' and '-')"),
    ]


UPSTREAM = Upstream(
    name=NAME,
    section=C42Settings,
    kinds=(EVENT, SUBSCRIPTIONS),
    views=(EVENTS_WITH_SUBSCRIPTIONS,),
    endpoint=endpoint,
    prefetch=prefetch,
    checks=checks,
)
