"""Admin calls against the broker (readiness, topics) through aiokafka.

The stack API is synchronous so it can be used from the CLI and from plain
or async pytest fixtures alike; ``run_sync`` runs a coroutine on a private
event loop, in a worker thread when the caller already has a loop running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

from tributary_devstack.topics import (
    TopicError,
    TopicPlan,
    create_errors,
    partition_counts,
    plan_topics,
)
from tributary_shared.core.topics import TopicSpec
from tributary_shared.runtime.kafka.security import PLAINTEXT, KafkaSecurity

T = TypeVar("T")
log = logging.getLogger(__name__)

_REQUEST_TIMEOUT_MS = 10_000


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, inside a loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _with_admin(bootstrap: str, limit_s: float, call: Any, security: KafkaSecurity) -> Any:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        **security.client_kwargs(),
        request_timeout_ms=_REQUEST_TIMEOUT_MS,
        client_id="tributary-devstack",
    )
    try:
        async with asyncio.timeout(limit_s):
            await admin.start()
            return await call(admin)
    finally:
        await admin.close()


async def _all_partition_counts(admin: Any) -> dict[str, int]:
    # Ask for all topics: a metadata request naming a missing topic would
    # auto-create it (with one partition) on a broker that allows that.
    return partition_counts(await admin.describe_topics(None))


async def broker_ready_async(
    bootstrap: str, limit_s: float = 5.0, *, security: KafkaSecurity = PLAINTEXT
) -> bool:
    """True if the broker answers a metadata request and reports a controller."""

    async def probe(admin: Any) -> bool:
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) >= 0

    try:
        return bool(await _with_admin(bootstrap, limit_s, probe, security))
    except Exception as exc:  # any failure just means "not ready yet"
        log.debug("broker at %s not ready: %r", bootstrap, exc)
        return False


def broker_ready(
    bootstrap: str, limit_s: float = 5.0, *, security: KafkaSecurity = PLAINTEXT
) -> bool:
    return run_sync(broker_ready_async(bootstrap, limit_s, security=security))


async def describe_partitions_async(
    bootstrap: str,
    names: Iterable[str] | None = None,
    limit_s: float = 15.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> dict[str, int]:
    """name -> partition count of the existing topics among ``names`` (all if None)."""
    wanted = set(names) if names is not None else None

    async def call(admin: Any) -> dict[str, int]:
        counts = await _all_partition_counts(admin)
        return {n: c for n, c in counts.items() if wanted is None or n in wanted}

    result: dict[str, int] = await _with_admin(bootstrap, limit_s, call, security)
    return result


def describe_partitions(
    bootstrap: str,
    names: Iterable[str] | None = None,
    limit_s: float = 15.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> dict[str, int]:
    return run_sync(describe_partitions_async(bootstrap, names, limit_s, security=security))


async def ensure_topics_async(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    limit_s: float = 30.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> TopicPlan:
    """Create missing topics and grow under-partitioned ones; return what was done.

    Safe to run repeatedly. Raises ``TopicError`` with every per-topic failure.
    """
    specs = tuple(specs)

    async def call(admin: Any) -> TopicPlan:
        existing = await _all_partition_counts(admin)
        plan = plan_topics(specs, existing)
        failures: list[str] = []
        if plan.create:
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, 1) for s in plan.create],
                timeout_ms=_REQUEST_TIMEOUT_MS,
            )
            failures.extend(create_errors(response.topic_errors))
        if plan.grow:
            try:
                await admin.create_partitions(
                    {name: NewPartitions(count) for name, count in plan.grow.items()},
                    timeout_ms=_REQUEST_TIMEOUT_MS,
                )
            except Exception as exc:  # aiokafka raises the first per-topic error
                failures.append(f"growing partitions failed: {exc!r}")
        if failures:
            raise TopicError("could not create topics: " + "; ".join(failures))
        return plan

    result: TopicPlan = await _with_admin(bootstrap, limit_s, call, security)
    return result


def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    limit_s: float = 30.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> TopicPlan:
    return run_sync(ensure_topics_async(bootstrap, specs, limit_s, security=security))
