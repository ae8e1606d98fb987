"""An event publisher in memory: keeps what was published, in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from tributary_shared.core.events import EventEnvelope

__all__ = ["MemoryPublisher"]

Deliver = Callable[[EventEnvelope], Awaitable[None]]


class MemoryPublisher:
    """``published`` holds every event in order; ``deliver``, if set, is called for each."""

    def __init__(self, deliver: Deliver | None = None) -> None:
        self.published: list[EventEnvelope] = []
        self.deliver = deliver

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        for event in events:
            self.published.append(event)
            if self.deliver is not None:
                await self.deliver(event)
