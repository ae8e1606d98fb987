"""The cancellation signal contract: every listener hears what is announced after it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from tests.contract.conftest import Adapters


async def _next(listening: AsyncIterator[str]) -> str:
    return await asyncio.wait_for(anext(listening), timeout=5)


async def test_every_listener_hears_each_announcement(adapters: Adapters) -> None:
    signal = adapters.cancellations
    first, second = signal.listen(), signal.listen()
    heard = [asyncio.create_task(_next(first)), asyncio.create_task(_next(second))]
    await asyncio.sleep(0.2)  # both subscribed before the announcement
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await signal.announce(workflow_id)
    assert await asyncio.gather(*heard) == [workflow_id, workflow_id]
    follow_up = asyncio.create_task(_next(first))
    await asyncio.sleep(0.05)
    await signal.announce("wf_other")
    assert await follow_up == "wf_other"
    for listening in (first, second):
        await listening.aclose()  # type: ignore[attr-defined]
