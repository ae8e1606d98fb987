"""The Redis adapter of the workflow store: executes the machine's transitions atomically.

The rules live in ``core.machine``; this module only knows the Redis layout
(``core.keys``, ``program``). Every transition is compiled into one program
for ``atomic.lua``: it checks the rule's expected statuses, writes the new
state and appends the transition's events to the workflow's log stream, all
or nothing. A refused program raises ``TransitionConflict`` and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from tributary_shared.core.events import (
    EventEnvelope,
    PlannedStep,
    StepCompleted,
    TokenUsage,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowOptions,
    WorkflowRequested,
)
from tributary_shared.core.keys import (
    DEADLINES_KEY,
    INPUT_EXPIRIES_KEY,
    OUTBOX_KEY,
    WORKFLOWS_INDEX_KEY,
    WorkflowKeys,
    idempotency_key,
    listing_member,
    listing_start,
    listing_workflow_id,
    outbox_entry,
    outbox_member,
    outbox_notes_of,
    running_workflows_key,
    tenant_workflows_key,
)
from tributary_shared.core.listing import (
    LISTING_SCAN_ENTRIES,
    ListingEntry,
    ListingRange,
    WorkflowFilter,
    scan_listing,
)
from tributary_shared.core.machine import (
    Move,
    StepChange,
    Transition,
    TransitionConflict,
    create,
)
from tributary_shared.core.ports import IdempotencyKeyReused, UnsentEvent, WorkflowStillActive
from tributary_shared.core.records import (
    Applied,
    FinalEvent,
    InputRequest,
    LogEntry,
    StepCheckpoint,
    StepOutcome,
    StepRecord,
    WorkflowPage,
    WorkflowRecord,
)
from tributary_shared.core.status import (
    ACTIVE_WORKFLOW_STATUSES,
    TERMINAL_WORKFLOW_STATUSES,
    StepStatus,
    WorkflowStatus,
)
from tributary_shared.runtime.state.program import (
    INPUT_FIELD_PREFIX,
    INPUTS_OPEN,
    PLANNING_LEASE_UNTIL,
    PLANNING_OWNER,
    PURGED_AT,
    STEPS,
    WF,
    Program,
    input_field,
    input_state_field,
    step_checkpoint_field,
    step_data_field,
    step_event_field,
    step_lease_field,
    step_owner_field,
    step_status_field,
)

_LUA = resources.files("tributary_shared.runtime.state").joinpath("atomic.lua").read_text()
_NOTICE_LUA = resources.files("tributary_shared.runtime.state").joinpath("notice.lua").read_text()
_PURGE_LUA = resources.files("tributary_shared.runtime.state").joinpath("purge.lua").read_text()
_ACTIVE = sorted(ACTIVE_WORKFLOW_STATUSES)
_TERMINAL = sorted(TERMINAL_WORKFLOW_STATUSES)
_FINAL: TypeAdapter[FinalEvent] = TypeAdapter(FinalEvent)
_OUTCOME: TypeAdapter[StepOutcome] = TypeAdapter(StepOutcome)
_COUNTS = ("steps_finished", "steps_total")
# The longest deadline a request may ask for (``WorkflowOptions.deadline_s``): a
# workflow is gone this long plus the retention after its creation, and so is
# its entry in the listing indexes.
_LONGEST_DEADLINE_S = 7 * 24 * 3600

log = logging.getLogger(__name__)


def request_fingerprint(event: WorkflowRequested) -> str:
    body = json.dumps(
        {"task": event.task, "options": event.options.model_dump(mode="json")}, sort_keys=True
    )
    return hashlib.sha256(body.encode()).hexdigest()[:32]


class RedisWorkflowStore:
    def __init__(self, redis: Redis, *, retention_s: int) -> None:
        self._redis = redis
        self._retention_s = retention_s
        self._atomic = redis.register_script(_LUA)
        self._notice = redis.register_script(_NOTICE_LUA)
        self._purge = redis.register_script(_PURGE_LUA)

    async def create_workflow(
        self,
        event: WorkflowRequested,
        *,
        deadline_at: float,
        idempotency_key_value: str | None = None,
    ) -> str | None:
        if idempotency_key_value is None:
            await self.apply(create(event, deadline_at=deadline_at))
            return None
        # The claim names the workflow before it exists (the key and the workflow
        # live on different cluster slots, so no script can write both). The
        # workflow's own create transition is what is atomic: whoever finds the
        # claim's workflow missing writes it under the claimed id, and the
        # create rule lets exactly one writer win.
        request = request_fingerprint(event)
        claimed, claim = await self._claim(
            idempotency_key(event.tenant_id, idempotency_key_value),
            f"{event.workflow_id} {request}",
        )
        workflow_id, _, first_request = claim.partition(" ")
        if first_request != request:
            raise IdempotencyKeyReused(workflow_id)
        if not claimed and await self._redis.exists(WorkflowKeys(workflow_id).workflow):
            return workflow_id
        try:
            request_event = event.model_copy(update={"workflow_id": workflow_id})
            await self.apply(create(request_event, deadline_at=deadline_at))
        except TransitionConflict:
            return workflow_id  # another attempt at the same request wrote it meanwhile
        return None if claimed else workflow_id

    async def _claim(self, key: str, claim: str) -> tuple[bool, str]:
        """Claim an Idempotency-Key; (True, ``claim``), or (False, the claim it holds)."""
        while True:
            if await self._redis.set(key, claim, nx=True, ex=self._retention_s):
                return True, claim
            held = await self._redis.get(key)
            if held is not None:  # else it expired in between: claim it again
                return False, _text(held)

    async def apply(self, transition: Transition) -> Applied:
        program = compile_transition(transition, retention_s=self._retention_s)
        outcome = json.loads(await self._write(transition, program))
        if not outcome["ok"]:
            raise TransitionConflict(_subject(outcome["f"]), outcome["actual"])
        finished, total = outcome["r"][-1]
        if transition.rule.ends:
            await self._redis.zrem(DEADLINES_KEY, transition.workflow_id)
        if transition.rule.settles_input and transition.input_request is not None:
            await self.forget_input_expiry(
                transition.workflow_id, transition.input_request.request_id
            )
        return Applied(steps_finished=int(finished or 0), steps_total=int(total or 0))

    async def _write(self, transition: Transition, program: Program) -> Any:
        """One round trip: the transition's global index entries, then its script.

        The outbox notes (every event the transition writes) and the deadline
        sit outside the script because they may live on another cluster slot.
        Sent first in the same pipeline, no crash leaves an event nobody sends
        nor a workflow that no deadline ends; a note whose write was then
        refused names an event the log does not hold, and the sweep drops it.
        Returns the script's reply.
        """
        return await self._queued_then(
            lambda pipe: self._index_before(pipe, transition, retention_s=self._retention_s),
            self._atomic,
            keys=list(WorkflowKeys(transition.workflow_id).all()),
            args=[json.dumps(program.as_dict())],
            unwritten="an index entry of a transition was not written: %s",
        )

    async def _queued_then(
        self,
        queue: Callable[[Pipeline], int],
        script: AsyncScript,
        *,
        keys: Sequence[str],
        args: Sequence[str],
        unwritten: str,
    ) -> Any:
        """One round trip: the commands ``queue`` queues (it says how many), then
        ``script``, in one non-transactional pipeline; returns the script's reply.

        Raises the script's error. A queued command that failed is logged with
        ``unwritten`` and passed over: what the script wrote stands, and the caller
        publishes it.
        """
        while True:
            async with self._redis.pipeline(transaction=False) as pipe:
                queued = queue(pipe)
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
            if not isinstance(replies[-1], NoScriptError):
                break
            await self._redis.script_load(script.script)  # a restarted Redis: load it, go again
        if isinstance(replies[-1], Exception):
            raise replies[-1]
        for reply in replies[:queued]:
            if isinstance(reply, Exception):
                log.warning(unwritten, reply)
        return replies[-1]

    @staticmethod
    def _index_before(pipe: Pipeline, transition: Transition, *, retention_s: int) -> int:
        """Queue the transition's outbox notes, deadline and listing; how many commands."""
        queued = _queue_notes(pipe, transition.events)
        if transition.move is Move.CREATE and transition.deadline_at is not None:
            pipe.zadd(DEADLINES_KEY, {transition.workflow_id: transition.deadline_at}, nx=True)
            queued += 1
        if transition.move is Move.CREATE and transition.request is not None:
            queued += _queue_listing(pipe, transition.request, retention_s=retention_s)
        opened = transition.input_request if transition.rule.opens_input else None
        if opened is not None and opened.expires_at is not None:
            member = outbox_member(transition.workflow_id, opened.request_id)
            pipe.zadd(INPUT_EXPIRIES_KEY, {member: opened.expires_at.timestamp()}, nx=True)
            queued += 1
        return queued

    async def due_inputs(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]:
        members: list[Any] = await self._redis.zrangebyscore(
            INPUT_EXPIRIES_KEY, "-inf", now, start=0, num=limit
        )
        return [outbox_entry(_text(m)) for m in members]

    async def forget_input_expiry(self, workflow_id: str, request_id: str) -> None:
        await self._redis.zrem(INPUT_EXPIRIES_KEY, outbox_member(workflow_id, request_id))

    async def write_notices(self, workflow_id: str, events: Sequence[EventEnvelope]) -> bool:
        """One round trip: the events' outbox notes, then the script appending them.

        As in ``_write``: the outbox may live on another cluster slot, so its notes
        go first in the same (non-transactional) pipeline; a note whose append was
        then refused names an event the log does not hold, and the sweep drops it.
        """
        if not events:
            return True
        keys = WorkflowKeys(workflow_id)
        appended = await self._queued_then(
            lambda pipe: _queue_notes(pipe, events),
            self._notice,
            keys=[keys.workflow, keys.log],
            args=_notice_args(events),
            unwritten="the outbox notes of notices were not written: %s",
        )
        return bool(appended)

    async def list_workflows(
        self,
        *,
        tenant_id: str | None,
        limit: int,
        cursor: str | None = None,
        filters: WorkflowFilter | None = None,
        scan: int = LISTING_SCAN_ENTRIES,
    ) -> WorkflowPage:
        index = WORKFLOWS_INDEX_KEY if tenant_id is None else tenant_workflows_key(tenant_id)

        async def fetch(window: ListingRange, count: int) -> list[ListingEntry]:
            raw: list[Any] = await self._redis.zrevrangebylex(
                index,
                f"({window.below}" if window.below else "+",
                f"[{window.from_}" if window.from_ else "-",
                start=0,
                num=count,
            )
            members = [_text(m) for m in raw]
            records = await self._records([listing_workflow_id(m) for m in members])
            return list(zip(members, records, strict=True))

        page, stale = await scan_listing(
            fetch,
            tenant_id=tenant_id,
            limit=limit,
            cursor=cursor,
            filters=filters or WorkflowFilter(),
            now=time.time(),
            scan=scan,
        )
        if stale:
            await self._redis.zrem(index, *stale)
        return page

    async def _records(self, workflow_ids: list[str]) -> list[WorkflowRecord | None]:
        if not workflow_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for workflow_id in workflow_ids:
                keys = WorkflowKeys(workflow_id)
                pipe.hgetall(keys.workflow)
                pipe.hgetall(keys.steps)
            replies = await pipe.execute()
        return [
            _record_or_none(workflow_id, _decode_map(wf), _decode_map(steps))
            for workflow_id, wf, steps in zip(
                workflow_ids, replies[::2], replies[1::2], strict=True
            )
        ]

    async def overdue(self, now: float, *, limit: int = 100) -> list[str]:
        ids: list[Any] = await self._redis.zrangebyscore(
            DEADLINES_KEY, "-inf", now, start=0, num=limit
        )
        return [_text(i) for i in ids]

    async def forget_deadline(self, workflow_id: str) -> None:
        await self._redis.zrem(DEADLINES_KEY, workflow_id)

    async def unsent(self, before: float, *, limit: int = 100) -> list[UnsentEvent]:
        members: list[Any] = await self._redis.zrangebyscore(
            OUTBOX_KEY, "-inf", before, start=0, num=limit
        )
        return [UnsentEvent(*outbox_entry(_text(m))) for m in members]

    async def track(self, events: Sequence[EventEnvelope]) -> None:
        if events:
            now = time.time()
            notes = {outbox_member(e.workflow_id, e.event_id): now for e in events}
            await self._redis.zadd(OUTBOX_KEY, notes, nx=True)

    async def mark_sent(self, events: Sequence[EventEnvelope]) -> None:
        if events:
            await self._redis.zrem(
                OUTBOX_KEY, *(outbox_member(e.workflow_id, e.event_id) for e in events)
            )

    async def forget_unsent(self, unsent: Sequence[UnsentEvent]) -> None:
        if unsent:
            await self._redis.zrem(OUTBOX_KEY, *(_member_of(u) for u in unsent))

    async def status(self, workflow_id: str) -> tuple[WorkflowStatus | None, float | None]:
        raw = await self._redis.hmget(WorkflowKeys(workflow_id).workflow, ["status", "deadline_at"])
        status, deadline = (_text(v) if v is not None else None for v in raw)
        return (
            WorkflowStatus(status) if status else None,
            float(deadline) if deadline else None,
        )

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        keys = WorkflowKeys(workflow_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.workflow)
            pipe.hgetall(keys.steps)
            wf_raw, steps_raw = await pipe.execute()
        return _record_or_none(workflow_id, _decode_map(wf_raw), _decode_map(steps_raw))

    async def purge(self, workflow_id: str) -> bool:
        record = await self.get_workflow(workflow_id)
        if record is None:
            return False
        if not record.status.terminal:
            raise WorkflowStillActive(record.status)
        # An ended workflow's steps change no more: the keys read here are all it has.
        keys = WorkflowKeys(workflow_id).every((s.step_id, s.attempt) for s in record.steps)
        args: list[str | int] = [self._retention_s, datetime.now(UTC).isoformat(), *_TERMINAL]
        done, status = await self._purge(keys=keys, args=args)
        if int(done) == 0:
            return False  # deleted (or expired) since it was read
        if int(done) < 0:
            raise WorkflowStillActive(WorkflowStatus(_text(status)))
        # Its own keys are gone and it reads as absent; now what points at it.
        member = listing_member(record.created_at, workflow_id)
        notes = [
            _text(note)
            async for note, _ in self._redis.zscan_iter(
                OUTBOX_KEY, match=outbox_notes_of(workflow_id), count=1000
            )
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(WORKFLOWS_INDEX_KEY, member)
            pipe.zrem(tenant_workflows_key(record.tenant_id), member)
            pipe.zrem(DEADLINES_KEY, workflow_id)
            pipe.zrem(running_workflows_key(record.tenant_id), workflow_id)
            pipe.zrem(OUTBOX_KEY, workflow_id, *notes)  # a first-layout note is the id alone
            await pipe.execute()
        return True

    async def read_log(
        self, workflow_id: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
    ) -> list[LogEntry]:
        key = WorkflowKeys(workflow_id).log
        response: Any = await self._redis.xread({key: after}, count=count, block=block_ms)
        entries: list[LogEntry] = []
        for _stream, messages in response or []:
            for stream_id, fields in messages:
                decoded = _decode_map(fields)
                entries.append(
                    LogEntry(
                        stream_id=_text(stream_id),
                        type=decoded.get("type", ""),
                        event_json=decoded.get("event", "{}"),
                    )
                )
        return entries


# -- the layout: transitions -> programs, hashes -> records ----------------------------


def compile_transition(transition: Transition, *, retention_s: int) -> Program:
    """The Lua program that checks ``transition``'s rule and writes its changes."""
    rule = transition.rule
    program = Program()
    allowed: list[str] = sorted(rule.workflow_from) if rule.workflow_from else [""]
    program.expect_field(WF, "status", allowed)
    if transition.move is Move.CREATE:  # a deleted workflow's tombstone keeps it deleted
        program.expect_field(WF, PURGED_AT, [""])
    change = transition.step
    if change is not None:
        program.expect_field(STEPS, step_status_field(change.step_id), sorted(rule.step_from))
        if rule.fenced:
            program.expect_field(STEPS, step_owner_field(change.step_id), [transition.fence or ""])
        if rule.needs_expired_lease:
            program.expect_at_most(STEPS, step_lease_field(change.step_id), transition.now or 0.0)
    else:  # a move on the workflow alone: its lease is the planning lease
        if rule.fenced:
            program.expect_field(WF, PLANNING_OWNER, [transition.fence or ""])
        if rule.needs_expired_lease:
            program.expect_at_most(WF, PLANNING_LEASE_UNTIL, transition.now or 0.0)
    if rule.needs_all_steps_finished:
        program.expect_at_least(WF, "steps_finished", "steps_total")
    request = transition.input_request
    if request is not None:
        held = [""] if rule.opens_input else ["open"]
        program.expect_field(WF, input_state_field(request.request_id), held)

    fields: dict[str, str] = {"updated_at": transition.at.isoformat()}
    if rule.workflow_to is not None:
        fields["status"] = rule.workflow_to
    if transition.request is not None:
        fields.update(_request_fields(transition.request, transition.deadline_at))
    if transition.planning_owner is not None:
        fields[PLANNING_OWNER] = transition.planning_owner
    if transition.planning_lease_until is not None:
        fields[PLANNING_LEASE_UNTIL] = repr(transition.planning_lease_until)
    if transition.plan is not None:
        fields["steps_total"] = str(len(transition.plan))
        fields["plan"] = json.dumps([step.model_dump() for step in transition.plan])
        program.hset(STEPS, _planned_step_fields(transition.plan))
    if change is not None:
        program.hset(STEPS, _step_fields(change))
    if transition.final is not None:
        fields.update(_final_fields(transition.final))
    program.hset(WF, fields)
    if transition.usage.prompt_tokens:
        program.hincrby(WF, "usage_prompt", transition.usage.prompt_tokens)
    if transition.usage.completion_tokens:
        program.hincrby(WF, "usage_completion", transition.usage.completion_tokens)
    if change is not None and change.outcome is not None:
        program.hincrby(WF, "steps_finished", 1)
    if request is not None:
        program.hset(
            WF,
            {
                input_field(request.request_id): request.model_dump_json(),
                input_state_field(request.request_id): request.state,
            },
        )
        program.hincrby(WF, INPUTS_OPEN, 1 if rule.opens_input else -1)
        if rule.settles_input and rule.workflow_to is None:  # the last one: it runs on
            program.hset_if(WF, INPUTS_OPEN, "0", {"status": WorkflowStatus.RUNNING})
    program.append_events(transition.events)
    if rule.ends:
        program.expire_all(retention_s)
    return program.read(WF, _COUNTS)


def _request_fields(request: WorkflowRequested, deadline_at: float | None) -> dict[str, str]:
    fields = {
        "tenant_id": request.tenant_id,
        "task": request.task,
        "options": request.options.model_dump_json(),
        "created_at": request.occurred_at.isoformat(),
        "steps_total": "0",
        "steps_finished": "0",
    }
    if deadline_at is not None:
        fields["deadline_at"] = repr(deadline_at)
    return fields


def _planned_step_fields(plan: tuple[PlannedStep, ...]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for step in plan:
        planned = StepRecord.planned(step)
        fields[step_status_field(step.step_id)] = planned.status
        fields[step_data_field(step.step_id)] = json.dumps({"attempt": 0})
    return fields


def _step_fields(change: StepChange) -> dict[str, str]:
    step_id, attempt, outcome = change.step_id, change.attempt, change.outcome
    fields = {step_status_field(step_id): str(change.status)}
    if change.owner is not None:
        fields[step_owner_field(step_id)] = change.owner
    if change.lease_until is not None:
        fields[step_lease_field(step_id)] = repr(change.lease_until)
    if change.checkpoint is not None:
        fields[step_checkpoint_field(step_id)] = change.checkpoint.model_dump_json()
    if outcome is not None:
        data: dict[str, Any] = {
            "attempt": outcome.attempt,
            "models": list(outcome.models),
            "iterations": outcome.iterations,
            "usage": outcome.usage.model_dump(),
        }
        if isinstance(outcome, StepCompleted):
            data["result"] = outcome.result
        else:
            data["error"] = outcome.error.model_dump()
        fields[step_data_field(step_id)] = json.dumps(data)
        fields[step_event_field(step_id)] = outcome.model_dump_json()
    elif attempt is not None:
        fields[step_data_field(step_id)] = json.dumps({"attempt": attempt})
    return fields


def _final_fields(final: FinalEvent) -> dict[str, str]:
    fields = {"final_event": final.model_dump_json()}
    if isinstance(final, WorkflowCompleted):
        fields.update(result=final.result, partial="1" if final.partial else "0")
    elif isinstance(final, WorkflowFailed):
        fields["error"] = final.error.model_dump_json()
    return fields


def _queue_notes(pipe: Pipeline, events: Sequence[EventEnvelope]) -> int:
    """Note ``events`` in the outbox as unsent (none noted twice); how many commands."""
    if not events:
        return 0
    now = time.time()
    pipe.zadd(OUTBOX_KEY, {outbox_member(e.workflow_id, e.event_id): now for e in events}, nx=True)
    return 1


def _queue_listing(pipe: Pipeline, request: WorkflowRequested, *, retention_s: int) -> int:
    """List a new workflow, and drop the entries old enough to name only expired ones."""
    member = listing_member(request.occurred_at, request.workflow_id)
    older = "(" + listing_start(time.time() - retention_s - _LONGEST_DEADLINE_S)
    for index in (WORKFLOWS_INDEX_KEY, tenant_workflows_key(request.tenant_id)):
        pipe.zadd(index, {member: 0})
        pipe.zremrangebylex(index, "-", older)
    return 4


def _subject(field: str) -> str:
    """The conflict's subject in the machine's words, from the field that refused."""
    if field == "status":
        return "workflow"
    if field.endswith(":status"):
        return f"step {field.removesuffix(':status')}"
    return field.replace("_", " ")


def _record_or_none(
    workflow_id: str, wf: dict[str, str], steps: dict[str, str]
) -> WorkflowRecord | None:
    """The record, or None when the workflow is absent or only its tombstone is left."""
    if "status" not in wf:
        return None
    return _workflow_record(workflow_id, wf, steps)


def _workflow_record(workflow_id: str, wf: dict[str, str], steps: dict[str, str]) -> WorkflowRecord:
    plan = [PlannedStep.model_validate(s) for s in json.loads(wf.get("plan", "[]"))]
    created_at = datetime.fromisoformat(wf["created_at"])
    return WorkflowRecord(
        workflow_id=workflow_id,
        tenant_id=wf.get("tenant_id", "default"),
        status=WorkflowStatus(wf["status"]),
        task=wf.get("task", ""),
        options=WorkflowOptions.model_validate_json(wf.get("options", "{}")),
        created_at=created_at,
        updated_at=datetime.fromisoformat(wf["updated_at"]) if "updated_at" in wf else created_at,
        deadline_at=float(wf["deadline_at"]) if "deadline_at" in wf else None,
        steps=tuple(_step_record(step, steps) for step in plan),
        steps_total=int(wf.get("steps_total", "0")),
        steps_finished=int(wf.get("steps_finished", "0")),
        result=wf.get("result"),
        partial=wf.get("partial") == "1",
        error=json.loads(wf["error"]) if "error" in wf else None,
        usage=TokenUsage(
            prompt_tokens=int(wf.get("usage_prompt", "0")),
            completion_tokens=int(wf.get("usage_completion", "0")),
        ),
        final_event=_FINAL.validate_json(wf["final_event"]) if "final_event" in wf else None,
        planning_owner=wf.get(PLANNING_OWNER) or None,
        planning_lease_until=float(wf.get(PLANNING_LEASE_UNTIL, "0") or 0),
        input_requests=_input_requests(wf),
    )


def _input_requests(wf: dict[str, str]) -> tuple[InputRequest, ...]:
    requests = [
        InputRequest.model_validate_json(value)
        for name, value in wf.items()
        if name.startswith(INPUT_FIELD_PREFIX) and not name.endswith(":state")
    ]
    return tuple(sorted(requests, key=lambda r: (r.requested_at, r.request_id)))


def _step_record(step: PlannedStep, fields: dict[str, str]) -> StepRecord:
    data = json.loads(fields.get(step_data_field(step.step_id), "{}"))
    event = fields.get(step_event_field(step.step_id))
    return StepRecord(
        step_id=step.step_id,
        index=step.index,
        title=step.title,
        instruction=step.instruction,
        complexity=step.complexity,
        depends_on=step.depends_on,
        needs_approval=step.needs_approval,
        status=StepStatus(fields.get(step_status_field(step.step_id), StepStatus.PENDING)),
        attempt=int(data.get("attempt", 0)),
        iterations=int(data.get("iterations", 0)),
        usage=TokenUsage.model_validate(data.get("usage", {})),
        models=tuple(data.get("models", ())),
        result=data.get("result"),
        error=data.get("error"),
        outcome=_OUTCOME.validate_json(event) if event is not None else None,
        owner=fields.get(step_owner_field(step.step_id)) or None,
        lease_until=float(fields.get(step_lease_field(step.step_id), "0") or 0),
        checkpoint=_checkpoint(fields.get(step_checkpoint_field(step.step_id))),
    )


def _checkpoint(raw: str | None) -> StepCheckpoint | None:
    return StepCheckpoint.model_validate_json(raw) if raw else None


def _notice_args(events: Sequence[EventEnvelope]) -> list[str]:
    """``notice.lua``'s arguments: how many events, each one's type, id and JSON, and the
    statuses in which a workflow takes them."""
    args = [str(len(events))]
    for event in events:
        args += [event.type, event.event_id, event.model_dump_json()]
    return [*args, *_ACTIVE]


def _member_of(unsent: UnsentEvent) -> str:
    if not unsent.event_id:
        return unsent.workflow_id  # a first-layout note
    return outbox_member(unsent.workflow_id, unsent.event_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode_map(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}
