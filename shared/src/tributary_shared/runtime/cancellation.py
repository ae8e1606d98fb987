"""The cancellation signal over Redis pub/sub.

Pub/sub is at-most-once, which is enough here: it only makes running steps
stop at once. A replica that misses a message still stops the step at its
next checkpoint, where the agent loop reads the workflow's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from tributary_shared.core.keys import CANCELLATIONS_CHANNEL
from tributary_shared.runtime.retry import run_forever

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
        heard: asyncio.Queue[str] = asyncio.Queue()

        async def listen_once() -> None:
            async with self._listener_redis.pubsub() as pubsub:
                await pubsub.subscribe(CANCELLATIONS_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        heard.put_nowait(data.decode() if isinstance(data, bytes) else str(data))

        # A lost connection is resubscribed after a short backoff; announcements
        # made meanwhile are missed, and the agent loop's checkpoint covers them.
        subscription = asyncio.create_task(
            run_forever(
                listen_once,
                what="cancellation listener",
                first_wait_s=0.5,
                max_wait_s=5.0,
                logger=log,
            )
        )
        try:
            while True:
                yield await heard.get()
        finally:
            subscription.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await subscription
