"""Pure decisions about topics: what to create, what to grow, which errors matter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tributary_shared.core.topics import TopicSpec

# Kafka protocol error codes that mean "nothing to do" for an idempotent create.
TOPIC_ALREADY_EXISTS = 36
NO_ERROR = 0


class TopicError(RuntimeError):
    """The broker refused to create or grow a topic."""


@dataclass(frozen=True, slots=True)
class TopicPlan:
    create: tuple[TopicSpec, ...] = ()
    # name -> wanted total partition count (partitions can only be added)
    grow: Mapping[str, int] = field(default_factory=dict)
    # name -> (actual, wanted) where the topic has more partitions than specified
    oversized: Mapping[str, tuple[int, int]] = field(default_factory=dict)


def plan_topics(specs: Iterable[TopicSpec], existing: Mapping[str, int]) -> TopicPlan:
    """Compare the wanted topics with ``existing`` (name -> partition count)."""
    create: list[TopicSpec] = []
    grow: dict[str, int] = {}
    oversized: dict[str, tuple[int, int]] = {}
    for spec in specs:
        have = existing.get(spec.name)
        if have is None:
            create.append(spec)
        elif have < spec.partitions:
            grow[spec.name] = spec.partitions
        elif have > spec.partitions:
            oversized[spec.name] = (have, spec.partitions)
    return TopicPlan(tuple(create), grow, oversized)


def create_errors(topic_errors: Sequence[Sequence[object]]) -> list[str]:
    """Per-topic failures from a CreateTopics response, ignoring "already exists".

    aiokafka returns the response without raising, so every entry must be
    checked: ``(topic, error_code[, error_message])``.
    """
    failures = []
    for entry in topic_errors:
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code in (NO_ERROR, TOPIC_ALREADY_EXISTS):
            continue
        detail = f": {message}" if message else ""
        failures.append(f"{topic} (error code {code}{detail})")
    return failures


def partition_counts(described: Iterable[Mapping[str, object]]) -> dict[str, int]:
    """name -> partition count from a metadata ``describe_topics`` result.

    Entries carrying an error (typically UNKNOWN_TOPIC_OR_PARTITION) are absent.
    """
    counts: dict[str, int] = {}
    for topic in described:
        if topic.get("error_code", NO_ERROR) != NO_ERROR:
            continue
        partitions = topic.get("partitions")
        if isinstance(partitions, list):
            counts[str(topic["topic"])] = len(partitions)
    return counts
