"""The cancellation signal in memory: every listener hears announcements made after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

__all__ = ["MemoryCancellationSignal"]


class MemoryCancellationSignal:
    def __init__(self) -> None:
        self._listeners: list[asyncio.Queue[str]] = []
        self.announced: list[str] = []

    async def announce(self, workflow_id: str) -> None:
        self.announced.append(workflow_id)
        for queue in self._listeners:
            queue.put_nowait(workflow_id)

    async def listen(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.remove(queue)
