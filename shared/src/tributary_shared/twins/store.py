"""The workflow store in memory: ``core.machine.apply`` over a dict of records."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import time
from collections.abc import Sequence

from tributary_shared.core import machine
from tributary_shared.core.events import EventEnvelope, WorkflowRequested
from tributary_shared.core.keys import listing_member, listing_workflow_id
from tributary_shared.core.listing import (
    LISTING_SCAN_ENTRIES,
    ListingEntry,
    ListingRange,
    WorkflowFilter,
    scan_listing,
)
from tributary_shared.core.machine import Move, Transition
from tributary_shared.core.ports import IdempotencyKeyReused, UnsentEvent, WorkflowStillActive
from tributary_shared.core.records import (
    Applied,
    LogEntry,
    WorkflowPage,
    WorkflowRecord,
    stream_position,
)
from tributary_shared.core.status import WorkflowStatus

__all__ = ["MemoryWorkflowStore"]


class MemoryWorkflowStore:
    def __init__(self) -> None:
        self.records: dict[str, WorkflowRecord] = {}
        self._logs: dict[str, list[LogEntry]] = {}
        self._requests: dict[tuple[str, str], tuple[str, str]] = {}
        self._deadlines: dict[str, float] = {}
        self._input_expiries: dict[tuple[str, str], float] = {}
        self._unsent: dict[tuple[str, str], float] = {}
        self._listings: dict[str | None, list[str]] = {None: []}
        """Listing members (as in Redis), sorted: every workflow's, and each tenant's."""
        self.purged: set[str] = set()
        """Deleted workflows (Redis keeps a tombstone): nothing creates them again."""
        self._positions = itertools.count(1)
        self._appended = asyncio.Condition()

    async def create_workflow(
        self,
        event: WorkflowRequested,
        *,
        deadline_at: float,
        idempotency_key_value: str | None = None,
    ) -> str | None:
        if idempotency_key_value is None:
            await self.apply(machine.create(event, deadline_at=deadline_at))
            return None
        # As in Redis: the claim is written first and names the workflow; whoever
        # finds that workflow missing writes it (see RedisWorkflowStore).
        fingerprint = _fingerprint(event)
        key = (event.tenant_id, idempotency_key_value)
        claimed = key not in self._requests
        workflow_id, first = self._requests.setdefault(key, (event.workflow_id, fingerprint))
        if first != fingerprint:
            raise IdempotencyKeyReused(workflow_id)
        if not claimed and (workflow_id in self.records or workflow_id in self.purged):
            return workflow_id
        create = machine.create(
            event.model_copy(update={"workflow_id": workflow_id}), deadline_at=deadline_at
        )
        try:
            await self.apply(create)
        except machine.TransitionConflict:
            return workflow_id
        return None if claimed else workflow_id

    async def apply(self, transition: Transition) -> Applied:
        if transition.move is Move.CREATE and transition.workflow_id in self.purged:
            raise machine.TransitionConflict("purged at", "")
        await self.track(transition.events)  # before the write, as in Redis
        record = machine.apply(self.records.get(transition.workflow_id), transition)
        self.records[transition.workflow_id] = record
        await self.append_log(transition.workflow_id, transition.events)
        if transition.move is Move.CREATE:
            member = listing_member(record.created_at, record.workflow_id)
            for listing in (None, record.tenant_id):
                bisect.insort(self._listings.setdefault(listing, []), member)
        if transition.move is Move.CREATE and transition.deadline_at is not None:
            self._deadlines[transition.workflow_id] = transition.deadline_at
        elif transition.rule.ends:
            self._deadlines.pop(transition.workflow_id, None)
        request = transition.input_request
        if request is not None and transition.rule.opens_input and request.expires_at:
            key = (transition.workflow_id, request.request_id)
            self._input_expiries[key] = request.expires_at.timestamp()
        elif request is not None and transition.rule.settles_input:
            self._input_expiries.pop((transition.workflow_id, request.request_id), None)
        return Applied(steps_finished=record.steps_finished, steps_total=record.steps_total)

    async def write_notices(self, workflow_id: str, events: Sequence[EventEnvelope]) -> bool:
        if not events:
            return True  # as in Redis: nothing to write, nothing asked
        await self.track(events)  # first, as in Redis: the sweep drops a refused one's
        record = self.records.get(workflow_id)
        if record is None or record.status.terminal:
            return False
        await self.append_log(workflow_id, tuple(events))
        return True

    async def append_log(self, workflow_id: str, events: tuple[EventEnvelope, ...]) -> None:
        """Append to a workflow's log (the budget twin logs its announcements here)."""
        log = self._logs.setdefault(workflow_id, [])
        for event in events:
            position = f"{next(self._positions)}-0"
            log.append(
                LogEntry(stream_id=position, type=event.type, event_json=event.model_dump_json())
            )
        async with self._appended:
            self._appended.notify_all()

    async def appended(self) -> None:
        """Returns at the next append to any log."""
        async with self._appended:
            await self._appended.wait()

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        return self.records.get(workflow_id)

    async def status(self, workflow_id: str) -> tuple[WorkflowStatus | None, float | None]:
        record = self.records.get(workflow_id)
        return (None, None) if record is None else (record.status, record.deadline_at)

    async def read_log(
        self, workflow_id: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
    ) -> list[LogEntry]:
        entries = self._after(workflow_id, after, count)
        if entries or block_ms is None:
            return entries
        with contextlib.suppress(TimeoutError):
            async with self._appended:
                await asyncio.wait_for(
                    self._appended.wait_for(lambda: bool(self._after(workflow_id, after, 1))),
                    timeout=block_ms / 1000 if block_ms else None,
                )
        return self._after(workflow_id, after, count)

    def _after(self, workflow_id: str, after: str, count: int) -> list[LogEntry]:
        start = stream_position(after)
        log = self._logs.get(workflow_id, [])
        return [e for e in log if stream_position(e.stream_id) > start][:count]

    async def list_workflows(
        self,
        *,
        tenant_id: str | None,
        limit: int,
        cursor: str | None = None,
        filters: WorkflowFilter | None = None,
        scan: int = LISTING_SCAN_ENTRIES,
    ) -> WorkflowPage:
        members = self._listings.get(tenant_id, [])

        async def fetch(window: ListingRange, count: int) -> list[ListingEntry]:
            end = bisect.bisect_left(members, window.below) if window.below else len(members)
            start = bisect.bisect_left(members, window.from_) if window.from_ else 0
            newest = members[max(start, end - count) : end][::-1]
            return [(m, self.records.get(listing_workflow_id(m))) for m in newest]

        page, stale = await scan_listing(
            fetch,
            tenant_id=tenant_id,
            limit=limit,
            cursor=cursor,
            filters=filters or WorkflowFilter(),
            now=time.time(),
            scan=scan,
        )
        for member in stale:
            members.remove(member)
        return page

    async def purge(self, workflow_id: str) -> bool:
        record = self.records.get(workflow_id)
        if record is None:
            return False
        if not record.status.terminal:
            raise WorkflowStillActive(record.status)
        self.purged.add(workflow_id)
        del self.records[workflow_id]
        self._logs.pop(workflow_id, None)
        self._deadlines.pop(workflow_id, None)
        for note in [n for n in self._unsent if n[0] == workflow_id]:
            del self._unsent[note]
        member = listing_member(record.created_at, workflow_id)
        for listing in (None, record.tenant_id):
            with contextlib.suppress(ValueError):
                self._listings.get(listing, []).remove(member)
        return True

    async def overdue(self, now: float, *, limit: int = 100) -> list[str]:
        due = sorted((at, wf) for wf, at in self._deadlines.items() if at <= now)
        return [wf for _, wf in due[:limit]]

    async def forget_deadline(self, workflow_id: str) -> None:
        self._deadlines.pop(workflow_id, None)

    async def due_inputs(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]:
        due = sorted((at, key) for key, at in self._input_expiries.items() if at <= now)
        return [key for _, key in due[:limit]]

    async def forget_input_expiry(self, workflow_id: str, request_id: str) -> None:
        self._input_expiries.pop((workflow_id, request_id), None)

    async def unsent(self, before: float, *, limit: int = 100) -> list[UnsentEvent]:
        due = sorted((at, note) for note, at in self._unsent.items() if at <= before)
        return [UnsentEvent(*note) for _, note in due[:limit]]

    async def track(self, events: Sequence[EventEnvelope]) -> None:
        now = time.time()
        for event in events:
            self._unsent.setdefault((event.workflow_id, event.event_id), now)

    async def mark_sent(self, events: Sequence[EventEnvelope]) -> None:
        for event in events:
            self._unsent.pop((event.workflow_id, event.event_id), None)

    async def forget_unsent(self, unsent: Sequence[UnsentEvent]) -> None:
        for note in unsent:
            self._unsent.pop((note.workflow_id, note.event_id), None)


def _fingerprint(event: WorkflowRequested) -> str:
    return f"{event.task}\0{event.options.model_dump_json()}"
