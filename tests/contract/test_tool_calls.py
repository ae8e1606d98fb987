"""Call history and effect ledger contracts: kept per step, shared by every replica."""

from __future__ import annotations

import uuid

from tests.contract.conftest import Adapters


async def test_the_history_is_kept_per_step_in_order(adapters: Adapters) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    calls = adapters.calls
    assert await calls.record(workflow_id=workflow_id, step_id="s1", fingerprint="a") == ["a"]
    assert await calls.record(workflow_id=workflow_id, step_id="s2", fingerprint="x") == ["x"]
    assert await calls.record(workflow_id=workflow_id, step_id="s1", fingerprint="b") == ["a", "b"]


async def test_the_history_keeps_the_most_recent_calls(adapters: Adapters) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    history: list[str] = []
    for n in range(70):
        history = await adapters.calls.record(
            workflow_id=workflow_id, step_id="s1", fingerprint=str(n)
        )
    assert history == [str(n) for n in range(6, 70)]


async def test_a_step_is_warned_about_a_loop_once(adapters: Adapters) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    calls = adapters.calls
    assert await calls.first_warning(workflow_id=workflow_id, step_id="s1")
    assert not await calls.first_warning(workflow_id=workflow_id, step_id="s1")
    assert await calls.first_warning(workflow_id=workflow_id, step_id="s2")


async def test_an_effect_is_recalled_for_its_own_step_and_call(adapters: Adapters) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    effects = adapters.effects
    assert await effects.recall(workflow_id=workflow_id, step_id="s1", fingerprint="f") is None
    await effects.record(workflow_id=workflow_id, step_id="s1", fingerprint="f", output="sent")
    assert await effects.recall(workflow_id=workflow_id, step_id="s1", fingerprint="f") == "sent"
    assert await effects.recall(workflow_id=workflow_id, step_id="s2", fingerprint="f") is None
    assert await effects.recall(workflow_id=workflow_id, step_id="s1", fingerprint="g") is None
