"""Which offset of a partition is safe to commit while records finish out of order.

Records of one partition run concurrently and finish in any order. Kafka
commits are cumulative (committing N marks everything below N done), so only
the contiguous prefix of finished records may be committed: the committable
offset is the lowest offset still in flight, or one past the highest offset
seen when nothing is in flight. A crash then redelivers exactly the records
whose effects may not be durable, and nothing else.

The tracker must remember every offset started at or after the lowest one
still in flight (``held``), finished or not: while one record is stuck, that
window grows with every later record of the partition. The consumer bounds
it by pausing the partition (``EventConsumer``'s back-pressure); the tracker
only reports its size.
"""

from __future__ import annotations

import heapq

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    def __init__(self) -> None:
        self._in_flight: set[int] = set()
        self._heap: list[int] = []
        self._next_after_seen: int | None = None
        self._last_committed: int | None = None

    def started(self, offset: int) -> None:
        self._in_flight.add(offset)
        heapq.heappush(self._heap, offset)
        if self._next_after_seen is None or offset + 1 > self._next_after_seen:
            self._next_after_seen = offset + 1

    def finished(self, offset: int) -> None:
        self._in_flight.discard(offset)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def lowest_in_flight(self) -> int | None:
        """The first offset not yet finished, while any is in flight (the consumer's lag
        counts from here)."""
        self._release_finished_prefix()
        return self._heap[0] if self._heap else None

    @property
    def held(self) -> int:
        """Offsets remembered: the lowest one in flight and every one started after it.

        These are the records a crash would redeliver, and what this tracker
        costs in memory; finished records below the lowest in flight are
        forgotten.
        """
        self._release_finished_prefix()
        return len(self._heap)

    def committable(self) -> int | None:
        """The offset to commit now, or None when it would not move the commit."""
        self._release_finished_prefix()
        candidate = self._heap[0] if self._heap else self._next_after_seen
        if candidate is None or candidate == self._last_committed:
            return None
        return candidate

    def mark_committed(self, offset: int) -> None:
        self._last_committed = offset

    def _release_finished_prefix(self) -> None:
        while self._heap and self._heap[0] not in self._in_flight:
            heapq.heappop(self._heap)
