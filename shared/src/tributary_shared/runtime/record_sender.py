"""Publishes call records off their callers' path, in the order they were written.

A call record (``llm.called``, ``tool.called`` and its ``call.payload`` parts)
changes no workflow state. Once it is noted in the outbox and appended to its
workflow's log (``WorkflowStore.write_notices``, one Redis round trip) it is
durable: replay, the event streams and ``GET .../calls`` read it from the log,
and the planner's outbox sweep publishes it if nothing else does. So the
caller (an agent, the planner, the synthesizer) goes on at once, and this
process's one sender publishes the records behind it:

- in FIFO order, consecutive records in one batch, so that one workflow's
  records reach Kafka in the order they were written;
- from a bounded queue: when it is full, ``send`` waits for room (memory stays
  bounded, nothing is dropped);
- a batch Kafka did not take is logged and left to the outbox: its notes stay
  until the sweep sends it from the log;
- ``close`` publishes what is queued within a short grace; the outbox sends
  whatever it could not.

The publishes carry no trace context: they belong to no one caller's request
(a batch mixes workflows), and nobody's latency waits for them any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Sequence

from tributary_shared.core.events import EventEnvelope
from tributary_shared.core.ports import EventPublisher
from tributary_shared.runtime.metrics import CALL_RECORDS_QUEUED, CALL_RECORDS_UNPUBLISHED_TOTAL

__all__ = ["CLOSE_GRACE_S", "RecordSender"]

log = logging.getLogger(__name__)

CLOSE_GRACE_S = 3.0
"""Seconds ``close`` gives the queued records to reach Kafka by default."""


class RecordSender:
    """One process's publisher of call records, behind their callers."""

    def __init__(self, publisher: EventPublisher, *, capacity: int = 256, batch: int = 64) -> None:
        """``capacity``: records queued at most (then ``send`` waits); ``batch``: records
        published together at most."""
        self._publisher = publisher
        self._queue: asyncio.Queue[tuple[EventEnvelope, ...]] = asyncio.Queue(maxsize=capacity)
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def send(self, events: Sequence[EventEnvelope]) -> None:
        """Queue one record's events (its parts first) to be published; waits while the
        queue is full. After ``close`` nothing is queued: the outbox sends them."""
        if self._closed:
            log.debug("a call record is left to the outbox: the sender has closed")
            return
        if self._task is None:
            # An empty context: the publishes belong to no caller's trace or log context.
            self._task = asyncio.create_task(
                self._publish_queued(), name="call-record-sender", context=contextvars.Context()
            )
        await self._queue.put(tuple(events))
        CALL_RECORDS_QUEUED.inc()

    async def flush(self) -> None:
        """Returns once every record queued so far was published or given up on."""
        await self._queue.join()

    async def close(self, *, grace_s: float = CLOSE_GRACE_S) -> None:
        """Publish what is queued, for up to ``grace_s``, then stop."""
        self._closed = True
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout=grace_s)
        except TimeoutError:
            log.warning(
                "%d call records were not published before the shutdown; "
                "the outbox sweep sends them",
                self._queue.qsize(),
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        # Frees any caller still waiting for room: what it wrote is noted in the outbox.
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            CALL_RECORDS_QUEUED.dec()

    async def _publish_queued(self) -> None:
        while True:
            records = [await self._queue.get()]
            while len(records) < self._batch and not self._queue.empty():
                records.append(self._queue.get_nowait())
            try:
                await self._publisher.publish([event for record in records for event in record])
            except Exception:
                CALL_RECORDS_UNPUBLISHED_TOTAL.inc(len(records))
                log.warning(
                    "%d call records were not published; the outbox sweep sends them",
                    len(records),
                    exc_info=True,
                )
            finally:
                for _ in records:
                    self._queue.task_done()
                CALL_RECORDS_QUEUED.dec(len(records))
