"""Redis adapter of the callback store: one schedule shared by every deliverer, and
each workflow's record of tries under its own keys (expiring with it).

The schedule is a sorted set of workflow ids by due time. Taking due ones moves
them a lease ahead in the same script, so two deliverers never take the same
callback at once, and one that dies lets it come due again.
"""

from __future__ import annotations

from redis.asyncio import Redis

from tributary_shared.core.callbacks import CallbackAttempt, CallbackState
from tributary_shared.core.keys import CALLBACKS_DUE_KEY, WorkflowKeys
from tributary_shared.core.ports import CallbackProgress

__all__ = ["RedisCallbackStore"]

# Take the due members and lease them, atomically.
_TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
"""


class RedisCallbackStore:
    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._take_due = redis.register_script(_TAKE_DUE)

    async def schedule(self, workflow_id: str, *, at: float) -> None:
        await self._redis.zadd(CALLBACKS_DUE_KEY, {workflow_id: at}, nx=True)

    async def due(self, *, now: float, lease_s: float, limit: int) -> list[str]:
        taken = await self._take_due(keys=[CALLBACKS_DUE_KEY], args=[now, now + lease_s, limit])
        return [_text(member) for member in taken]

    async def progress(self, workflow_id: str) -> CallbackProgress:
        keys = WorkflowKeys(workflow_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.callback, "state")
            pipe.lrange(keys.callback_attempts, 0, -1)
            state, attempts = await pipe.execute()
        return CallbackProgress(
            state=_state(state),
            attempts=tuple(CallbackAttempt.model_validate_json(a) for a in attempts),
        )

    async def record_attempt(
        self, workflow_id: str, attempt: CallbackAttempt, *, state: CallbackState
    ) -> None:
        keys = WorkflowKeys(workflow_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(keys.callback_attempts, attempt.model_dump_json())
            pipe.hset(keys.callback, "state", state)
            pipe.expire(keys.callback_attempts, self._ttl_s)
            pipe.expire(keys.callback, self._ttl_s)
            await pipe.execute()

    async def retry_at(self, workflow_id: str, at: float) -> None:
        await self._redis.zadd(CALLBACKS_DUE_KEY, {workflow_id: at}, xx=True)

    async def unschedule(self, workflow_id: str) -> None:
        await self._redis.zrem(CALLBACKS_DUE_KEY, workflow_id)


def _state(raw: bytes | str | None) -> CallbackState:
    text = _text(raw) if raw is not None else "pending"
    if text == "delivered":
        return "delivered"
    if text == "failed":
        return "failed"
    return "pending"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
