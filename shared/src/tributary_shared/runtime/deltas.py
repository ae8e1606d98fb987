"""Live ``llm.delta`` events over Redis pub/sub (``WorkflowKeys.deltas``).

Pub/sub, not a stream: a delta is worth something only while someone watches,
so Redis keeps none of them (no memory grows with a long answer or an absent
reader), and every gateway replica subscribed to a workflow's channel gets
each delta at once. Whether anyone listens is the channel's subscriber count
(``PUBSUB NUMSUB``), so a worker streams a call only when it is watched.

A gateway replica holds one subscriber connection for all its streams: the
first stream of a workflow subscribes to its channel, the last one to leave
unsubscribes. A stream that reads slower than its deltas come loses the ones
its queue has no room for; the durable events of the stream are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from tributary_shared.core.deltas import LLMDelta
from tributary_shared.core.keys import WorkflowKeys

__all__ = ["RedisDeltaChannel"]

log = logging.getLogger(__name__)

_LISTEN_QUEUE = 1024
"""Deltas one listener may have waiting; more are dropped (a slow reader)."""
_READ_TIMEOUT_S = 1.0
_RETRY_AFTER_S = 1.0


class RedisDeltaChannel:
    def __init__(self, redis: Redis, *, listener_redis: Redis | None = None) -> None:
        """``listener_redis`` (a client without socket timeout) carries the one
        subscriber connection; only ``listen`` needs it."""
        self._redis = redis
        self._listener_redis = listener_redis or redis
        self._listeners: dict[str, set[asyncio.Queue[LLMDelta]]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        # One (un)subscription at a time: redis-py's PubSub connects on the first,
        # and two at once would each take a connection of their own.
        self._subscribing = asyncio.Lock()
        self._subscribed: set[str] = set()

    async def listened(self, workflow_id: str) -> bool:
        counts = await self._redis.pubsub_numsub(WorkflowKeys(workflow_id).deltas)
        return any(int(count) > 0 for _, count in counts)

    async def publish(self, deltas: Sequence[LLMDelta]) -> None:
        if not deltas:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for delta in deltas:
                pipe.publish(WorkflowKeys(delta.workflow_id).deltas, delta.model_dump_json())
            await pipe.execute()

    async def listen(self, workflow_id: str) -> AsyncIterator[LLMDelta]:
        channel = WorkflowKeys(workflow_id).deltas
        queue: asyncio.Queue[LLMDelta] = asyncio.Queue(maxsize=_LISTEN_QUEUE)
        listeners = self._listeners.setdefault(channel, set())
        listeners.add(queue)
        try:
            async with self._subscribing:
                if channel not in self._subscribed:
                    await self._subscriber().subscribe(channel)
                    self._subscribed.add(channel)
                self._start_reader()  # once subscribed: the reader needs the connection
            while True:
                yield await queue.get()
        finally:
            listeners.discard(queue)
            if not listeners and self._listeners.get(channel) is listeners:
                del self._listeners[channel]
                with contextlib.suppress(Exception):
                    async with self._subscribing:
                        # Unless a new listener came meanwhile.
                        if channel not in self._listeners and channel in self._subscribed:
                            self._subscribed.discard(channel)
                            await self._subscriber().unsubscribe(channel)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    def _subscriber(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = self._listener_redis.pubsub(ignore_subscribe_messages=True)
        return self._pubsub

    def _start_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="delta-subscriber")

    async def _read(self) -> None:
        """Hands each message to the listeners of its channel; a lost connection is
        reconnected (redis-py subscribes again to every channel)."""
        pubsub = self._subscriber()
        while True:
            try:
                message = await pubsub.get_message(timeout=_READ_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("the delta subscriber lost Redis; it reconnects", exc_info=True)
                await asyncio.sleep(_RETRY_AFTER_S)
                continue
            if message is None or message.get("type") != "message":
                continue
            self._hand_out(message)

    def _hand_out(self, message: dict[str, object]) -> None:
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        listeners = self._listeners.get(name)
        if not listeners:
            return
        try:
            delta = LLMDelta.model_validate_json(message["data"])  # type: ignore[arg-type]
        except ValidationError:
            log.warning("an unreadable delta on %s was skipped", name)
            return
        for queue in listeners:
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader loses deltas
                queue.put_nowait(delta)
