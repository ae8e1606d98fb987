"""Redis adapters of the gateway's quotas: running workflows per tenant, request rates.

Each operation is one Lua script, so every gateway replica sees one count and one
pace. The running set is pruned by the workflows' own records (their status, as
the store's transitions write it) at each admission: no transition has to
remember to decrement it, and nothing a crash leaves behind counts for long.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from tributary_shared.core.keys import PREFIX, rate_limit_key, running_workflows_key
from tributary_shared.core.quotas import RUNNING_GRACE_S
from tributary_shared.core.status import WorkflowStatus

__all__ = ["RedisRateLimiter", "RedisRunningWorkflows"]

# KEYS[1] the tenant's running set. ARGV: workflow id, limit, grace (ms), the
# workflow key's prefix, the terminal statuses joined by ",", the set's TTL (ms).
# Workflow records are read by a key built here: the store keeps them on this
# same Redis (a cluster would need them in the set's slot).
_ADMIT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local terminal = {}
for status in string.gmatch(ARGV[5], '[^,]+') do terminal[status] = true end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local running = 0
for i = 1, #members, 2 do
  local id, admitted = members[i], tonumber(members[i + 1])
  local status = redis.call('HGET', ARGV[4] .. id .. '}', 'status')
  local counts
  if status then counts = not terminal[status]
  else counts = now_ms - admitted < tonumber(ARGV[3]) end
  if counts then running = running + 1 else redis.call('ZREM', KEYS[1], id) end
end
if running >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"""

# KEYS[1] the caller's TAT (ms). ARGV: interval (ms), burst. Returns the wait (ms), 0 if allowed.
_GCRA = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + tonumber(now[2]) / 1000
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_ms)
local current = math.max(tat, now_ms)
local allowed_at = current - (burst - 1) * interval
if allowed_at > now_ms then return tostring(allowed_at - now_ms) end
local next_tat = current + interval
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now_ms) + 1000)
return '0'
"""

_TERMINAL = ",".join(sorted(s.value for s in WorkflowStatus if s.terminal))
_WORKFLOW_KEY_PREFIX = f"{PREFIX}:wf:{{"


class RedisRunningWorkflows:
    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_ms = ttl_s * 1000
        self._admit = redis.register_script(_ADMIT)

    async def admit(self, tenant_id: str, workflow_id: str, *, limit: int) -> bool:
        admitted = await self._admit(
            keys=[running_workflows_key(tenant_id)],
            args=[
                workflow_id,
                limit,
                int(RUNNING_GRACE_S * 1000),
                _WORKFLOW_KEY_PREFIX,
                _TERMINAL,
                self._ttl_ms,
            ],
        )
        return bool(int(admitted))

    async def release(self, tenant_id: str, workflow_id: str) -> None:
        await self._redis.zrem(running_workflows_key(tenant_id), workflow_id)

    async def running(self, tenant_id: str) -> int:
        # An admission with an impossible limit prunes and counts without adding.
        key = running_workflows_key(tenant_id)
        await self._admit(
            keys=[key],
            args=["", 0, int(RUNNING_GRACE_S * 1000), _WORKFLOW_KEY_PREFIX, _TERMINAL, 1],
        )
        return int(await self._redis.zcard(key))


class RedisRateLimiter:
    def __init__(self, redis: Redis, *, name: str) -> None:
        self._name = name
        self._gcra = redis.register_script(_GCRA)

    async def acquire(self, key: str, *, per_second: float, burst: int) -> float:
        wait_ms = await self._gcra(
            keys=[rate_limit_key(self._name, key)], args=[1000.0 / per_second, burst]
        )
        wait = float(wait_ms.decode() if isinstance(wait_ms, bytes) else wait_ms) / 1000.0
        return 0.0 if wait <= 0 else max(wait, math.ulp(1.0))
