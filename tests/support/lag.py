"""How much of its topics each service's consumer group has not yet handled.

A record counts as handled once its group committed past it; the workers commit
only finished work, so a group with nothing unhandled has no handler running.
Tests that arm a failpoint wait for quiet first, so that work an earlier test
left unfinished cannot be what trips it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tributary_shared.core.topology import subscription

__all__ = ["unhandled", "wait_until_handled"]


async def unhandled(bootstrap: str, services: Sequence[str]) -> dict[str, int]:
    """Records on each service's topics that its consumer group has not committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await reader.start()
    try:
        # The admin's description, not the reader's metadata: ``topics()`` fills a copy,
        # and ``partitions_for_topic`` would then know no partition at all.
        described = await admin.describe_topics(None)
        known = {
            str(topic["topic"]): sorted(int(p["partition"]) for p in topic.get("partitions") or ())
            for topic in described
        }
        counts: dict[str, int] = {}
        for service in services:
            group = subscription(service)
            partitions = [
                TopicPartition(topic, partition)
                for topic in group.topics
                for partition in known.get(topic, ())
            ]
            assert partitions, f"no partitions found for {group.topics}"
            committed = await admin.list_consumer_group_offsets(
                group.group_id, partitions=partitions
            )
            first = await reader.beginning_offsets(partitions)
            end = await reader.end_offsets(partitions)
            counts[service] = sum(
                end[tp] - max(first[tp], committed[tp].offset if tp in committed else -1)
                for tp in partitions
            )
        return counts
    finally:
        await reader.stop()
        await admin.close()


async def wait_until_handled(
    bootstrap: str, services: Sequence[str], *, within: float = 60
) -> None:
    """Until every record on the services' topics is handled (seen twice, a second apart)."""
    deadline = time.monotonic() + within
    quiet_checks = 0
    while quiet_checks < 2:
        counts = await unhandled(bootstrap, services)
        quiet_checks = quiet_checks + 1 if not any(counts.values()) else 0
        if not quiet_checks and time.monotonic() > deadline:
            raise AssertionError(f"records still unhandled after {within:g}s: {counts}")
        await asyncio.sleep(1.0 if quiet_checks else 0.5)
