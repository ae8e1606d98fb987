"""One reader per process for every log being followed (the gateway's SSE streams).

A blocking log read holds its Redis connection until an entry arrives, so one
read per stream would tie up one connection per SSE client. ``LogFanout``
reads every followed log with one blocking read at a time (``LogReader``: one
``XREAD BLOCK`` on one dedicated connection, in Redis) and hands each follower
what is new for it, so thousands of streams cost one connection, plus short
catch-up reads from the shared pool.

A follower first catches up on its own, with non-blocking reads, then joins
the reader at the position it reached. The reader reads each log from the
earliest position among its followers and gives each follower only what lies
after its own, so nothing written between catching up and joining is missed.
A follower joining a log that the read in progress does not include wakes
that read, so the new log is read at once.

A follower that does not keep up (its client reads slower than the log
grows) is dropped with ``FollowerOverrun`` rather than buffered without
bound; its client reconnects from its last event id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tributary_shared.core.ports import FollowerOverrun, WorkflowStore
from tributary_shared.core.records import LogEntry, stream_position
from tributary_shared.runtime.retry import retry_forever

__all__ = ["LogFanout", "LogReader"]

_CATCH_UP_PAGE = 500
_WAKE_TRIES = 5


class LogReader(Protocol):
    """Reads many logs in one blocking call (the fan-out's only I/O besides catch-up)."""

    async def read(
        self, positions: Mapping[str, str], *, count: int, block_s: float
    ) -> dict[str, list[LogEntry]]:
        """Per workflow, up to ``count`` entries after its position; waits up to
        ``block_s`` while there are none, or until ``wake``."""
        ...

    async def wake(self) -> bool:
        """End a read that is waiting now; False when none was (yet) waiting."""
        ...


@dataclass(eq=False)
class _Follower:
    workflow_id: str
    after: str
    backlog: asyncio.Queue[list[LogEntry] | None] = field(default_factory=asyncio.Queue)


class LogFanout:
    """A ``LogFollower``: one reader for all followers of this process."""

    def __init__(
        self,
        reader: LogReader,
        store: WorkflowStore,
        *,
        idle_s: float,
        max_backlog: int = 256,
        batch: int = 100,
    ) -> None:
        self._reader = reader
        self._store = store
        self._idle_s = idle_s
        self._max_backlog = max_backlog
        self._batch = batch
        self._followers: dict[str, set[_Follower]] = {}
        self._joined = asyncio.Event()
        self._reading: frozenset[str] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def following(self) -> int:
        """How many followers are live."""
        return sum(len(followers) for followers in self._followers.values())

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="log-fanout")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def follow(self, workflow_id: str, *, after: str) -> AsyncIterator[list[LogEntry]]:
        while entries := await self._store.read_log(workflow_id, after=after, count=_CATCH_UP_PAGE):
            yield entries
            after = entries[-1].stream_id
            if len(entries) < _CATCH_UP_PAGE:
                break
        follower = _Follower(workflow_id, after)
        await self._join(follower)
        try:
            while True:
                try:
                    batch = await asyncio.wait_for(follower.backlog.get(), timeout=self._idle_s)
                except TimeoutError:
                    yield []
                    continue
                if batch is None:
                    raise FollowerOverrun(f"the follower of {workflow_id} fell behind")
                yield batch
        finally:
            self._leave(follower)

    async def _join(self, follower: _Follower) -> None:
        self._followers.setdefault(follower.workflow_id, set()).add(follower)
        self._joined.set()
        # The read may not be waiting yet when woken: try again shortly; failing
        # that, the new log joins when the read's block ends (``idle_s`` at most).
        for _ in range(_WAKE_TRIES):
            reading = self._reading
            if reading is None or follower.workflow_id in reading:
                return  # between reads, or already included: the next read has it
            with contextlib.suppress(Exception):
                if await self._reader.wake():
                    return
            await asyncio.sleep(0.02)

    def _leave(self, follower: _Follower) -> None:
        followers = self._followers.get(follower.workflow_id)
        if followers is None:
            return
        followers.discard(follower)
        if not followers:
            del self._followers[follower.workflow_id]

    async def _run(self) -> None:
        while True:
            if not self._followers:
                self._joined.clear()
                await self._joined.wait()
                continue
            read = await retry_forever(self._read_once, what="reading followed logs")
            for workflow_id, entries in read.items():
                for follower in list(self._followers.get(workflow_id, ())):
                    self._hand_over(follower, entries)

    async def _read_once(self) -> dict[str, list[LogEntry]]:
        positions = {
            workflow_id: min((f.after for f in followers), key=stream_position)
            for workflow_id, followers in self._followers.items()
        }
        self._reading = frozenset(positions)
        try:
            return await self._reader.read(positions, count=self._batch, block_s=self._idle_s)
        finally:
            self._reading = None

    def _hand_over(self, follower: _Follower, entries: list[LogEntry]) -> None:
        after = stream_position(follower.after)
        new = [e for e in entries if stream_position(e.stream_id) > after]
        if not new:
            return
        follower.after = new[-1].stream_id
        if follower.backlog.qsize() >= self._max_backlog:
            self._leave(follower)
            follower.backlog.put_nowait(None)  # read after what it has: then it ends
            return
        follower.backlog.put_nowait(new)
