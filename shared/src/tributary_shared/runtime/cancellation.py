"""The cancellation signal over Redis pub/sub.

Pub/sub is at-most-once, which is enough here: it only makes running steps
stop at once. A replica that misses a message still stops the step at its
next checkpoint, where the agent loop reads the workflow's status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from tributary_shared.core.keys import CANCELLATIONS_CHANNEL

__all__ = ["RedisCancellationSignal"]

log = logging.getLogger(__name__)


class RedisCancellationSignal:
    def __init__(self, redis: Redis, *, listener_redis: Redis) -> None:
        self._redis = redis
        # Subscriptions wait indefinitely: their client has no socket timeout.
        self._listener_redis = listener_redis

    async def announce(self, workflow_id: str) -> None:
        await self._redis.publish(CANCELLATIONS_CHANNEL, workflow_id)

    async def listen(self) -> AsyncIterator[str]:
        while True:
            try:
                async with self._listener_redis.pubsub() as pubsub:
                    await pubsub.subscribe(CANCELLATIONS_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = message["data"]
                        yield data.decode() if isinstance(data, bytes) else str(data)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("cancellation listener lost Redis; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
