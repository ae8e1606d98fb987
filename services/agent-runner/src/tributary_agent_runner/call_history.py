"""Tool-call history and effect ledger of a step in Redis, shared by every replica.

A step retried on another replica after a crash continues the same history,
so a loop cannot hide behind a restart. The effect ledger keeps the result of
every call to a tool with side effects: when the step runs again, the same
call (same tool, same canonical arguments) gets the recorded result instead
of acting twice. Lists are capped; everything expires with the workflow.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from tributary_shared.core.keys import WorkflowKeys

_MAX_HISTORY = 64


class CallHistory(Protocol):
    async def record(self, fingerprint: str) -> list[str]:
        """Append a fingerprint; return the whole history, oldest first."""
        ...

    async def first_warning(self) -> bool:
        """True once per step: the model has not been warned about a loop yet."""
        ...

    async def recall_effect(self, fingerprint: str) -> str | None:
        """The recorded result of a side-effecting call made before, if any."""
        ...

    async def record_effect(self, fingerprint: str, output: str) -> None: ...


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

    async def recall_effect(self, fingerprint: str) -> str | None:
        value = await self._redis.hget(f"{self._key}:effects", fingerprint)
        return value.decode() if isinstance(value, bytes) else value

    async def record_effect(self, fingerprint: str, output: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(f"{self._key}:effects", fingerprint, output)
            pipe.expire(f"{self._key}:effects", self._ttl_s)
            await pipe.execute()


class MemoryCallHistory:
    """In-process history, for unit tests of the agent loop."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self.effects: dict[str, str] = {}
        self._warned = False

    async def record(self, fingerprint: str) -> list[str]:
        self.entries.append(fingerprint)
        return list(self.entries)

    async def first_warning(self) -> bool:
        first, self._warned = not self._warned, True
        return first

    async def recall_effect(self, fingerprint: str) -> str | None:
        return self.effects.get(fingerprint)

    async def record_effect(self, fingerprint: str, output: str) -> None:
        self.effects[fingerprint] = output
