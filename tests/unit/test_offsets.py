from __future__ import annotations

from tributary_shared.runtime.kafka.offsets import PartitionOffsets


def test_nothing_to_commit_before_any_record() -> None:
    assert PartitionOffsets().committable() is None


def test_commit_stops_at_the_lowest_record_still_in_flight() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12):
        offsets.started(offset)
    offsets.finished(11)
    offsets.finished(12)
    # 10 is still running: committing past it would lose it on a crash.
    assert offsets.committable() == 10
    offsets.finished(10)
    assert offsets.committable() == 13


def test_a_commit_is_not_repeated_until_the_prefix_moves() -> None:
    offsets = PartitionOffsets()
    offsets.started(0)
    offsets.finished(0)
    assert offsets.committable() == 1
    offsets.mark_committed(1)
    assert offsets.committable() is None
    offsets.started(1)
    assert offsets.committable() is None
    offsets.finished(1)
    assert offsets.committable() == 2


def test_out_of_order_completion_commits_the_contiguous_prefix_only() -> None:
    offsets = PartitionOffsets()
    for offset in range(5):
        offsets.started(offset)
    for offset in (4, 2, 0):
        offsets.finished(offset)
    assert offsets.committable() == 1
    offsets.finished(1)
    assert offsets.committable() == 3
    assert offsets.in_flight == 1


def test_a_stuck_record_holds_every_later_offset_until_it_finishes() -> None:
    offsets = PartitionOffsets()
    for offset in range(1_000):
        offsets.started(offset)
    for offset in range(1, 1_000):
        offsets.finished(offset)
    # Offset 0 is stuck: a crash would redeliver all 1,000, so all are held
    # (the consumer pauses the partition when this reaches its window).
    assert offsets.held == 1_000
    offsets.finished(0)
    assert offsets.held == 0
    assert offsets.committable() == 1_000


def test_held_counts_from_the_lowest_record_in_flight() -> None:
    offsets = PartitionOffsets()
    for offset in range(10):
        offsets.started(offset)
    for offset in (0, 1, 2, 5):
        offsets.finished(offset)
    assert offsets.held == 7  # 3..9: the finished prefix 0..2 is released
