"""The workflow store contract, listing part: a tenant's workflows, newest first, page by page,
filtered by status, creation time and metadata.

The Redis server is shared with other tests, so each test names its own tenants
and, listing every tenant, looks only at its own workflows.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tributary_shared.core import machine
from tributary_shared.core.events import WorkflowCancelled, WorkflowOptions, WorkflowRequested
from tributary_shared.core.listing import InvalidFilter, WorkflowFilter
from tributary_shared.core.ports import WorkflowListing, WorkflowStore
from tributary_shared.core.status import WorkflowStatus

START = datetime.now(UTC)


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def created(
    store: WorkflowStore,
    tenant_id: str,
    *,
    second: int,
    key: str | None = None,
    task: str = "t",
    metadata: dict[str, str] | None = None,
) -> str:
    request = WorkflowRequested(
        workflow_id=f"wf_{uuid.uuid4().hex}",
        tenant_id=tenant_id,
        task=task,
        options=WorkflowOptions(metadata=metadata or {}),
        occurred_at=at(second),
    )
    existing = await store.create_workflow(
        request, deadline_at=time.time() + 600, idempotency_key_value=key
    )
    return existing or request.workflow_id


def at(second: int) -> datetime:
    return START + timedelta(seconds=second)


async def cancelled(store: WorkflowStore, workflow_id: str) -> None:
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))


async def planning(store: WorkflowStore, workflow_id: str) -> None:
    now = time.time()
    await store.apply(machine.start_planning(workflow_id, owner="p", lease_until=now + 60, now=now))


async def all_pages(
    listing: WorkflowListing,
    tenant_id: str | None,
    *,
    limit: int,
    filters: WorkflowFilter | None = None,
    scan: int | None = None,
) -> list[str]:
    listed: list[str] = []
    cursor: str | None = None
    bound = {} if scan is None else {"scan": scan}
    for _ in range(100):
        page = await listing.list_workflows(
            tenant_id=tenant_id, limit=limit, cursor=cursor, filters=filters, **bound
        )
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


async def listed(
    listing: WorkflowListing, tenant_id: str, filters: WorkflowFilter, *, limit: int = 50
) -> list[str]:
    page = await listing.list_workflows(tenant_id=tenant_id, limit=limit, filters=filters)
    return [r.workflow_id for r in page.records]


async def test_a_status_filter_lists_the_workflows_in_one_of_its_statuses(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    waiting = await created(store, mine, second=1)
    stopped = await created(store, mine, second=2)
    await cancelled(store, stopped)
    planned = await created(store, mine, second=3)
    await planning(store, planned)

    only_cancelled = WorkflowFilter(statuses=frozenset({WorkflowStatus.CANCELLED}))
    assert await listed(listing, mine, only_cancelled) == [stopped]
    active = WorkflowFilter(statuses=frozenset({WorkflowStatus.PENDING, WorkflowStatus.PLANNING}))
    assert await listed(listing, mine, active) == [planned, waiting]
    none = WorkflowFilter(statuses=frozenset({WorkflowStatus.COMPLETED}))
    assert await listed(listing, mine, none) == []


async def test_time_bounds_are_exclusive_and_combine_with_the_cursor(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    ids = {s: await created(store, mine, second=s) for s in range(1, 7)}
    window = WorkflowFilter(created_after=at(2), created_before=at(5))
    assert await listed(listing, mine, window) == [ids[4], ids[3]]
    assert await listed(listing, mine, WorkflowFilter(created_after=at(4))) == [ids[6], ids[5]]
    assert await listed(listing, mine, WorkflowFilter(created_before=at(2))) == [ids[1]]
    # Page by page: the cursor and the bound together, neither lets the other through.
    assert await all_pages(listing, mine, limit=1, filters=window) == [ids[4], ids[3]]


async def test_time_bounds_seek_instead_of_reading_the_newer_workflows(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    old = await created(store, mine, second=1)
    for s in range(10, 20):
        await created(store, mine, second=s)
    # Two entries read at most, yet the bound skips the ten newer ones at once.
    page = await listing.list_workflows(
        tenant_id=mine, limit=5, filters=WorkflowFilter(created_before=at(5)), scan=2
    )
    assert [r.workflow_id for r in page.records] == [old]
    assert page.next_cursor is None


async def test_metadata_filters_match_exactly_and_all_of_them(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    both = await created(store, mine, second=1, metadata={"team": "x", "env": "prod"})
    team = await created(store, mine, second=2, metadata={"team": "x"})
    await created(store, mine, second=3, metadata={"team": "y", "env": "prod"})
    await created(store, mine, second=4, metadata={"team": "xx", "env": ""})

    assert await listed(listing, mine, WorkflowFilter(metadata=(("team", "x"),))) == [team, both]
    assert await listed(
        listing, mine, WorkflowFilter(metadata=(("team", "x"), ("env", "prod")))
    ) == [both]
    assert await listed(listing, mine, WorkflowFilter(metadata=(("team", "X"),))) == []
    assert await listed(listing, mine, WorkflowFilter(metadata=(("owner", ""),))) == []


async def test_filters_combine(store: WorkflowStore, listing: WorkflowListing) -> None:
    mine = tenant()
    match = await created(store, mine, second=3, metadata={"team": "x"})
    await cancelled(store, match)
    await created(store, mine, second=4, metadata={"team": "x"})  # pending
    early = await created(store, mine, second=1, metadata={"team": "x"})
    await cancelled(store, early)
    other = await created(store, mine, second=5, metadata={"team": "y"})
    await cancelled(store, other)
    filters = WorkflowFilter(
        statuses=frozenset({WorkflowStatus.CANCELLED}),
        created_after=at(2),
        metadata=(("team", "x"),),
    )
    assert await listed(listing, mine, filters) == [match]


async def test_pages_of_a_filtered_listing_follow_each_other_without_gaps_or_repeats(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    matching: list[str] = []
    for s in range(1, 13):
        workflow_id = await created(store, mine, second=s, metadata={"pick": str(s % 3 == 0)})
        if s % 3 == 0:
            matching.append(workflow_id)
    picked = WorkflowFilter(metadata=(("pick", "True"),))
    assert await all_pages(listing, mine, limit=1, filters=picked) == matching[::-1]
    assert await all_pages(listing, mine, limit=3, filters=picked, scan=2) == matching[::-1]


async def test_a_page_stops_after_its_scan_with_a_cursor_while_more_may_follow(
    store: WorkflowStore, listing: WorkflowListing
) -> None:
    mine = tenant()
    match = await created(store, mine, second=1, metadata={"team": "x"})
    for s in range(2, 8):
        await created(store, mine, second=s, metadata={"team": "y"})
    team = WorkflowFilter(metadata=(("team", "x"),))
    first = await listing.list_workflows(tenant_id=mine, limit=10, filters=team, scan=4)
    assert first.records == ()
    assert first.next_cursor is not None  # four of seven read: it goes on from there
    second = await listing.list_workflows(
        tenant_id=mine, limit=10, cursor=first.next_cursor, filters=team, scan=4
    )
    assert [r.workflow_id for r in second.records] == [match]
    assert second.next_cursor is None


def test_a_filter_refuses_an_empty_time_window_and_unbounded_metadata() -> None:
    with pytest.raises(InvalidFilter) as empty:
        WorkflowFilter(created_after=at(2), created_before=at(2))
    assert empty.value.parameter == "created_after"
    with pytest.raises(InvalidFilter) as naive:
        WorkflowFilter(created_before=datetime(2026, 1, 1))
    assert naive.value.parameter == "created_before"
    with pytest.raises(InvalidFilter) as many:
        WorkflowFilter(metadata=tuple((f"k{i}", "v") for i in range(9)))
    assert many.value.parameter == "metadata"
    with pytest.raises(InvalidFilter):
        WorkflowFilter(metadata=(("", "v"),))
    with pytest.raises(InvalidFilter):
        WorkflowFilter(metadata=(("k", "v" * 1025),))
