"""Call history and effect ledger contracts: per attempt and per step, shared by replicas."""

from __future__ import annotations

import uuid

from tests.contract.conftest import Adapters


async def test_the_history_is_kept_per_attempt_of_a_step_in_order(adapters: Adapters) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    calls = adapters.calls

    async def record(step_id: str, attempt: int, fingerprint: str) -> list[str]:
        return await calls.record(
            workflow_id=workflow_id, step_id=step_id, attempt=attempt, fingerprint=fingerprint
        )

    assert await record("s1", 1, "a") == ["a"]
    assert await record("s2", 1, "x") == ["x"]
    assert await record("s1", 1, "b") == ["a", "b"]
    # A rerun after a crash starts a history of its own.
    assert await record("s1", 2, "a") == ["a"]


async def test_the_history_keeps_the_most_recent_calls(adapters: Adapters) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    history: list[str] = []
    for n in range(70):
        history = await adapters.calls.record(
            workflow_id=workflow_id, step_id="s1", attempt=1, fingerprint=str(n)
        )
    assert history == [str(n) for n in range(6, 70)]


async def test_an_attempt_is_warned_about_a_loop_once(adapters: Adapters) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    calls = adapters.calls
    assert await calls.first_warning(workflow_id=workflow_id, step_id="s1", attempt=1)
    assert not await calls.first_warning(workflow_id=workflow_id, step_id="s1", attempt=1)
    assert await calls.first_warning(workflow_id=workflow_id, step_id="s2", attempt=1)
    assert await calls.first_warning(workflow_id=workflow_id, step_id="s1", attempt=2)


async def test_an_effect_is_recalled_for_its_own_step_and_call(adapters: Adapters) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    effects = adapters.effects

    async def recorded(step_id: str, fingerprint: str) -> str | None:
        intent = await effects.intend(
            workflow_id=workflow_id, step_id=step_id, fingerprint=fingerprint
        )
        return intent.recorded

    assert await recorded("s1", "f") is None
    await effects.record(workflow_id=workflow_id, step_id="s1", fingerprint="f", output="sent")
    assert await recorded("s1", "f") == "sent"
    assert await recorded("s2", "f") is None
    assert await recorded("s1", "g") is None


async def test_an_intended_call_is_known_to_the_next_attempt(adapters: Adapters) -> None:
    workflow_id = f"wf_{uuid.uuid4().hex}"
    effects = adapters.effects
    first = await effects.intend(workflow_id=workflow_id, step_id="s1", fingerprint="f")
    assert (first.recorded, first.repeated) == (None, False)
    # The runner died during the call: the next attempt learns it may have acted.
    again = await effects.intend(workflow_id=workflow_id, step_id="s1", fingerprint="f")
    assert (again.recorded, again.repeated) == (None, True)
    await effects.record(workflow_id=workflow_id, step_id="s1", fingerprint="f", output="sent")
    done = await effects.intend(workflow_id=workflow_id, step_id="s1", fingerprint="f")
    assert (done.recorded, done.repeated) == ("sent", False)
    other = await effects.intend(workflow_id=workflow_id, step_id="s2", fingerprint="f")
    assert (other.recorded, other.repeated) == (None, False)
