"""Back-pressure rules: which partitions to pause, and how many fetched records may start.

Two limits bound what one consumer process takes on:

- the in-flight cap: records being handled at once, across all partitions
  (LLM calls, connections, memory);
- the window per partition: offsets its tracker holds (``PartitionOffsets.held``).
  While one record is stuck, every later record of its partition is held
  until the stuck one finishes; without a bound that grows with the topic.

Pausing a partition stops fetching from it without leaving the group. In
aiokafka the paused flag belongs to the partition's assignment state, which
every rebalance creates afresh and unpaused; so the runtime recomputes the
set to pause from the current assignment before every fetch, never from a
flag of its own. Records a fetch returns beyond the limits anyway (a
rebalance between pausing and fetching) are not started: the consumer seeks
back to them so they are fetched again when there is room.

These functions are pure; ``EventConsumer`` applies them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

__all__ = ["admissible", "partitions_to_pause"]

Partition = TypeVar("Partition")


def partitions_to_pause(
    assigned: Iterable[Partition],
    *,
    free_slots: int,
    held: Mapping[Partition, int],
    max_held: int,
) -> set[Partition]:
    """The assigned partitions that must not be fetched from now.

    Every one when the in-flight cap is reached; otherwise those whose
    window is full. The others are to be fetched (resumed if paused).
    """
    if free_slots <= 0:
        return set(assigned)
    return {tp for tp in assigned if held.get(tp, 0) >= max_held}


def admissible(*, free_slots: int, held: int, max_held: int) -> int:
    """How many records of one partition may start now, given both limits."""
    return max(0, min(free_slots, max_held - held))
