"""The live delta channel contract: listeners of a workflow hear its deltas published
while they listen, in order, and nobody else's; whether anyone listens is known."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from tests.contract.conftest import Adapters
from tributary_shared.core.deltas import LLMDelta
from tributary_shared.core.ports import DeltaChannel


def delta(workflow_id: str, seq: int) -> LLMDelta:
    return LLMDelta(
        workflow_id=workflow_id, step_id="s1", role="agent", call=1, seq=seq, text=f"piece{seq} "
    )


async def until_listened(channel: DeltaChannel, workflow_id: str, *, listened: bool) -> None:
    for _ in range(500):  # Redis confirms a subscription asynchronously
        if await channel.listened(workflow_id) is listened:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"listened({workflow_id}) never became {listened}")


async def heard(listening: AsyncIterator[LLMDelta], count: int) -> list[LLMDelta]:
    return [await asyncio.wait_for(anext(listening), timeout=5) for _ in range(count)]


async def test_listeners_hear_their_workflows_deltas_in_order_and_only_theirs(
    adapters: Adapters,
) -> None:
    channel = adapters.deltas
    one, other = f"wf_{uuid.uuid4().hex}", f"wf_{uuid.uuid4().hex}"
    assert not await channel.listened(one)
    await channel.publish([delta(one, 0)])  # nobody listens: it is gone, and no error

    first, second, elsewhere = channel.listen(one), channel.listen(one), channel.listen(other)
    hearing = [
        asyncio.create_task(heard(first, 2)),
        asyncio.create_task(heard(second, 2)),
        asyncio.create_task(heard(elsewhere, 1)),
    ]
    await until_listened(channel, one, listened=True)
    await until_listened(channel, other, listened=True)
    await channel.publish([delta(one, 1), delta(other, 0), delta(one, 2)])
    got_first, got_second, got_elsewhere = await asyncio.gather(*hearing)
    assert [d.seq for d in got_first] == [d.seq for d in got_second] == [1, 2]
    assert got_first[0] == delta(one, 1)
    assert [(d.workflow_id, d.seq) for d in got_elsewhere] == [(other, 0)]

    await first.aclose()  # type: ignore[attr-defined]
    assert await channel.listened(one), "the other listener of the workflow remains"
    await second.aclose()  # type: ignore[attr-defined]
    await until_listened(channel, one, listened=False)
    await elsewhere.aclose()  # type: ignore[attr-defined]
