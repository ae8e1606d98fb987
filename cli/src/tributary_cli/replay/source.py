"""Where a workflow's events are read from: Kafka, or a file ``tributary events export`` wrote.

Kafka: every event is keyed by its workflow id, and the services' producer
(FastStream's ``KafkaBroker`` over aiokafka, no partitioner given) puts a keyed
message on the partition aiokafka's ``DefaultPartitioner`` picks: murmur2 of the
key over the topic's partitions. So one partition per topic holds all of a
workflow's events, and only that one is read, from its beginning to the end it
had when the read began (events written meanwhile are not waited for). Redis is
never asked: the events alone rebuild the run, even after its state expired.

Export file: one JSON object per line, UTF-8. The first line is the header
``{"format": "tributary.events", "version": 1, "workflow_id": ..., "events": N}``;
each further line is one event as ``core.events.encode_event`` writes it, in
timeline order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from tributary_cli.replay.timeline import in_timeline_order
from tributary_shared.core import topics
from tributary_shared.core.events import AnyEvent, decode_event, encode_event
from tributary_shared.runtime.kafka.security import PLAINTEXT, KafkaSecurity

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "REPLAYED_TOPICS",
    "EventsRead",
    "KafkaUnavailable",
    "NotAnExport",
    "partition_of",
    "read_export",
    "read_workflow_events",
    "write_export",
]

REPLAYED_TOPICS: tuple[str, ...] = tuple(
    spec.name for spec in topics.ALL_TOPICS if spec is not topics.DEAD_LETTERS
)
"""Every topic that carries events. Dead letters are left out: they wrap messages that
failed to be handled (a copy of an event already read, or a message no service could
decode); ``make deadletters`` shows them."""

EXPORT_FORMAT = "tributary.events"
EXPORT_VERSION = 1

_PARTITIONER = DefaultPartitioner()


class KafkaUnavailable(Exception):
    """Kafka could not be reached, or did not answer, in time."""


class NotAnExport(ValueError):
    """A file that is not an export of ``tributary events export``."""


@dataclass(frozen=True)
class EventsRead:
    """The events of one workflow found on Kafka, and what was read to find them."""

    events: list[AnyEvent]
    partitions: dict[str, int]
    """The partition read on each topic."""
    undecodable: int = 0
    """Messages under the workflow's key that are not events (left out)."""


def partition_of(workflow_id: str, partitions: Iterable[int]) -> int:
    """The partition the services' producer puts the workflow's events on."""
    ordered = sorted(partitions)
    partition: int = _PARTITIONER(workflow_id.encode(), ordered, ordered)
    return partition


async def read_workflow_events(
    workflow_id: str,
    *,
    bootstrap_servers: str,
    security: KafkaSecurity = PLAINTEXT,
    client_id: str = "tributary-replay",
    topic_names: Sequence[str] = REPLAYED_TOPICS,
    timeout_s: float = 15.0,
) -> EventsRead:
    """Every event of ``workflow_id`` on ``topic_names`` up to their ends at the start.

    Raises ``KafkaUnavailable`` when Kafka cannot be reached within ``timeout_s``, or a
    read makes no progress for as long.
    """
    where = f"Kafka at {bootstrap_servers}"
    try:
        async with asyncio.timeout(timeout_s):
            partitions = await _partitions_of_topics(
                bootstrap_servers, security=security, client_id=client_id
            )
        tps = [
            TopicPartition(name, partition_of(workflow_id, partitions[name]))
            for name in topic_names
            if partitions.get(name)
        ]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            **security.client_kwargs(),
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            async with asyncio.timeout(timeout_s):
                await consumer.start()
                ends: dict[TopicPartition, int] = await consumer.end_offsets(tps) if tps else {}
            return await _read(consumer, workflow_id, ends, timeout_s=timeout_s)
        finally:
            await _bounded(consumer.stop(), timeout_s)
    except TimeoutError:
        raise KafkaUnavailable(f"{where} did not answer within {timeout_s:g} s") from None
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailable(f"cannot reach {where}: {exc}") from None


async def _partitions_of_topics(
    bootstrap_servers: str, *, security: KafkaSecurity, client_id: str
) -> dict[str, list[int]]:
    """Every topic's partition ids. All topics are asked for: a metadata request naming
    a topic that does not exist would create it on a broker that allows that."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, **security.client_kwargs(), client_id=client_id
    )
    try:
        await admin.start()
        described: list[dict[str, Any]] = await admin.describe_topics(None)
    finally:
        await admin.close()
    return {
        str(topic["topic"]): sorted(int(p["partition"]) for p in topic.get("partitions") or ())
        for topic in described
        if topic.get("error_code", 0) == 0
    }


async def _bounded(closing: Awaitable[None], timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await closing
    except (TimeoutError, KafkaError, OSError):
        pass  # nothing to release that outlives the process


async def _read(
    consumer: AIOKafkaConsumer,
    workflow_id: str,
    ends: dict[TopicPartition, int],
    *,
    timeout_s: float,
) -> EventsRead:
    key = workflow_id.encode()
    if not ends:
        return EventsRead(events=[], partitions={})
    consumer.assign(list(ends))
    await consumer.seek_to_beginning(*ends)
    remaining = {tp for tp, end in ends.items() if end > 0}
    found: list[AnyEvent] = []
    undecodable = 0
    loop = asyncio.get_running_loop()
    last_progress = loop.time()
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, records in batch.items():
            for record in records:
                if record.offset >= ends[tp] or record.key != key:
                    continue
                try:
                    found.append(decode_event(record.value or b""))
                except ValidationError:
                    undecodable += 1
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        if batch:
            last_progress = loop.time()
        elif loop.time() - last_progress > timeout_s:
            raise TimeoutError
    return EventsRead(
        events=found,
        partitions={tp.topic: tp.partition for tp in ends},
        undecodable=undecodable,
    )


# --- export files ----------------------------------------------------------------------------


def write_export(path: Path, workflow_id: str, events: Iterable[AnyEvent]) -> int:
    """Write the events (once each, in timeline order); returns how many."""
    ordered = in_timeline_order(events)
    header = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "workflow_id": workflow_id,
        "events": len(ordered),
    }
    with path.open("wb") as file:
        file.write(json.dumps(header).encode() + b"\n")
        for event in ordered:
            file.write(encode_event(event) + b"\n")
    return len(ordered)


def read_export(path: Path) -> tuple[str, list[AnyEvent]]:
    """The workflow id and events of an export. Raises ``NotAnExport`` (naming the line)
    for anything else, and ``OSError`` when the file cannot be read."""
    with path.open("rb") as file:
        lines = file.read().splitlines()
    if not lines:
        raise NotAnExport(f"{path} is empty, not an export of `tributary events export`")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise NotAnExport(
            f"{path} is not an export of `tributary events export` (its first line is not "
            f'the header {{"format": "{EXPORT_FORMAT}", ...}})'
        )
    if header.get("version") != EXPORT_VERSION:
        raise NotAnExport(
            f"{path} is an export of version {header.get('version')!r}; "
            f"this command reads version {EXPORT_VERSION}"
        )
    workflow_id = header.get("workflow_id")
    if not isinstance(workflow_id, str):
        raise NotAnExport(f"{path}: the header names no workflow_id")
    events: list[AnyEvent] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            events.append(decode_event(line))
        except ValidationError as exc:
            raise NotAnExport(
                f"{path}, line {number}: not an event ({exc.error_count()} problem(s), "
                f"first: {exc.errors()[0]['msg']})"
            ) from None
    return workflow_id, events
