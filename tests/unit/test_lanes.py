from __future__ import annotations

import asyncio

from tributary_shared.runtime.kafka.lanes import KeyLanes


async def test_same_key_runs_in_order_and_other_keys_in_parallel() -> None:
    lanes = KeyLanes()
    order: list[str] = []
    gate = asyncio.Event()

    async def work(key: bytes, name: str, wait: bool) -> None:
        async with lanes.lane(key):
            order.append(f"start {name}")
            if wait:
                await gate.wait()
            order.append(f"end {name}")

    first = asyncio.create_task(work(b"wf1", "a1", wait=True))
    await asyncio.sleep(0)
    second = asyncio.create_task(work(b"wf1", "a2", wait=False))
    other = asyncio.create_task(work(b"wf2", "b1", wait=False))
    await other
    assert order == ["start a1", "start b1", "end b1"]
    gate.set()
    await asyncio.gather(first, second)
    assert order[-3:] == ["end a1", "start a2", "end a2"]
    assert len(lanes) == 0
