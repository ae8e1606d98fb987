"""The workflow store contract, Idempotency-Key part: whatever attempt dies where, the key
ends up naming a workflow that exists, and every written workflow has its deadline indexed.

The crash points are injected into the store itself (``crash_before_writing``,
``crash_after_writing``): the same failures on the twin and on Redis.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tributary_shared.core.events import WorkflowRequested
from tributary_shared.core.machine import Transition
from tributary_shared.core.ports import WorkflowStore
from tributary_shared.core.records import Applied
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.state import RedisWorkflowStore


class Crashed(Exception):
    """The process died here."""


def new_id() -> str:
    return f"wf_{uuid.uuid4().hex}"


def requested(task: str = "t") -> WorkflowRequested:
    return WorkflowRequested(workflow_id=new_id(), task=task)


def crash_before_writing(store: WorkflowStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next workflow write never happens: the process dies just before it."""
    real = store.apply

    async def dies(transition: Transition) -> Applied:
        monkeypatch.setattr(store, "apply", real)
        raise Crashed

    monkeypatch.setattr(store, "apply", dies)


def crash_after_writing(store: WorkflowStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next workflow write happens, and the process dies right after it."""
    if isinstance(store, RedisWorkflowStore):
        # The round trip with the script is the write; what the store does after it is lost.
        write: Callable[..., Awaitable[Any]] = store._write

        async def written_then_dies(*args: Any, **kwargs: Any) -> Any:
            await write(*args, **kwargs)
            raise Crashed

        monkeypatch.setattr(store, "_write", written_then_dies)
        return
    real = store.apply

    async def applied_then_dies(transition: Transition) -> Applied:
        await real(transition)
        raise Crashed

    monkeypatch.setattr(store, "apply", applied_then_dies)


async def logged_requests(store: WorkflowStore, workflow_id: str) -> list[WorkflowRequested]:
    return [
        WorkflowRequested.model_validate_json(entry.event_json)
        for entry in await store.read_log(workflow_id)
        if entry.type == "workflow.requested"
    ]


async def test_a_key_whose_first_attempt_died_names_the_workflow_the_retry_writes(
    store: WorkflowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, deadline = uuid.uuid4().hex, time.time() + 600
    first, retry = requested(), requested()
    crash_before_writing(store, monkeypatch)
    with pytest.raises(Crashed):
        await store.create_workflow(first, deadline_at=deadline, idempotency_key_value=key)

    named = await store.create_workflow(retry, deadline_at=deadline, idempotency_key_value=key)

    assert named == first.workflow_id
    record = await store.get_workflow(first.workflow_id)
    assert record is not None, "the key names a workflow that does not exist"
    assert (record.status, record.task) == (WorkflowStatus.PENDING, "t")
    # What a retry must publish: the logged request, under the id the key names.
    [logged] = await logged_requests(store, first.workflow_id)
    assert (logged.workflow_id, logged.event_id) == (first.workflow_id, retry.event_id)
    assert first.workflow_id in await store.overdue(deadline + 1, limit=1_000_000)
    assert await store.get_workflow(retry.workflow_id) is None

    again = requested()
    assert (
        await store.create_workflow(again, deadline_at=deadline, idempotency_key_value=key)
        == first.workflow_id
    )
    assert len(await logged_requests(store, first.workflow_id)) == 1


async def test_a_retry_racing_the_first_attempt_leaves_one_workflow(
    store: WorkflowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry arrives while the first attempt has claimed the key but not written yet."""
    key, deadline = uuid.uuid4().hex, time.time() + 600
    first, retry = requested(), requested()
    real = store.apply
    answers: list[str | None] = []

    async def overtaken(transition: Transition) -> Applied:
        monkeypatch.setattr(store, "apply", real)
        answers.append(
            await store.create_workflow(retry, deadline_at=deadline, idempotency_key_value=key)
        )
        return await real(transition)

    monkeypatch.setattr(store, "apply", overtaken)
    named = await store.create_workflow(first, deadline_at=deadline, idempotency_key_value=key)

    # Neither attempt wrote its own request: both are told which workflow to send.
    assert answers == [first.workflow_id]
    assert named == first.workflow_id
    [logged] = await logged_requests(store, first.workflow_id)
    assert logged.event_id == retry.event_id


async def test_the_same_request_sent_twice_with_its_key_is_found_not_refused(
    store: WorkflowStore,
) -> None:
    key, deadline = uuid.uuid4().hex, time.time() + 600
    first = requested()
    assert (
        await store.create_workflow(first, deadline_at=deadline, idempotency_key_value=key) is None
    )
    assert (
        await store.create_workflow(first, deadline_at=deadline, idempotency_key_value=key)
        == first.workflow_id
    )


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "idempotency-key"])
async def test_a_workflow_written_before_a_crash_has_its_deadline_indexed(
    store: WorkflowStore, monkeypatch: pytest.MonkeyPatch, keyed: bool
) -> None:
    """Otherwise a ``pending`` workflow that nobody sent would never end."""
    deadline = time.time() + 600
    event = requested()
    crash_after_writing(store, monkeypatch)
    with pytest.raises(Crashed):
        await store.create_workflow(
            event, deadline_at=deadline, idempotency_key_value=uuid.uuid4().hex if keyed else None
        )
    assert await store.status(event.workflow_id) == (WorkflowStatus.PENDING, deadline)
    assert event.workflow_id in await store.overdue(deadline + 1, limit=1_000_000)
