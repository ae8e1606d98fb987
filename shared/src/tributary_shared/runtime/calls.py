"""Redis adapters of a step's tool-call history and of the effect ledger.

Both are shared by every replica. The history is kept per attempt of a step
(a rerun after a crash repeats the crashed attempt's calls, which is no loop);
the effect ledger per step, so a side-effecting call an earlier attempt made
gets its recorded result instead of acting twice. Lists are capped; everything
expires with the workflow.
"""

from __future__ import annotations

from redis.asyncio import Redis

from tributary_shared.core.keys import WorkflowKeys
from tributary_shared.core.ports import EffectIntent

__all__ = ["RedisCallHistory", "RedisEffectLedger"]

_MAX_HISTORY = 64


class RedisCallHistory:
    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def record(
        self, *, workflow_id: str, step_id: str, attempt: int, fingerprint: str
    ) -> list[str]:
        key = WorkflowKeys(workflow_id).tool_calls(step_id, attempt)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, fingerprint)
            pipe.ltrim(key, -_MAX_HISTORY, -1)
            pipe.expire(key, self._ttl_s)
            pipe.lrange(key, 0, -1)
            *_, entries = await pipe.execute()
        return [_text(e) for e in entries]

    async def first_warning(self, *, workflow_id: str, step_id: str, attempt: int) -> bool:
        key = WorkflowKeys(workflow_id).loop_warned(step_id, attempt)
        return bool(await self._redis.set(key, "1", nx=True, ex=self._ttl_s))


class RedisEffectLedger:
    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def intend(self, *, workflow_id: str, step_id: str, fingerprint: str) -> EffectIntent:
        key = WorkflowKeys(workflow_id).tool_effects(step_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, fingerprint)
            pipe.hsetnx(key, _intent_field(fingerprint), "1")
            pipe.expire(key, self._ttl_s)
            recorded, first, _ = await pipe.execute()
        return EffectIntent(
            recorded=None if recorded is None else _text(recorded),
            repeated=recorded is None and not first,
        )

    async def record(
        self, *, workflow_id: str, step_id: str, fingerprint: str, output: str
    ) -> None:
        key = WorkflowKeys(workflow_id).tool_effects(step_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, fingerprint, output)
            pipe.expire(key, self._ttl_s)
            await pipe.execute()


def _intent_field(fingerprint: str) -> str:
    """Set before a call is made; a result recorded under ``fingerprint`` completes it."""
    return f"{fingerprint}:intent"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
