"""How many processes of each service a benchmark runs, and figures per service.

Replicas are named as the devstack names them, ``<service>-<index>``
(``agent-runner-0``, ``agent-runner-1``, ...). Every measurement is taken per
process, keyed by that name; the functions here add the replicas of a service
up, so a summary shows one total per service whatever the replica count.
Everything here is pure.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping

from tributary_devstack.services import instance_name
from tributary_shared.core.topology import ROLES

__all__ = [
    "INFRA",
    "SERVICES",
    "assigned_partitions",
    "assignment_settled",
    "by_service",
    "consumed_partitions",
    "idle_replicas",
    "instances",
    "is_stack_component",
    "parse_replica_option",
    "problems_by_service",
    "replica_counts",
    "service_of",
    "service_replicas",
    "stack_total",
]

#: The services a benchmark can scale, in the order summaries show them.
SERVICES: tuple[str, ...] = ("gateway", "planner", "agent-runner", "synthesizer")
#: Processes of the stack that are not services: always one of each.
INFRA: tuple[str, ...] = ("kafka", "redis")

_REPLICA = re.compile(r"^(?P<service>.+)-(?P<index>\d+)$")
_LAG_SERIES = re.compile(
    r'^consumer_lag_records\{(?=[^}]*consumer="(?P<group>[^"]*)")'
    r'(?=[^}]*topic="(?P<topic>[^"]*)")(?=[^}]*partition="(?P<partition>\d+)")[^}]*\}'
)


def parse_replica_option(text: str) -> tuple[str, int]:
    """``SERVICE=N`` of ``--replicas``, as an argparse ``type``."""
    service, sep, count_text = text.partition("=")
    service = service.strip()
    if not sep or service not in SERVICES:
        raise argparse.ArgumentTypeError(
            f"wants SERVICE=N with SERVICE one of {', '.join(SERVICES)}; got {text!r}"
        )
    try:
        count = int(count_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{service}=N wants a whole number N >= 1; got {count_text!r}"
        ) from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"{service}=N wants N >= 1; got {count}")
    return service, count


def replica_counts(pairs: Iterable[tuple[str, int]] = ()) -> dict[str, int]:
    """Replicas of every service: one unless ``pairs`` says otherwise (the last pair wins)."""
    counts = dict.fromkeys(SERVICES, 1)
    counts.update(pairs)
    return counts


def instances(counts: Mapping[str, int], services: Iterable[str] = SERVICES) -> list[str]:
    """Process names of every replica of ``services``, e.g. ``agent-runner-1``."""
    return [instance_name(s, i) for s in services for i in range(counts.get(s, 1))]


def service_of(component: str) -> str | None:
    """The service whose replica ``component`` is, or None (Kafka, Redis, the LLM, ...)."""
    match = _REPLICA.match(component)
    if match is None or match["service"] not in SERVICES:
        return None
    return match["service"]


def is_stack_component(component: str) -> bool:
    """Whether ``component`` counts towards the stack's total: a service replica, Kafka or Redis."""
    return component in INFRA or service_of(component) is not None


def stack_total(values: Mapping[str, float]) -> float:
    """The stack's share of per-process ``values``: every service replica, Kafka and Redis."""
    return sum(value for component, value in values.items() if is_stack_component(component))


def by_service(values: Mapping[str, float]) -> dict[str, float]:
    """Replicas' values added up per service; other components kept as they are.

    ``{"agent-runner-0": 2, "agent-runner-1": 3, "kafka": 1}`` gives
    ``{"agent-runner": 5, "kafka": 1}``.
    """
    out: dict[str, float] = {}
    for component, value in values.items():
        key = service_of(component) or component
        out[key] = out.get(key, 0) + value
    return out


def service_replicas(components: Iterable[str]) -> dict[str, list[str]]:
    """The replicas among ``components``, grouped by service."""
    out: dict[str, list[str]] = {}
    for component in sorted(components):
        service = service_of(component)
        if service is not None:
            out.setdefault(service, []).append(component)
    return out


def consumed_partitions() -> dict[str, tuple[str, dict[str, int]]]:
    """Per service with a consumer group: the group and its topics' partition counts."""
    out: dict[str, tuple[str, dict[str, int]]] = {}
    for role in ROLES:
        if role.service in SERVICES and role.group_id is not None:
            out[role.service] = (role.group_id, {t.name: t.partitions for t in role.topics})
    return out


def idle_replicas(counts: Mapping[str, int]) -> dict[str, str]:
    """Services with more replicas than some topic they consume has partitions.

    The consumer group gives each partition to one member, so replicas past a
    topic's partition count get none of that topic's records.
    """
    out: dict[str, str] = {}
    for service, (_group, topics) in consumed_partitions().items():
        count = counts.get(service, 1)
        short = {name: n for name, n in topics.items() if n < count}
        if short:
            described = ", ".join(f"{name} has {n}" for name, n in sorted(short.items()))
            out[service] = f"{count} replicas but {described} partitions"
    return out


def assigned_partitions(metrics_text: str, group: str) -> set[tuple[str, int]]:
    """(topic, partition) pairs ``group`` holds in one process, read from its /metrics.

    The consumer keeps a ``consumer_lag_records`` series per assigned partition
    and drops it when the partition is revoked.
    """
    out: set[tuple[str, int]] = set()
    for line in metrics_text.splitlines():
        match = _LAG_SERIES.match(line)
        if match is not None and match["group"] == group:
            out.add((match["topic"], int(match["partition"])))
    return out


def assignment_settled(held: Mapping[str, set[tuple[str, int]]], topics: Mapping[str, int]) -> bool:
    """Whether a group's replicas (name -> partitions held) share ``topics`` out.

    Settled: every partition is held by exactly one replica, and every replica
    holds one at least unless there are fewer partitions than replicas.
    """
    wanted = {(topic, p) for topic, count in topics.items() for p in range(count)}
    union = set().union(*held.values()) if held else set()
    disjoint = sum(len(parts) for parts in held.values()) == len(union)
    everyone = len(held) > len(wanted) or all(held.values())
    return union == wanted and disjoint and everyone


def problems_by_service(problems: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Log problems counted per message (by log name), added up over each service's replicas."""
    out: dict[str, dict[str, int]] = {}
    for component, counts in problems.items():
        merged = out.setdefault(service_of(component) or component, {})
        for message, count in counts.items():
            merged[message] = merged.get(message, 0) + count
    return out
