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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from tributary_shared.core.events import ANY_EVENT, AnyEvent, EventEnvelope
from tributary_shared.core.ports import EventPublisher, UnsentEvent, WorkflowStore
from tributary_shared.core.status import WorkflowStatus

__all__ = ["SentMarkingPublisher", "send_unsent"]

log = logging.getLogger(__name__)

_LOG_PAGE = 500


class SentMarkingPublisher:
    """A publisher that clears the outbox notes of the events Kafka acknowledged."""

    def __init__(self, publisher: EventPublisher, store: WorkflowStore) -> None:
        self._publisher = publisher
        self._store = store

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        batch = list(events)
        await self._publisher.publish(batch)
        try:
            await self._store.mark_sent(batch)
        except Exception:  # they are on Kafka: the sweep sends a harmless copy later
            log.warning("sent events stay noted as unsent; the sweep publishes them again")


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
