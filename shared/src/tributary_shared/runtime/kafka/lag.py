"""Consumer lag per assigned partition, measured by the consumer itself.

Lag here is what the group still has to finish of a partition: its end offset
less the lowest offset this consumer has in flight, or less the fetch position
when nothing is in flight. Records fetched but unfinished count as lag, as
they would after a crash. End offsets come from one ListOffsets request per
broker every ``interval_s``, which is cheap; aiokafka's highwater is not used
because a paused partition (back-pressure) is not fetched, so its highwater
would stand still exactly when lag grows.

Series of partitions no longer assigned are removed, so a revoked partition
does not go on reporting the last lag it had here while another replica owns it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from aiokafka import TopicPartition
from prometheus_client import Gauge

from tributary_shared.runtime.metrics import CONSUMER_LAG_RECORDS

__all__ = ["ConsumerLag", "LagSource"]

log = logging.getLogger(__name__)


class LagSource(Protocol):
    """The part of aiokafka's consumer lag needs."""

    def assignment(self) -> set[TopicPartition]: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def position(self, partition: TopicPartition) -> int: ...


class ConsumerLag:
    def __init__(self, consumer_group: str, *, position_timeout_s: float = 1.0) -> None:
        self._group = consumer_group
        self._position_timeout_s = position_timeout_s
        self._reported: set[TopicPartition] = set()

    async def refresh(
        self, source: LagSource, lowest_in_flight: Callable[[], Mapping[TopicPartition, int]]
    ) -> None:
        """Measure every assigned partition once; forget the partitions no longer assigned.

        ``lowest_in_flight`` is read after the awaits, so it matches the
        assignment the gauges are set for.
        """
        assigned = sorted(source.assignment())
        ends = await source.end_offsets(assigned) if assigned else {}
        positions: dict[TopicPartition, int] = {}
        for tp in assigned:
            try:
                async with asyncio.timeout(self._position_timeout_s):
                    positions[tp] = await source.position(tp)
            except Exception:  # no position yet, or revoked meanwhile: measure next time
                log.debug("no position for %s yet", tp, exc_info=True)
        # No await below: the assignment cannot change while the gauges are set.
        current = source.assignment()
        in_flight = lowest_in_flight()
        measured: set[TopicPartition] = set()
        for tp in current:
            if tp not in ends:
                continue
            done_up_to = in_flight.get(tp, positions.get(tp))
            if done_up_to is None:
                continue
            self._gauge(tp).set(max(ends[tp] - done_up_to, 0))
            measured.add(tp)
        self.forget(self._reported - current)
        self._reported = (self._reported & current) | measured

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Remove the series of partitions this consumer no longer owns."""
        for tp in partitions & self._reported:
            CONSUMER_LAG_RECORDS.remove(self._group, tp.topic, str(tp.partition))
        self._reported -= partitions

    def forget_all(self) -> None:
        """Remove every series of this consumer (it stops)."""
        self.forget(set(self._reported))

    async def run(
        self,
        source: LagSource,
        lowest_in_flight: Callable[[], Mapping[TopicPartition, int]],
        *,
        interval_s: float,
    ) -> None:
        """Refresh every ``interval_s`` until cancelled; a failed refresh is retried next time."""
        while True:
            try:
                await self.refresh(source, lowest_in_flight)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("measuring consumer lag failed; retrying", exc_info=True)
            await asyncio.sleep(interval_s)

    def _gauge(self, tp: TopicPartition) -> Gauge:
        return CONSUMER_LAG_RECORDS.labels(self._group, tp.topic, str(tp.partition))
