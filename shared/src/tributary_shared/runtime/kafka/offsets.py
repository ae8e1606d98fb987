"""Which offset of a partition is safe to commit while records finish out of order.

Records of one partition run concurrently and finish in any order. Kafka
commits are cumulative (committing N marks everything below N done), so only
the contiguous prefix of finished records may be committed: the committable
offset is the lowest offset still in flight, or one past the highest offset
seen when nothing is in flight. A crash then redelivers exactly the records
whose effects may not be durable, and nothing else.
"""

from __future__ import annotations

import heapq


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

    def committable(self) -> int | None:
        """The offset to commit now, or None when it would not move the commit."""
        while self._heap and self._heap[0] not in self._in_flight:
            heapq.heappop(self._heap)
        candidate = self._heap[0] if self._heap else self._next_after_seen
        if candidate is None or candidate == self._last_committed:
            return None
        return candidate

    def mark_committed(self, offset: int) -> None:
        self._last_committed = offset
