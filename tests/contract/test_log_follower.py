"""The log follower contract: one reader serves every follower, misses nothing, bounds each.

Run with the in-memory reader and with Redis (one ``XREAD BLOCK`` on one
connection); both go through the same ``LogFanout``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from redis.asyncio import Redis

from tributary_devstack.stack import Stack
from tributary_shared.core import machine
from tributary_shared.core.events import (
    PlanCreated,
    PlannedStep,
    StepStarted,
    WorkflowRequested,
)
from tributary_shared.core.ports import FollowerOverrun, WorkflowStore
from tributary_shared.core.records import LogEntry
from tributary_shared.runtime.fanout import LogFanout
from tributary_shared.runtime.state import RedisWorkflowStore
from tributary_shared.runtime.state.log_reader import RedisLogReader
from tributary_shared.twins import MemoryLogReader, MemoryWorkflowStore

Fanout = Callable[..., AbstractAsyncContextManager[tuple[LogFanout, WorkflowStore]]]


@pytest.fixture
def fanout(backend: str, request: pytest.FixtureRequest) -> Fanout:
    """Builds a started fan-out (and its store) with the given options."""

    @asynccontextmanager
    async def build(**options: float) -> AsyncIterator[tuple[LogFanout, WorkflowStore]]:
        if backend == "memory":
            memory = MemoryWorkflowStore()
            running = LogFanout(MemoryLogReader(memory), memory, **options)  # type: ignore[arg-type]
            await running.start()
            yield running, memory
            await running.close()
            return
        stack: Stack = request.getfixturevalue("stack")
        url = f"redis://127.0.0.1:{stack.config.redis_port}/0"
        control = Redis.from_url(url)
        reader = Redis.from_url(url, socket_timeout=None, single_connection_client=True)
        store = RedisWorkflowStore(control, retention_s=600)
        running = LogFanout(RedisLogReader(reader, control), store, **options)  # type: ignore[arg-type]
        await running.start()
        yield running, store
        await running.close()
        await reader.aclose()
        await control.aclose()

    return build


async def planned(store: WorkflowStore, steps: int = 3) -> tuple[str, list[PlannedStep]]:
    """A running workflow: its log holds the request, the plan and its dispatches."""
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, task="t"), deadline_at=time.time() + 600
    )
    now = time.time()
    await store.apply(machine.start_planning(workflow_id, owner="p", lease_until=now + 60, now=now))
    plan = tuple(
        PlannedStep(step_id=f"s{i}", index=i, title=f"t{i}", instruction="i") for i in range(steps)
    )
    plan_created = PlanCreated(workflow_id=workflow_id, steps=plan)
    await store.apply(machine.record_plan(plan_created, [], owner="p"))
    return workflow_id, list(plan)


async def start(store: WorkflowStore, workflow_id: str, step: PlannedStep) -> None:
    now = time.time()
    started = StepStarted(workflow_id=workflow_id, step_id=step.step_id, attempt=1)
    await store.apply(machine.start_step(started, owner="o", lease_until=now + 60, now=now))


async def collect(
    follower: AsyncIterator[list[LogEntry]], until: Callable[[list[LogEntry]], bool]
) -> list[LogEntry]:
    seen: list[LogEntry] = []
    async with asyncio.timeout(15):
        async for batch in follower:
            seen.extend(batch)
            if until(seen):
                return seen
    raise AssertionError("the follower ended")


def types(entries: list[LogEntry]) -> list[str]:
    return [e.type for e in entries]


async def test_a_follower_gets_the_log_so_far_then_what_is_written_after(fanout: Fanout) -> None:
    async with fanout(idle_s=1.0) as (running, store):
        workflow_id, steps = await planned(store)
        follower = running.follow(workflow_id, after="0")
        seen = await collect(follower, lambda seen: len(seen) >= 2)
        assert types(seen) == ["workflow.requested", "plan.created"]
        await start(store, workflow_id, steps[0])
        await start(store, workflow_id, steps[1])
        seen = await collect(follower, lambda seen: len(seen) >= 2)
        assert types(seen) == ["step.started", "step.started"]
        assert [e.stream_id for e in seen] == sorted(
            (e.stream_id for e in seen), key=lambda i: tuple(map(int, i.split("-")))
        )
        await follower.aclose()  # type: ignore[attr-defined]
        assert running.following == 0


async def test_followers_of_one_log_each_get_everything_after_their_own_position(
    fanout: Fanout,
) -> None:
    async with fanout(idle_s=1.0) as (running, store):
        workflow_id, steps = await planned(store)
        early = running.follow(workflow_id, after="0")
        assert len(await collect(early, lambda seen: len(seen) >= 2)) == 2
        [_, plan] = await store.read_log(workflow_id)
        late = running.follow(workflow_id, after=plan.stream_id)
        await start(store, workflow_id, steps[0])
        assert types(await collect(late, lambda seen: len(seen) >= 1)) == ["step.started"]
        assert types(await collect(early, lambda seen: len(seen) >= 1)) == ["step.started"]
        await start(store, workflow_id, steps[1])
        for follower in (early, late):
            [entry] = await collect(follower, lambda seen: len(seen) >= 1)
            assert entry.type == "step.started"
            await follower.aclose()  # type: ignore[attr-defined]


async def test_many_logs_are_followed_at_once_each_follower_seeing_only_its_own(
    fanout: Fanout,
) -> None:
    async with fanout(idle_s=1.0) as (running, store):
        workflows = [await planned(store, steps=1) for _ in range(30)]
        followers = {}
        for workflow_id, _ in workflows:
            follower = running.follow(workflow_id, after="0")
            await collect(follower, lambda seen: len(seen) >= 2)
            followers[workflow_id] = follower
        for workflow_id, steps in workflows:
            await start(store, workflow_id, steps[0])
        for workflow_id, follower in followers.items():
            [entry] = await collect(follower, lambda seen: len(seen) >= 1)
            assert entry.type == "step.started"
            assert f'"workflow_id":"{workflow_id}"' in entry.event_json
        assert running.following == 30
        for follower in followers.values():
            await follower.aclose()  # type: ignore[attr-defined]
        assert running.following == 0


async def test_a_follower_joining_while_the_read_waits_is_served_at_once(
    fanout: Fanout,
) -> None:
    async with fanout(idle_s=30.0) as (running, store):  # a read waits up to 30 s
        waiting, _ = await planned(store)
        first = running.follow(waiting, after="0")
        await collect(first, lambda seen: len(seen) >= 2)
        await asyncio.sleep(0.3)  # the reader now waits on the first log alone
        joining, steps = await planned(store)
        second = running.follow(joining, after="0")
        await collect(second, lambda seen: len(seen) >= 2)
        began = time.monotonic()
        await start(store, joining, steps[0])
        await collect(second, lambda seen: len(seen) >= 1)
        assert time.monotonic() - began < 10  # not after the 30 s read ended
        for follower in (first, second):
            await follower.aclose()  # type: ignore[attr-defined]


async def test_a_quiet_log_yields_empty_batches_so_the_caller_can_look_around(
    fanout: Fanout,
) -> None:
    async with fanout(idle_s=0.2) as (running, store):
        workflow_id, _ = await planned(store)
        follower = running.follow(workflow_id, after="0")
        await collect(follower, lambda seen: len(seen) >= 2)
        async with asyncio.timeout(10):
            assert await anext(follower) == []
        await follower.aclose()  # type: ignore[attr-defined]


async def test_a_follower_that_falls_behind_is_dropped_not_buffered(fanout: Fanout) -> None:
    async with fanout(idle_s=0.5, max_backlog=2) as (running, store):
        workflow_id, steps = await planned(store, steps=6)
        follower = running.follow(workflow_id, after="0")
        await collect(follower, lambda seen: len(seen) >= 2)
        assert await anext(follower) == []  # caught up and live: the reader serves it
        for step in steps:  # written one by one while the follower reads nothing
            await start(store, workflow_id, step)
            await asyncio.sleep(0.2)
        assert running.following == 0  # dropped, its backlog bounded
        received: list[LogEntry] = []

        async def read_all() -> None:
            async with asyncio.timeout(10):
                async for batch in follower:
                    received.extend(batch)

        with pytest.raises(FollowerOverrun):
            await read_all()
        assert 0 < len(received) < len(steps)  # what it held, then the end
