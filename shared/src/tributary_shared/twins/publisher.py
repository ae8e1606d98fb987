"""An event publisher in memory: each event on its home topic, in order."""

from __future__ import annotations

from collections.abc import Iterable

from tributary_shared.core.events import EventEnvelope, home_topic

__all__ = ["MemoryPublisher"]


class MemoryPublisher:
    """``topics`` holds what each topic carries, in publishing order."""

    def __init__(self) -> None:
        self.topics: dict[str, list[EventEnvelope]] = {}

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        for event in events:
            self.topics.setdefault(home_topic(event), []).append(event)
