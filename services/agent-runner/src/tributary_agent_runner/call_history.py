"""Tool-call history of a step in Redis: shared by every agent-runner replica.

A step retried on another replica after a crash continues the same history,
so a loop cannot hide behind a restart. Lists are capped and expire.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from tributary_shared.state.keys import WorkflowKeys

_MAX_HISTORY = 64


class CallHistory(Protocol):
    async def record(self, fingerprint: str) -> list[str]:
        """Append a fingerprint; return the whole history, oldest first."""
        ...

    async def first_warning(self) -> bool:
        """True once per step: the model has not been warned about a loop yet."""
        ...


class RedisCallHistory:
    def __init__(self, redis: Redis, *, workflow_id: str, step_id: str, ttl_s: int) -> None:
        self._redis = redis
        self._key = WorkflowKeys(workflow_id).tool_calls(step_id)
        self._ttl_s = ttl_s

    async def record(self, fingerprint: str) -> list[str]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._key, fingerprint)
            pipe.ltrim(self._key, -_MAX_HISTORY, -1)
            pipe.expire(self._key, self._ttl_s)
            pipe.lrange(self._key, 0, -1)
            *_, entries = await pipe.execute()
        return [e.decode() if isinstance(e, bytes) else str(e) for e in entries]

    async def first_warning(self) -> bool:
        return bool(await self._redis.set(f"{self._key}:warned", "1", nx=True, ex=self._ttl_s))


class MemoryCallHistory:
    """In-process history, for unit tests of the agent loop."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self._warned = False

    async def record(self, fingerprint: str) -> list[str]:
        self.entries.append(fingerprint)
        return list(self.entries)

    async def first_warning(self) -> bool:
        first, self._warned = not self._warned, True
        return first
