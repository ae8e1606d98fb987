"""The workflow store contract, listing part: a tenant's workflows, newest first, page by page.

The Redis server is shared with other tests, so each test names its own tenants
and, listing every tenant, looks only at its own workflows.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.contract.conftest import Adapters
from tributary_shared.core.events import WorkflowRequested
from tributary_shared.core.ports import WorkflowListing, WorkflowStore

START = datetime.now(UTC)


@pytest.fixture
def listing(adapters: Adapters) -> WorkflowListing:
    return adapters.listing


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def created(
    store: WorkflowStore, tenant_id: str, *, second: int, key: str | None = None, task: str = "t"
) -> str:
    request = WorkflowRequested(
        workflow_id=f"wf_{uuid.uuid4().hex}",
        tenant_id=tenant_id,
        task=task,
        occurred_at=START + timedelta(seconds=second),
    )
    existing = await store.create_workflow(
        request, deadline_at=time.time() + 600, idempotency_key_value=key
    )
    return existing or request.workflow_id


async def all_pages(listing: WorkflowListing, tenant_id: str | None, *, limit: int) -> list[str]:
    listed: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        page = await listing.list_workflows(tenant_id=tenant_id, limit=limit, cursor=cursor)
        listed.extend(r.workflow_id for r in page.records)
        if page.next_cursor is None:
            return listed
        cursor = page.next_cursor
    raise AssertionError("the listing never ended")


async def test_a_tenant_sees_its_own_workflows_newest_first(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine, theirs = tenant(), tenant()
    a = await created(store, mine, second=1)
    other = await created(store, theirs, second=2)
    b = await created(store, mine, second=3)
    page = await listing.list_workflows(tenant_id=mine, limit=10)
    assert [r.workflow_id for r in page.records] == [b, a]
    assert {r.tenant_id for r in page.records} == {mine}
    assert page.next_cursor is None
    assert [
        r.workflow_id for r in (await listing.list_workflows(tenant_id=theirs, limit=10)).records
    ] == [other]


async def test_pages_follow_each_other_without_gaps_or_repeats(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    # Two workflows created in the same microsecond still both appear, once.
    ids = [await created(store, mine, second=s) for s in (1, 2, 2, 3, 4, 5, 6)]
    listed = await all_pages(listing, mine, limit=2)
    assert sorted(listed) == sorted(ids)
    assert len(listed) == len(ids)
    assert listed[0] == ids[-1]
    assert listed[-1] == ids[0]


async def test_listing_every_tenant_shows_each_tenants_workflows(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    first, second = tenant(), tenant()
    a = await created(store, first, second=1)
    b = await created(store, second, second=2)
    listed = await all_pages(listing, None, limit=500)
    assert [w for w in listed if w in {a, b}] == [b, a]


async def test_a_retried_request_is_listed_once(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    first = await created(store, mine, second=1, key="order-1")
    again = await created(store, mine, second=2, key="order-1")
    assert again == first
    assert await all_pages(listing, mine, limit=10) == [first]


async def test_an_unknown_tenant_has_an_empty_listing(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    page = await listing.list_workflows(tenant_id=tenant(), limit=10)
    assert page.records == ()
    assert page.next_cursor is None
