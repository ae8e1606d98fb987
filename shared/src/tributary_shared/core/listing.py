"""Listing workflows: filters, seeking by creation time, and a scan bounded per page.

Pure rules, no I/O. A listing index holds one member per workflow,
``<created, µs, 17 digits>-<workflow id>`` (``core.keys.listing_member``), so the
lexical order of members is the order of creation: a time bound or a cursor is
a bound of the range read (a seek), never a filter over what was read. Every
other filter (status, metadata) is checked on the records, so a page reads at
most ``LISTING_SCAN_ENTRIES`` index entries and stops there with a cursor:
a page may hold fewer workflows than asked while more follow.

Both the Redis store and its twin page through ``scan_listing``, so they agree
on where a page stops.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tributary_shared.core.events import METADATA_MAX_KEY_CHARS, METADATA_MAX_VALUE_CHARS
from tributary_shared.core.keys import listing_bound, listing_member, listing_start
from tributary_shared.core.records import WorkflowPage, WorkflowRecord
from tributary_shared.core.status import WorkflowStatus

__all__ = [
    "LISTING_SCAN_ENTRIES",
    "METADATA_FILTERS_MAX",
    "ORPHAN_ENTRY_GRACE_S",
    "InvalidFilter",
    "ListingEntry",
    "ListingRange",
    "WorkflowFilter",
    "scan_listing",
]

LISTING_SCAN_ENTRIES = 500
"""Most index entries one page reads, whatever its filters: the work of a request
stays bounded even when few workflows match."""
METADATA_FILTERS_MAX = 8
"""Most ``key:value`` pairs one listing may require."""
ORPHAN_ENTRY_GRACE_S = 300.0
"""An entry this much older than now whose workflow is gone names one that expired
or was deleted, and is dropped from the index; a younger one may belong to a
workflow being created right now (its entry is written just before its record)."""


class InvalidFilter(ValueError):
    """A filter breaks a rule; ``parameter`` names the filter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True, slots=True)
class WorkflowFilter:
    """What a listed workflow must be; an empty filter lists every workflow.

    ``statuses``: any of them (empty: any status). ``created_after`` and
    ``created_before`` are exclusive bounds on the creation time (timezone-aware).
    ``metadata``: pairs that must all be in the workflow's metadata, exactly.
    Raises ``InvalidFilter`` naming the filter when a rule is broken.
    """

    statuses: frozenset[WorkflowStatus] = frozenset()
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name, moment in (
            ("created_after", self.created_after),
            ("created_before", self.created_before),
        ):
            if moment is not None and moment.utcoffset() is None:
                raise InvalidFilter(name, "must carry a timezone offset (RFC 3339)")
        if (
            self.created_after is not None
            and self.created_before is not None
            and self.created_after >= self.created_before
        ):
            raise InvalidFilter("created_after", "must be earlier than created_before")
        if len(self.metadata) > METADATA_FILTERS_MAX:
            raise InvalidFilter("metadata", f"at most {METADATA_FILTERS_MAX} key:value pairs")
        for key, value in self.metadata:
            if not 1 <= len(key) <= METADATA_MAX_KEY_CHARS:
                raise InvalidFilter(
                    "metadata", f"keys have 1 to {METADATA_MAX_KEY_CHARS} characters"
                )
            if len(value) > METADATA_MAX_VALUE_CHARS:
                raise InvalidFilter(
                    "metadata", f"values have at most {METADATA_MAX_VALUE_CHARS} characters"
                )

    def matches(self, record: WorkflowRecord) -> bool:
        """Whether the record passes the filters that are not a bound of the range."""
        if self.statuses and record.status not in self.statuses:
            return False
        labels = record.options.metadata
        return all(labels.get(key) == value for key, value in self.metadata)

    def range(self, cursor: str | None) -> ListingRange:
        """The index range a page reads: below the cursor, within the time bounds."""
        upper = cursor
        if self.created_before is not None:
            before = listing_bound(self.created_before)
            upper = before if upper is None else min(upper, before)
        lower = None
        if self.created_after is not None:
            # Members of the bound's own microsecond sort after its bare digits:
            # start at the next microsecond, so the bound stays exclusive.
            lower = listing_bound(self.created_after + timedelta(microseconds=1))
        return ListingRange(below=upper, from_=lower)


@dataclass(frozen=True, slots=True)
class ListingRange:
    """A range of listing members: below ``below`` (exclusive), from ``from_`` (inclusive).

    None leaves that end open. ``below`` is a whole member (a cursor) or the
    digits of a time; either compares correctly with members.
    """

    below: str | None
    from_: str | None


ListingEntry = tuple[str, WorkflowRecord | None]
FetchEntries = Callable[[ListingRange, int], Awaitable[list[ListingEntry]]]
"""Reads at most ``count`` members of the range, newest first, each with its
workflow's record (None when the workflow is gone)."""


async def scan_listing(
    fetch: FetchEntries,
    *,
    tenant_id: str | None,
    limit: int,
    cursor: str | None,
    filters: WorkflowFilter,
    now: float,
    scan: int = LISTING_SCAN_ENTRIES,
) -> tuple[WorkflowPage, list[str]]:
    """A page of matching workflows, and the entries to drop from the index.

    Reads at most ``scan`` entries. The page's cursor is the last entry read
    whenever more may follow, so the next page goes on where this one stopped.
    Entries to drop: those of workflows gone for longer than the grace, and those
    of a create that lost to an earlier attempt (its record has another time).
    """
    window = filters.range(cursor)
    listed: list[WorkflowRecord] = []
    stale: list[str] = []
    read = 0
    last: str | None = None
    while read < scan:
        count = min(scan - read, max(limit - len(listed), 1) * 2, 100)
        entries = await fetch(window, count)
        for member, record in entries:
            read += 1
            last = member
            if record is None:
                if _older_than_grace(member, now):
                    stale.append(member)
            elif listing_member(record.created_at, record.workflow_id) != member:
                stale.append(member)
            elif (tenant_id is None or record.tenant_id == tenant_id) and filters.matches(record):
                listed.append(record)
                if len(listed) == limit:
                    return WorkflowPage(records=tuple(listed), next_cursor=member), stale
        if len(entries) < count:  # the range is exhausted
            return WorkflowPage(records=tuple(listed), next_cursor=None), stale
        window = ListingRange(below=last, from_=window.from_)
    return WorkflowPage(records=tuple(listed), next_cursor=last), stale


def _older_than_grace(member: str, now: float) -> bool:
    return member < listing_start(now - ORPHAN_ENTRY_GRACE_S)
