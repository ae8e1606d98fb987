"""The outbox notes of what the services published are cleared by the publishers, on
the real processes: not left for the planner's sweep to send again as duplicates."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices
from tributary_shared.core.keys import OUTBOX_KEY, outbox_notes_of

pytestmark = pytest.mark.integration

CLEARED_WITHIN_S = 5.0
"""Half the sweep's grace (``TRIBUTARY_PLANNER_UNSENT_GRACE_S``, 10 s): the note of the
final event, written as the workflow completed, cannot have been cleared by the sweep
this soon, only by the publisher that sent it (which clears every 50 ms)."""


async def test_a_completed_workflows_notes_are_cleared_long_before_the_sweeps_grace(
    gateway: GatewayClient, services: RunningServices, marker: str
) -> None:
    workflow_id, events, state = await gateway.run(f"What is 12 * 12? {marker}")
    ended = time.monotonic()
    assert state["status"] == "completed"
    assert events[-1].type == "workflow.completed"

    redis = Redis.from_url(f"redis://127.0.0.1:{services.stack.config.redis_port}/0")
    try:
        left = await _notes_of(redis, workflow_id)
        while left and time.monotonic() - ended < CLEARED_WITHIN_S:
            await asyncio.sleep(0.1)
            left = await _notes_of(redis, workflow_id)
    finally:
        await redis.aclose()
    assert left == [], f"still noted as unsent {time.monotonic() - ended:.1f} s after: {left}"


async def _notes_of(redis: Redis, workflow_id: str) -> list[str]:
    return [
        member.decode()
        async for member, _ in redis.zscan_iter(
            OUTBOX_KEY, match=outbox_notes_of(workflow_id), count=1000
        )
    ]
