"""The Calendar42 upstream: its resource kinds and the trimming of its JSON bodies."""

from __future__ import annotations

from typing import Any

from shared.errors import NotFound, UpstreamError
from shared.upstreams.kinds import Pagination, ResourceKind

UPSTREAM = "c42"


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
    name="c42:event", upstream=UPSTREAM, path="/events/{key}/", trim=trim_event
)
SUBSCRIPTIONS = ResourceKind(
    name="c42:subscriptions",
    upstream=UPSTREAM,
    # C42 takes an unquoted bracket list here.
    path="/event-subscriptions/?event_ids=[{key}]",
    trim=trim_subscriptions,
    pagination=Pagination("limit", "offset", subscription_count),
)
KINDS = (EVENT, SUBSCRIPTIONS)


def event_resources(event_id: str) -> list[str]:
    """The resources an event's views are made of."""
    return [EVENT.resource(event_id), SUBSCRIPTIONS.resource(event_id)]


def subscriber_names(data: Any) -> list[str]:
    """All first names of a subscriptions entry, pages joined in upstream order."""
    return [name for page in data["pages"] for name in page]
