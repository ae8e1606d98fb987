"""Reading many logs at once in memory, for the same ``LogFanout`` as in Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from tributary_shared.core.records import LogEntry
from tributary_shared.twins.store import MemoryWorkflowStore

__all__ = ["MemoryLogReader"]


class MemoryLogReader:
    def __init__(self, store: MemoryWorkflowStore) -> None:
        self._store = store
        self._woken: asyncio.Event | None = None

    async def read(
        self, positions: Mapping[str, str], *, count: int, block_s: float
    ) -> dict[str, list[LogEntry]]:
        woken = self._woken = asyncio.Event()
        try:
            async with asyncio.timeout(block_s):
                while not woken.is_set():
                    read = await self._ready(positions, count)
                    if read:
                        return read
                    appended = asyncio.ensure_future(self._store.appended())
                    wake = asyncio.ensure_future(woken.wait())
                    try:
                        await asyncio.wait({appended, wake}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        appended.cancel()
                        wake.cancel()
        except TimeoutError:
            pass
        finally:
            self._woken = None
        return {}

    async def _ready(self, positions: Mapping[str, str], count: int) -> dict[str, list[LogEntry]]:
        read: dict[str, list[LogEntry]] = {}
        for workflow_id, after in positions.items():
            entries = await self._store.read_log(workflow_id, after=after, count=count)
            if entries:
                read[workflow_id] = entries
        return read

    async def wake(self) -> bool:
        if self._woken is None:
            return False
        with contextlib.suppress(RuntimeError):
            self._woken.set()
        return True
