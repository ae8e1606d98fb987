"""The secret stream tokens are signed with, the same on every gateway replica.

A token issued by one replica must be accepted by another (the stream's client
reconnects wherever the balancer sends it), so a random secret per process will
not do. ``TRIBUTARY_GATEWAY_STREAM_TOKEN_SECRET`` names one; without it the
replicas share one kept in Redis, made by whichever replica needs it first
(``SET NX``). That one is read on every use rather than cached, so that all
replicas agree again at once should it be deleted (which rotates it: tokens
issued before stop working, and clients ask for new ones).

Whoever can read Redis can read that secret, and so forge a stream token; but
they can read every workflow's events there already, and write API keys: the
secret opens nothing Redis does not. Configure one to keep tokens safe from a
copy of Redis's data (a backup).
"""

from __future__ import annotations

import secrets
from typing import Protocol

from redis.asyncio import Redis

from tributary_shared.core.keys import STREAM_TOKEN_SECRET_KEY

__all__ = ["FixedStreamSecret", "RedisStreamSecret", "StreamSecret"]

_SECRET_BYTES = 32


class StreamSecret(Protocol):
    async def secret(self) -> bytes:
        """The secret to sign and check stream tokens with."""
        ...


class FixedStreamSecret:
    """A secret given at start: the configured one (or a test's)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    async def secret(self) -> bytes:
        return self._secret


class RedisStreamSecret:
    """The secret every replica shares through Redis, made once by the first that asks."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def secret(self) -> bytes:
        stored = await self._redis.get(STREAM_TOKEN_SECRET_KEY)
        while stored is None:
            # Two replicas may both get here: NX keeps the first, and both read it back
            # (again, should it be deleted between the two commands).
            await self._redis.set(
                STREAM_TOKEN_SECRET_KEY, secrets.token_hex(_SECRET_BYTES), nx=True
            )
            stored = await self._redis.get(STREAM_TOKEN_SECRET_KEY)
        text = stored.decode() if isinstance(stored, bytes) else str(stored)
        return bytes.fromhex(text)
