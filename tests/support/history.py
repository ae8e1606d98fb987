"""After a chaos test: read every event of the workflows from Kafka and their logs, check them.

The invariants a user relies on, whatever was killed, restarted or rebalanced:

* each step has at most one outcome (one event id, never both completed and failed);
* every dispatched step has an outcome, or its workflow ended;
* every workflow has exactly one terminal event, in its log and on Kafka;
* nothing was published that the workflow's state (its log) does not hold;
* everything its log holds reached Kafka (the outbox), within the sweep's grace.

Copies of an event share its id (re-sending after a crash is by design), so
the checks count distinct ids.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from tributary_shared.core.events import TERMINAL_EVENT_TYPES
from tributary_shared.core.keys import WorkflowKeys
from tributary_shared.core.topics import ALL_TOPICS, DEAD_LETTERS

OUTCOMES = ("step.completed", "step.failed")
INGRESS_ONLY = ("workflow.cancel_requested",)  # written to no log: a request, not a fact


@dataclass
class History:
    """One workflow's events: on Kafka (by topic) and in its log."""

    kafka: list[dict[str, object]] = field(default_factory=list)
    log: list[dict[str, object]] = field(default_factory=list)

    def ids(self, source: list[dict[str, object]], *types: str) -> set[str]:
        return {str(e["event_id"]) for e in source if e["type"] in types}


async def read_histories(
    bootstrap: str, redis_url: str, workflow_ids: list[str]
) -> dict[str, History]:
    histories = {w: History() for w in workflow_ids}
    wanted = {w.encode() for w in workflow_ids}
    topics = [t.name for t in ALL_TOPICS if t != DEAD_LETTERS]
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for record in records:
                    if record.key in wanted:
                        event = json.loads(record.value)
                        histories[event["workflow_id"]].kafka.append(event)
    finally:
        await consumer.stop()
    redis = Redis.from_url(redis_url)
    try:
        for workflow_id, history in histories.items():
            entries: Any = await redis.xrange(WorkflowKeys(workflow_id).log)
            history.log = [json.loads(fields[b"event"]) for _id, fields in entries or []]
    finally:
        await redis.aclose()
    return histories


def problems_of(workflow_id: str, history: History) -> list[str]:
    found: list[str] = []
    outcomes: dict[str, set[str]] = defaultdict(set)
    kinds: dict[str, set[str]] = defaultdict(set)
    for event in history.log + history.kafka:
        if event["type"] in OUTCOMES:
            outcomes[str(event["step_id"])].add(str(event["event_id"]))
            kinds[str(event["step_id"])].add(str(event["type"]))
    for step_id, ids in outcomes.items():
        if len(ids) > 1 or len(kinds[step_id]) > 1:
            found.append(f"step {step_id} has {len(ids)} outcomes ({sorted(kinds[step_id])})")
    terminal_log = history.ids(history.log, *TERMINAL_EVENT_TYPES)
    terminal_kafka = history.ids(history.kafka, *TERMINAL_EVENT_TYPES)
    if len(terminal_log) != 1:
        found.append(f"{len(terminal_log)} terminal events in the log")
    if terminal_kafka != terminal_log:
        found.append("the terminal event on Kafka is not the one in the log")
    ended = bool(terminal_log)
    for event in history.log:
        if event["type"] == "step.dispatched":
            step = event["step"]
            assert isinstance(step, dict)
            if not outcomes.get(str(step["step_id"])) and not ended:
                found.append(f"step {step['step_id']} was dispatched and never finished")
    logged = {str(e["event_id"]) for e in history.log}
    for event in history.kafka:
        if event["type"] not in INGRESS_ONLY and str(event["event_id"]) not in logged:
            found.append(f"{event['type']} {event['event_id']} was published but not recorded")
    published = {str(e["event_id"]) for e in history.kafka}
    for event in history.log:
        if str(event["event_id"]) not in published:
            found.append(f"{event['type']} {event['event_id']} was recorded but never published")
    return [f"{workflow_id}: {problem}" for problem in found]


async def assert_histories_hold(
    bootstrap: str, redis_url: str, workflow_ids: list[str], *, settle_s: float = 40.0
) -> None:
    """Check the invariants, looking again while they fail for up to ``settle_s``:
    re-sent events may still be on their way (the outbox sweep waits out a grace
    period, 10 s by default, then runs every second)."""
    give_up_at = time.monotonic() + settle_s
    while True:
        histories = await read_histories(bootstrap, redis_url, workflow_ids)
        problems = [p for w, h in histories.items() for p in problems_of(w, h)]
        if not problems or time.monotonic() > give_up_at:
            break
        await asyncio.sleep(2)
    assert problems == [], "\n".join(problems[:20])
