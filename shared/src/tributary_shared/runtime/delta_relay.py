"""Sends the live text of a process's LLM calls to their workflows' event streams.

The text of a streamed call arrives a few characters at a time; sending each
piece to Redis as it comes would put a round trip on the call's hot path. So
``CallDeltas.add`` only appends the piece and marks the call, and one
background task of the process (``DeltaRelay``) sends what every marked call
gathered since its last send, redacted (``core.deltas.RedactedText``), as one
pipeline, then pauses ``flush_interval_s``. While Redis is slow, pieces gather
into fewer, larger deltas: what waits is bounded by the answers being read
anyway. A send that Redis does not take within ``publish_timeout_s`` is
dropped (``llm_deltas_dropped_total``), never tried again, and nothing here
ever raises into the call.

When a call ends, ``CallDeltas.close`` sends what is left before the call's
outcome is written, so a watcher sees the whole text before the step that
produced it completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tributary_shared.core.deltas import DeltaRole, LLMDelta, RedactedText
from tributary_shared.core.ports import DeltaChannel
from tributary_shared.core.redaction import DEFAULT_REDACTOR, Redactor
from tributary_shared.runtime import metrics

__all__ = ["CallDeltas", "DeltaRelay"]

log = logging.getLogger(__name__)


class DeltaRelay:
    """One per process: decides which calls stream their text, and sends it."""

    def __init__(
        self,
        channel: DeltaChannel,
        *,
        redactor: Redactor = DEFAULT_REDACTOR,
        flush_interval_s: float = 0.05,
        publish_timeout_s: float = 1.0,
    ) -> None:
        self._channel = channel
        self._redactor = redactor
        self._flush_interval_s = flush_interval_s
        self._publish_timeout_s = publish_timeout_s
        self._marked: dict[CallDeltas, None] = {}  # an ordered set
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def listened(self, workflow_id: str) -> bool:
        """Whether someone follows the workflow's tokens now; False when that cannot be
        known in time (a call is not held up to find out)."""
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                return await self._channel.listened(workflow_id)
        except Exception:
            log.debug("could not learn whether the workflow's tokens are followed", exc_info=True)
            return False

    def open(
        self,
        *,
        workflow_id: str,
        role: DeltaRole,
        call: int,
        step_id: str | None = None,
        attempt: int = 1,
        iteration: int | None = None,
    ) -> CallDeltas:
        """The deltas of one call; ``close`` it when the call ends."""
        template = LLMDelta(
            workflow_id=workflow_id,
            step_id=step_id,
            role=role,
            attempt=attempt,
            iteration=iteration,
            call=call,
            seq=0,
            text="",
        )
        return CallDeltas(self, template)

    async def close(self) -> None:
        """Sends what is gathered, then stops the background task."""
        await self._send(list(self._marked))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _mark(self, deltas: CallDeltas) -> None:
        self._marked[deltas] = None
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="delta-relay")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._send(list(self._marked))
            await asyncio.sleep(self._flush_interval_s)

    async def _send(self, calls: list[CallDeltas]) -> None:
        # One send at a time, so a call's deltas reach Redis in their order.
        async with self._sending:
            batch: list[LLMDelta] = []
            for deltas in calls:
                self._marked.pop(deltas, None)
                batch.extend(deltas.take())
            if not batch:
                return
            try:
                async with asyncio.timeout(self._publish_timeout_s):
                    await self._channel.publish(batch)
            except Exception:
                for delta in batch:
                    metrics.LLM_DELTAS_DROPPED_TOTAL.labels(delta.role).inc()
                log.debug("live deltas were dropped: Redis did not take them", exc_info=True)


class CallDeltas:
    """The live text of one LLM call, over all its tries."""

    def __init__(self, relay: DeltaRelay, template: LLMDelta) -> None:
        self._relay = relay
        self._template = template
        self._try_number = 1
        self._seq = 0
        self._current = RedactedText(relay._redactor)
        self._ended: list[tuple[int, RedactedText]] = []  # earlier tries, to finish sending
        self._closed = False

    def add(self, text: str) -> None:
        """A piece of the answer's text (the client's ``on_delta``): kept, sent soon."""
        if self._closed:
            return
        self._current.add(text)
        self._relay._mark(self)

    def try_ended(self) -> None:
        """The try under way ended (the client's ``on_try``): text from now on is the
        next try's, which starts the message over."""
        self._ended.append((self._try_number, self._current))
        self._try_number += 1
        self._current = RedactedText(self._relay._redactor)
        self._relay._mark(self)

    async def close(self) -> None:
        """The call ended: send what is left now (bounded by the relay's timeout)."""
        if self._closed:
            return
        self._closed = True
        self._ended.append((self._try_number, self._current))
        await self._relay._send([self])

    def take(self) -> list[LLMDelta]:
        """The deltas ready to go, numbered; the relay sends them in this order."""
        pieces = [(number, text.release(final=True)) for number, text in self._ended]
        self._ended = []
        if not self._closed:
            pieces.append((self._try_number, self._current.release()))
        deltas: list[LLMDelta] = []
        for number, piece in pieces:
            if not piece:
                continue
            deltas.append(
                self._template.model_copy(
                    update={"try_number": number, "seq": self._seq, "text": piece}
                )
            )
            self._seq += 1
        return deltas
