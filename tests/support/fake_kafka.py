"""An in-memory stand-in for aiokafka's consumer, to drive ``EventConsumer`` through rebalances.

It keeps the aiokafka behaviour back-pressure depends on:

- pausing belongs to a partition's assignment state: every assignment starts
  unpaused, whatever was paused before;
- a paused partition returns no records, even ones already fetched;
- a newly assigned partition is read from its committed offset, so records
  started but not committed before a revocation come again;
- the group protocol is eager: a rebalance revokes every partition, then
  assigns the new set, calling the listener around it.

A rebalance can also be set to happen inside the next fetch, with records
returned before the listener hears of the new assignment (aiokafka installs
the assignment, awaits, then calls the listener): the window in which only the
fetch loop itself can hold the limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from tributary_shared.core.events import WorkflowRequested, encode_event

__all__ = ["FakeKafkaConsumer", "request_log"]


def request_log(tp: TopicPartition, count: int) -> list[ConsumerRecord[Any, Any]]:
    """``count`` records of ``tp``, each a new workflow's request (so no two share a lane)."""
    records = []
    for offset in range(count):
        workflow_id = f"wf_{tp.partition}_{offset}"
        value = encode_event(WorkflowRequested(workflow_id=workflow_id, task="t"))
        records.append(
            ConsumerRecord(
                topic=tp.topic,
                partition=tp.partition,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=workflow_id.encode(),
                value=value,
                checksum=None,
                serialized_key_size=len(workflow_id),
                serialized_value_size=len(value),
                headers=(),
            )
        )
    return records


class FakeKafkaConsumer:
    def __init__(self, logs: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        self.logs = logs
        self.committed: dict[TopicPartition, int] = {}
        self.fetches = 0
        self._listener: ConsumerRebalanceListener | None = None
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._rebalance_in_fetch: tuple[set[TopicPartition], bool] | None = None

    # -- the aiokafka surface EventConsumer uses ---------------------------------

    def subscribe(self, *, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        self._listener = listener

    async def start(self) -> None:
        await self.rebalance(set(self.logs))

    async def stop(self) -> None:
        self._assigned = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused & self._assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(self._only_assigned(partitions))

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(self._only_assigned(partitions))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._only_assigned([tp])
        self._positions[tp] = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self._only_assigned(offsets)
        self.committed.update(offsets)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs[tp]) for tp in partitions}

    async def position(self, tp: TopicPartition) -> int:
        self._only_assigned([tp])
        return self._positions[tp]

    async def getmany(
        self, *, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        self.fetches += 1
        fetched_before_listener: set[TopicPartition] | None = None
        if self._rebalance_in_fetch is not None:
            assigned, before_listener = self._rebalance_in_fetch
            self._rebalance_in_fetch = None
            if before_listener:
                await self._revoke_all()
                self._install(assigned)
                fetched_before_listener = assigned
            else:
                await self.rebalance(assigned)
        batches = self._take(max_records)
        if fetched_before_listener is not None:
            assert self._listener is not None
            await self._listener.on_partitions_assigned(fetched_before_listener)
        # A real fetch waits up to timeout_ms when there is nothing to return;
        # a short pause keeps tests fast. Yield in any case, as a real fetch
        # would, so a loop that keeps fetching cannot starve the handlers.
        await asyncio.sleep(0 if batches else 0.001)
        return batches

    # -- what a test drives --------------------------------------------------------

    async def rebalance(self, assigned: set[TopicPartition]) -> None:
        """An eager rebalance: revoke everything, then assign ``assigned`` afresh."""
        await self._revoke_all()
        self._install(assigned)
        assert self._listener is not None
        await self._listener.on_partitions_assigned(set(assigned))

    def rebalance_during_next_fetch(
        self, assigned: set[TopicPartition], *, records_before_listener: bool
    ) -> None:
        self._rebalance_in_fetch = (set(assigned), records_before_listener)

    # -- internals -------------------------------------------------------------------

    async def _revoke_all(self) -> None:
        assert self._listener is not None
        if self._assigned:
            await self._listener.on_partitions_revoked(set(self._assigned))
        self._assigned = set()

    def _install(self, assigned: set[TopicPartition]) -> None:
        # Fresh partition state, as aiokafka creates on every assignment.
        self._assigned = set(assigned)
        self._paused = set()
        self._positions = {tp: self.committed.get(tp, 0) for tp in assigned}

    def _take(self, max_records: int) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = {}
        budget = max_records
        for tp in sorted(self._assigned - self._paused):
            if budget <= 0:
                break
            position = self._positions[tp]
            records = self.logs[tp][position : position + budget]
            if records:
                batches[tp] = records
                self._positions[tp] = position + len(records)
                budget -= len(records)
        return batches

    def _only_assigned(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        partitions = set(partitions)
        stray = partitions - self._assigned
        if stray:
            # aiokafka raises IllegalStateError for partitions not assigned.
            raise AssertionError(f"not assigned: {stray}")
        return partitions
