"""Reading many workflow logs in one ``XREAD BLOCK``, for ``runtime.fanout.LogFanout``.

Every key of one ``XREAD`` must live on one Redis Cluster slot; on a cluster the
reader would have to be split per slot (a single server needs nothing more).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from tributary_shared.core.keys import WorkflowKeys
from tributary_shared.core.records import LogEntry

__all__ = ["RedisLogReader"]


class RedisLogReader:
    """``reader``: a client with one connection of its own and no socket timeout
    (it blocks); ``control``: a pooled client, to wake it (``CLIENT UNBLOCK``)."""

    def __init__(self, reader: Redis, control: Redis) -> None:
        self._reader = reader
        self._control = control
        self._reader_id: int | None = None
        self._waiting = False

    async def read(
        self, positions: Mapping[str, str], *, count: int, block_s: float
    ) -> dict[str, list[LogEntry]]:
        workflow_of = {WorkflowKeys(w).log: w for w in positions}
        streams = {key: positions[w] for key, w in workflow_of.items()}
        try:
            if self._reader_id is None:
                self._reader_id = int(await self._reader.client_id())
            self._waiting = True
            response: Any = await self._reader.xread(
                streams,  # type: ignore[arg-type]
                count=count,
                block=max(1, int(block_s * 1000)),
            )
        except Exception:
            self._reader_id = None  # a new connection comes with a new id
            raise
        finally:
            self._waiting = False
        read: dict[str, list[LogEntry]] = {}
        for key, messages in response or []:
            read[workflow_of[_text(key)]] = [_entry(i, fields) for i, fields in messages]
        return read

    async def wake(self) -> bool:
        reader_id = self._reader_id
        if not self._waiting or reader_id is None:
            return False
        unblocked: Any = await self._control.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT UNBLOCK", reader_id
        )
        return bool(unblocked)


def _entry(stream_id: bytes | str, fields: Mapping[Any, Any]) -> LogEntry:
    decoded = {_text(k): _text(v) for k, v in fields.items()}
    return LogEntry(
        stream_id=_text(stream_id),
        type=decoded.get("type", ""),
        event_json=decoded.get("event", "{}"),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
