"""The Redis adapter of the API key store: one JSON record per key, and an index to list them.

Every record and the index share the hash tag ``{apikeys}`` (``core.keys``),
so on a Redis Cluster they sit in one slot and a revocation is one atomic
transaction. No key is cached: the gateway reads the record on each request,
which is what makes a revocation hold on every replica at once.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from tributary_shared.core.access import ApiKeyRecord
from tributary_shared.core.keys import API_KEY_IDS_KEY, api_key_key
from tributary_shared.core.ports import KeyIdTaken

__all__ = ["RedisApiKeyStore"]


class RedisApiKeyStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def add(self, record: ApiKeyRecord) -> None:
        # One transaction, so no key exists unlisted; NX on both, so a taken id
        # changes neither the record nor its place in the index.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(api_key_key(record.key_id), record.model_dump_json(), nx=True)
            pipe.zadd(API_KEY_IDS_KEY, {record.key_id: record.created_at.timestamp()}, nx=True)
            stored, _ = await pipe.execute()
        if not stored:
            raise KeyIdTaken(record.key_id)

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        raw = await self._redis.get(api_key_key(key_id))
        return ApiKeyRecord.model_validate_json(raw) if raw is not None else None

    async def list_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        listed: list[Any] = await self._redis.zrange(API_KEY_IDS_KEY, 0, -1)
        ids = [_text(i) for i in listed]
        if not ids:
            return []
        raws: list[Any] = await self._redis.mget([api_key_key(i) for i in ids])
        records = [ApiKeyRecord.model_validate_json(raw) for raw in raws if raw is not None]
        gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:  # revoked while its index entry was being removed
            await self._redis.zrem(API_KEY_IDS_KEY, *gone)
        return [r for r in records if tenant_id is None or r.tenant_id == tenant_id]

    async def revoke(self, key_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(api_key_key(key_id))
            pipe.zrem(API_KEY_IDS_KEY, key_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
