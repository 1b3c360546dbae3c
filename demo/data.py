"""Sample events of the demo upstream."""

from __future__ import annotations

from dataclasses import dataclass, field

FIRST_NAMES = [
    "Zoë", "Søren", "José", "Łukasz", "Chloé", "Jürgen", "Anaïs", "Björn", "Ólafur",
    "Žofie", "Åsa", "Ingrid", "Mateo", "Sofía", "Yuki", "Priya", "Liam", "Emma", "Noah",
    "Olivia", "Ahmed", "Mette", "Dvořák", "Ilse", "Ramón",
]
LAST_NAMES = ["Jansen", "de Vries", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos"]


@dataclass
class Subscriber:
    """A subscriber as Calendar42 lists one."""

    first_name: str
    last_name: str
    user_id: str


@dataclass
class Event:
    """An event, its subscribers and validators' inputs."""

    id: str
    title: str
    subscribers: list[Subscriber] = field(default_factory=list)
    weak_etag: bool = False
    version: int = 1  # bumped on every change; part of validators
    modified: float = 1_700_000_000.0  # Last-Modified, epoch seconds


def people(count: int, offset: int = 0) -> list[Subscriber]:
    """``count`` made-up subscribers, from the ``offset``-th name on."""
    return [
        Subscriber(
            FIRST_NAMES[(offset + i) % len(FIRST_NAMES)],
            LAST_NAMES[(offset + i) % len(LAST_NAMES)],
            f"user-{offset + i:04d}",
        )
        for i in range(count)
    ]


def sample_events() -> dict[str, Event]:
    """The demo's events: a few small ones and one with many pages of subscribers."""
    events = [
        Event("launch-party", "Product launch party", people(23)),
        Event("team-standup", "Team stand-up", people(3, offset=5)),
        Event("quiet-evening", "A quiet evening", []),
        Event("board-meeting", "Board meeting", people(12, offset=11), weak_etag=True),
        Event("conference_2026", "Conference 2026", people(250, offset=2)),
    ]
    return {e.id: e for e in events}
