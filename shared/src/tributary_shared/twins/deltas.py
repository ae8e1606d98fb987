"""The live delta channel in memory: listeners hear what is published while they listen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from tributary_shared.core.deltas import LLMDelta

__all__ = ["MemoryDeltaChannel"]


class MemoryDeltaChannel:
    def __init__(self) -> None:
        self._listeners: dict[str, list[asyncio.Queue[LLMDelta]]] = {}
        self.published: list[LLMDelta] = []
        """Every delta published, heard or not, in order."""

    async def listened(self, workflow_id: str) -> bool:
        return bool(self._listeners.get(workflow_id))

    async def publish(self, deltas: Sequence[LLMDelta]) -> None:
        for delta in deltas:
            self.published.append(delta)
            for queue in self._listeners.get(delta.workflow_id, ()):
                queue.put_nowait(delta)

    async def listen(self, workflow_id: str) -> AsyncIterator[LLMDelta]:
        queue: asyncio.Queue[LLMDelta] = asyncio.Queue()
        listeners = self._listeners.setdefault(workflow_id, [])
        listeners.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            listeners.remove(queue)
            if not listeners:
                del self._listeners[workflow_id]
