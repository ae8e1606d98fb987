"""The outbox: every event written to a workflow's log reaches Kafka, eventually.

A handler writes a transition to Redis and then publishes its events. A crash
or a Kafka outage between the two would leave an event that the state holds
and nobody sends; a redelivery re-publishes most of them, but not all (a step
started again starts under a new attempt, a budget announcement is made once,
a dead-lettered message is never redelivered). So the store notes every event
in the outbox before writing it (``WorkflowStore.apply``, ``track``), the
publisher clears the notes of what Kafka acknowledged (``SentMarkingPublisher``),
and the planner's sweep publishes, from the workflow's log, what stays noted
longer than a grace period (``send_unsent``). Event ids do not change on the
way, so a copy that did arrive is recognised as a duplicate by its consumers.

Clearing a note late is harmless: until the grace period has passed the sweep
leaves it alone, and past it the worst is a duplicate. So the publisher does
not wait for Redis: it returns once Kafka has acknowledged, and the notes of
what it sent are cleared in the background, many at once (one ``mark_sent``,
a single ``ZREM``, per batch). Whatever cannot be cleared in time (Redis away
or slow, the process stopping) stays noted, and the sweep sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable, Sequence

from tributary_shared.core.events import ANY_EVENT, AnyEvent, EventEnvelope
from tributary_shared.core.ports import EventPublisher, UnsentEvent, WorkflowStore
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime import metrics

__all__ = [
    "CLEAR_INTERVAL_S",
    "CLEAR_TIMEOUT_S",
    "MAX_CLEAR_BATCH",
    "MAX_PENDING_CLEARS",
    "SentMarkingPublisher",
    "send_unsent",
]

log = logging.getLogger(__name__)

_LOG_PAGE = 500

CLEAR_INTERVAL_S = 0.05
"""How long acknowledged events' notes gather before they are cleared together. At a
few hundred events a second this turns as many ``ZREM`` calls into some twenty, and
it is far below any useful grace period of the sweep (``MIN_UNSENT_GRACE_S`` of the
planner's settings is checked against it)."""

MAX_CLEAR_BATCH = 500
"""Most notes one ``ZREM`` clears; a batch that fills up is cleared without waiting
out the interval. Large enough that bursts take few round trips, small enough that
one command never holds Redis for long (``ZREM`` is O(M log N))."""

MAX_PENDING_CLEARS = 20_000
"""Most notes waiting to be cleared (a few hundred bytes each: ids, never the events).
Past it the oldest are given up (``outbox_clears_dropped_total``): they stay noted
and the sweep sends them once more, a duplicate its consumers recognise. Making the
publisher wait instead would put Redis back on every handler's path exactly when it
is slow, for nothing that matters more than a duplicate."""

CLEAR_TIMEOUT_S = 0.5
"""How long one ``ZREM`` may take before its notes go back to wait for the next try
(a healthy Redis takes well under a millisecond for a full batch)."""

_DROP_LOG_INTERVAL_S = 10.0

_Note = tuple[str, str]
"""A note's identity: (workflow id, event id)."""


class SentMarkingPublisher:
    """A publisher that clears the outbox notes of the events Kafka acknowledged.

    ``publish`` returns once the inner publisher has; the notes are cleared by a
    background task started by the first publish, every ``flush_interval_s`` (or
    as soon as ``max_batch`` wait). With ``flush_interval_s=None`` nothing runs
    in the background: notes are cleared by ``flush`` alone (an in-process rerun,
    tests). ``close`` clears what is left, within a bound, and stops the task.
    """

    def __init__(
        self,
        publisher: EventPublisher,
        store: WorkflowStore,
        *,
        flush_interval_s: float | None = CLEAR_INTERVAL_S,
        max_batch: int = MAX_CLEAR_BATCH,
        max_pending: int = MAX_PENDING_CLEARS,
        clear_timeout_s: float = CLEAR_TIMEOUT_S,
    ) -> None:
        self._publisher = publisher
        self._store = store
        self._flush_interval_s = flush_interval_s
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._clear_timeout_s = clear_timeout_s
        # Oldest first, each note with its event's type: ids only, so that a
        # large event is not held in memory until its note is cleared.
        self._pending: dict[_Note, str] = {}
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._failing = False
        self._dropped = 0
        self._drops_logged_at = -_DROP_LOG_INTERVAL_S

    @property
    def pending(self) -> int:
        """Notes of acknowledged events not cleared yet."""
        return len(self._pending)

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        batch = list(events)
        await self._publisher.publish(batch)
        self._queue({(event.workflow_id, event.event_id): event.type for event in batch})
        if self._closed or self._flush_interval_s is None:
            return
        self._wake.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._clear_in_background(), name="outbox-clearing"
            )

    async def flush(self) -> None:
        """Clear every note waiting now, ``max_batch`` per call to the store. A call
        that fails, times out or is cancelled puts its notes back for the next
        flush, and the rest wait too."""
        async with self._flushing:
            self._log_drops(now=False)
            while self._pending:
                batch = {
                    note: self._pending.pop(note)
                    for note in list(itertools.islice(self._pending, self._max_batch))
                }
                cleared = False
                try:
                    async with asyncio.timeout(self._clear_timeout_s):
                        await self._store.mark_sent(_bare(batch))
                    cleared = True
                except Exception:
                    if not self._failing:
                        log.warning(
                            "sent events' outbox notes could not be cleared; trying again "
                            "(the sweep sends whatever stays noted once more)",
                            exc_info=True,
                        )
                    self._failing = True
                    return
                finally:
                    if not cleared:
                        self._requeue(batch)
                if self._failing:
                    log.info("sent events' outbox notes are cleared again")
                self._failing = False

    async def close(self, *, timeout_s: float = 2.0) -> None:
        """Stop clearing in the background, then clear what waits for up to
        ``timeout_s``; what is left stays noted (the sweep sends it again)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(timeout_s):
                await self.flush()
        except TimeoutError:
            pass
        self._log_drops(now=True)
        if self._pending:
            log.warning(
                "%d sent events stay noted as unsent at shutdown; the sweep sends them again",
                len(self._pending),
            )

    async def _clear_in_background(self) -> None:
        interval = self._flush_interval_s or 0.0
        while True:
            await self._wake.wait()
            if len(self._pending) < self._max_batch:
                # Gather what the next handlers publish, unless a full batch waits.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._full.wait()
            self._wake.clear()
            self._full.clear()
            await self.flush()
            if self._failing:
                # Give Redis time to come back rather than knock every interval.
                await asyncio.sleep(self._clear_timeout_s)
                self._wake.set()

    def _queue(self, notes: dict[_Note, str]) -> None:
        self._pending.update(notes)
        self._drop_oldest()

    def _requeue(self, notes: dict[_Note, str]) -> None:
        # Back in front: they are the oldest.
        self._pending = {**notes, **self._pending}
        self._drop_oldest()

    def _drop_oldest(self) -> None:
        excess = len(self._pending) - self._max_pending
        if excess <= 0:
            return
        for note in list(itertools.islice(self._pending, excess)):
            del self._pending[note]
        metrics.OUTBOX_CLEARS_DROPPED_TOTAL.inc(excess)
        self._dropped += excess
        self._log_drops(now=False)

    def _log_drops(self, *, now: bool) -> None:
        # At most one line per interval (unless ``now``): a publisher that keeps
        # overflowing would otherwise log once per publish.
        due = time.monotonic() - self._drops_logged_at >= _DROP_LOG_INTERVAL_S
        if self._dropped and (now or due):
            log.warning(
                "%d sent events' outbox notes were given up uncleared (too many waiting); "
                "the sweep sends them once more",
                self._dropped,
            )
            self._dropped = 0
            self._drops_logged_at = time.monotonic()


def _bare(notes: dict[_Note, str]) -> list[EventEnvelope]:
    """Envelopes alone, for ``mark_sent``: what clearing a note needs is its ids."""
    return [
        EventEnvelope(workflow_id=workflow_id, event_id=event_id, type=event_type)
        for (workflow_id, event_id), event_type in notes.items()
    ]


async def send_unsent(
    store: WorkflowStore, publisher: EventPublisher, notes: Sequence[UnsentEvent]
) -> None:
    """Publish the noted events of one workflow from its log, then drop the notes.

    A noted event the log does not hold was refused when written (or the
    workflow is long gone): there is nothing to send, and the note goes too.
    """
    if not notes:
        return
    workflow_id = notes[0].workflow_id
    wanted = {note.event_id for note in notes if note.event_id}
    events = [
        event for event in await _logged_events(store, workflow_id) if event.event_id in wanted
    ]
    if len(wanted) < len(notes):
        events.extend(await _first_layout_event(store, workflow_id))
    if events:
        await publisher.publish(events)
    await store.forget_unsent(notes)


async def _logged_events(store: WorkflowStore, workflow_id: str) -> list[AnyEvent]:
    events: list[AnyEvent] = []
    after = "0"
    while entries := await store.read_log(workflow_id, after=after, count=_LOG_PAGE):
        for entry in entries:
            try:
                events.append(ANY_EVENT.validate_json(entry.event_json))
            except ValueError:
                log.warning("an unreadable %s entry of a workflow log was skipped", entry.type)
        after = entries[-1].stream_id
    return events


async def _first_layout_event(store: WorkflowStore, workflow_id: str) -> list[AnyEvent]:
    """What a note of the first layout (a workflow id alone) stood for: the
    workflow's final event once it ended, its request while it is pending."""
    record = await store.get_workflow(workflow_id)
    if record is None:
        return []
    if record.final_event is not None:
        return [record.final_event]
    if record.status is WorkflowStatus.PENDING:
        first = await store.read_log(workflow_id, count=1)
        if first and first[0].type == "workflow.requested":
            return [ANY_EVENT.validate_json(first[0].event_json)]
    return []
