"""The workflow store contract, deleting part: an ended workflow is purged, a running one kept.

A purged workflow reads as one that never was (record, log, listings, deadline,
outbox), and stays purged: neither a retried request nor a late event brings
it back.
"""

from __future__ import annotations

import time

import pytest

from tests.contract.test_workflow_listing import all_pages, cancelled, created, planning, tenant
from tests.contract.test_workflow_notices import waiting
from tributary_shared.core import machine
from tributary_shared.core.events import ErrorInfo, WorkflowFailed
from tributary_shared.core.machine import TransitionConflict
from tributary_shared.core.ports import WorkflowListing, WorkflowStillActive, WorkflowStore
from tributary_shared.core.status import WorkflowStatus


async def notes_of(store: WorkflowStore, workflow_id: str) -> list[str]:
    unsent = await store.unsent(time.time() + 60, limit=1_000_000)
    return [note.event_id for note in unsent if note.workflow_id == workflow_id]


async def test_an_ended_workflow_is_purged_and_reads_as_unknown(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    kept = await created(store, mine, second=1)
    gone = await created(store, mine, second=2)
    await cancelled(store, gone)
    assert await notes_of(store, gone)  # its events were never marked sent

    assert await store.purge(gone) is True

    assert await store.get_workflow(gone) is None
    assert await store.status(gone) == (None, None)
    assert await store.read_log(gone) == []
    assert await all_pages(listing, mine, limit=10) == [kept]
    assert gone not in await all_pages(listing, None, limit=500)
    assert await notes_of(store, gone) == []
    assert gone not in await store.overdue(time.time() + 3600, limit=1_000_000)
    assert await store.get_workflow(kept) is not None


async def test_a_failed_workflow_is_purged_too(store: WorkflowStore) -> None:
    failed = await created(store, tenant(), second=1)
    error = ErrorInfo(code="x", message="it broke", error_class="logic")
    await store.apply(machine.fail(WorkflowFailed(workflow_id=failed, error=error)))
    assert await store.purge(failed) is True
    assert await store.get_workflow(failed) is None


@pytest.mark.parametrize("advance", [None, "planning"])
async def test_a_workflow_that_has_not_ended_is_not_purged(
    store: WorkflowStore, listing: WorkflowListing, advance: str | None
) -> None:
    mine = tenant()
    running = await created(store, mine, second=1)
    if advance == "planning":
        await planning(store, running)
    with pytest.raises(WorkflowStillActive) as refused:
        await store.purge(running)
    expected = WorkflowStatus.PLANNING if advance else WorkflowStatus.PENDING
    assert refused.value.status is expected
    record = await store.get_workflow(running)
    assert record is not None
    assert record.status is expected
    assert len(await store.read_log(running)) >= 1
    assert await all_pages(listing, mine, limit=10) == [running]


async def test_purging_twice_or_an_unknown_workflow_finds_nothing(store: WorkflowStore) -> None:
    gone = await created(store, tenant(), second=1)
    await cancelled(store, gone)
    assert await store.purge(gone) is True
    assert await store.purge(gone) is False
    assert await store.purge("wf_" + "0" * 32) is False


async def test_a_retried_request_does_not_bring_a_purged_workflow_back(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    first = await created(store, mine, second=1, key="order-7")
    await cancelled(store, first)
    await store.purge(first)

    again = await created(store, mine, second=2, key="order-7")

    assert again == first  # the key still names it ...
    assert await store.get_workflow(first) is None  # ... and it stays deleted
    assert await store.read_log(first) == []
    assert await all_pages(listing, mine, limit=10) == []


async def test_a_late_event_does_not_bring_a_purged_workflow_back(store: WorkflowStore) -> None:
    gone = await created(store, tenant(), second=1)
    await cancelled(store, gone)
    await store.purge(gone)
    with pytest.raises(TransitionConflict):
        await cancelled(store, gone)
    assert await store.write_notices(gone, [waiting(gone)]) is False
    assert await store.get_workflow(gone) is None
    assert await store.read_log(gone) == []
