"""The workflow store contract for notices: events in a workflow's log that change no state.

Notices (an ``llm.waiting``, a call record and its payload parts) go into the
log of an active workflow, after what is there, and change nothing else;
``write_notices`` notes each one in the outbox and appends them all, in order,
or none: once the workflow has ended (its keys expiring) or when it does not
exist, nothing is appended.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from tributary_devstack.stack import Stack
from tributary_shared.core import machine
from tributary_shared.core.events import (
    ErrorInfo,
    EventEnvelope,
    LLMWaiting,
    WorkflowCancelled,
    WorkflowRequested,
)
from tributary_shared.core.ports import WorkflowStore
from tributary_shared.core.redaction import Redactor, redact_event
from tributary_shared.runtime.redaction import RedactingStore
from tributary_shared.twins import MemoryWorkflowStore


def waiting(workflow_id: str) -> LLMWaiting:
    now = datetime.now(UTC)
    return LLMWaiting(
        workflow_id=workflow_id,
        role="planner",
        model="gpt-4o-mini",
        deployment="default",
        error=ErrorInfo(code="llm_unavailable", message="down", error_class="transient"),
        attempt=1,
        waiting_since=now,
        next_try_at=now,
    )


async def created(store: WorkflowStore) -> str:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    request = WorkflowRequested(workflow_id=workflow_id, task="t")
    await store.create_workflow(request, deadline_at=time.time() + 600)
    return workflow_id


async def noted(store: WorkflowStore, workflow_id: str) -> set[str]:
    unsent = await store.unsent(time.time() + 1, limit=1_000_000)  # Redis: other tests' too
    return {n.event_id for n in unsent if n.workflow_id == workflow_id}


async def test_written_notices_are_noted_unsent_and_appended_in_order(
    store: WorkflowStore,
) -> None:
    workflow_id = await created(store)
    before = await store.get_workflow(workflow_id)
    notices = [waiting(workflow_id) for _ in range(3)]

    assert await store.write_notices(workflow_id, notices)

    log = await store.read_log(workflow_id)
    assert [entry.type for entry in log] == ["workflow.requested", *["llm.waiting"] * 3]
    assert [LLMWaiting.model_validate_json(e.event_json) for e in log[1:]] == notices
    assert {n.event_id for n in notices} <= await noted(store, workflow_id)
    assert await store.get_workflow(workflow_id) == before
    await store.mark_sent(notices)
    assert {n.event_id for n in notices}.isdisjoint(await noted(store, workflow_id))


async def test_no_written_notice_follows_the_end_of_a_workflow(store: WorkflowStore) -> None:
    workflow_id = await created(store)
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))

    assert not await store.write_notices(workflow_id, [waiting(workflow_id), waiting(workflow_id)])

    log = await store.read_log(workflow_id)
    assert [entry.type for entry in log] == ["workflow.requested", "workflow.cancelled"]


async def test_written_notices_for_an_unknown_workflow_write_no_log(store: WorkflowStore) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"

    assert not await store.write_notices(workflow_id, [waiting(workflow_id)])

    assert await store.read_log(workflow_id) == []


async def test_written_notices_survive_a_redis_that_forgot_its_scripts(
    store: WorkflowStore, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "memory":
        pytest.skip("only Redis forgets its scripts (a restart without persistence)")
    stack: Stack = request.getfixturevalue("stack")
    redis = Redis.from_url(f"redis://127.0.0.1:{stack.config.redis_port}/0")
    workflow_id = await created(store)
    await redis.script_flush()
    await redis.aclose()

    assert await store.write_notices(workflow_id, [waiting(workflow_id)])

    log = await store.read_log(workflow_id)
    assert [entry.type for entry in log] == ["workflow.requested", "llm.waiting"]


async def test_writing_no_notices_writes_nothing(store: WorkflowStore) -> None:
    workflow_id = await created(store)
    none: list[EventEnvelope] = []

    assert await store.write_notices(workflow_id, none)

    assert [entry.type for entry in await store.read_log(workflow_id)] == ["workflow.requested"]


async def test_written_notices_are_redacted_as_every_event_the_workers_write() -> None:
    store = MemoryWorkflowStore()
    workflow_id = await created(store)
    leaky = waiting(workflow_id).model_copy(
        update={
            "error": ErrorInfo(
                code="llm_unavailable",
                message="refused by redis://app:hunter2-db-pass@db:6379",
                error_class="transient",
            )
        }
    )

    assert await RedactingStore(store, Redactor()).write_notices(workflow_id, [leaky])

    [_, logged] = await store.read_log(workflow_id)
    assert "hunter2-db-pass" not in logged.event_json
    assert LLMWaiting.model_validate_json(logged.event_json) == redact_event(leaky, Redactor())
