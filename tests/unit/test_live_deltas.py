"""Live token deltas: redacted as they stream, sent off the call's hot path, only
while someone follows the workflow's tokens, and never into its durable log.

The end-to-end tests run the real handlers on the twins with the scripted LLM
behind the real SDK (tests/support/harness.py); a listener on the in-memory
delta channel stands for a ``mode=tokens`` event stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from tests.support.harness import Harness
from tests.support.scripted import ScriptedEndpoint, rule
from tributary_shared.core.deltas import LLMDelta, RedactedText
from tributary_shared.core.events import StepCompleted
from tributary_shared.core.redaction import DEFAULT_REDACTOR
from tributary_shared.runtime.delta_relay import DeltaRelay
from tributary_shared.twins import MemoryDeltaChannel

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"
TEXT = f"The key is {SECRET} and the Bearer abcdef0123456789xyz token ends here. Done."


def released_in_pieces(text: str, cuts: Sequence[int]) -> tuple[list[str], str]:
    redacted = RedactedText(DEFAULT_REDACTOR)
    pieces, start = [], 0
    for cut in [*cuts, len(text)]:
        redacted.add(text[start:cut])
        start = cut
        pieces.append(redacted.release())
    pieces.append(redacted.release(final=True))
    return pieces, "".join(pieces)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_a_secret_split_over_pieces_never_leaves_unredacted(size: int) -> None:
    pieces, joined = released_in_pieces(TEXT, range(size, len(TEXT), size))
    assert joined == DEFAULT_REDACTOR(TEXT)
    assert "abcdefghij" not in joined
    assert "abcdef0123" not in joined
    assert any(pieces[:-1]), "text is released while it streams, not only at the end"


def test_released_text_keeps_only_the_last_words_back() -> None:
    redacted = RedactedText(DEFAULT_REDACTOR)
    redacted.add("one two three four")
    assert redacted.release() == "one two "
    redacted.add(" five")
    assert redacted.release() == "three "
    assert redacted.release(final=True) == "four five"


class SlowChannel(MemoryDeltaChannel):
    """Redis that takes far longer than the relay waits."""

    async def publish(self, deltas: Sequence[LLMDelta]) -> None:
        await asyncio.sleep(30)


async def test_a_slow_channel_neither_holds_up_the_text_nor_the_call_for_long() -> None:
    relay = DeltaRelay(SlowChannel(), publish_timeout_s=0.2, flush_interval_s=0)
    deltas = relay.open(workflow_id="wf_1", role="agent", call=1, step_id="s1")
    started = time.perf_counter()
    for _ in range(10_000):
        deltas.add("word ")
    added_s = time.perf_counter() - started
    await deltas.close()
    closed_s = time.perf_counter() - started
    await relay.close()
    assert added_s < 0.5, "adding a piece awaits nothing"
    assert closed_s < 2.0, "the end of a call waits at most the relay's timeout"


async def test_pieces_gathered_while_a_send_is_under_way_go_out_together_and_in_order() -> None:
    channel = MemoryDeltaChannel()
    relay = DeltaRelay(channel, flush_interval_s=0)
    deltas = relay.open(workflow_id="wf_1", role="synthesizer", call=1)
    for word in ("alpha", "beta", "gamma", "delta", "epsilon"):
        deltas.add(word + " ")
    await deltas.close()
    await relay.close()
    assert "".join(d.text for d in channel.published) == "alpha beta gamma delta epsilon "
    assert [d.seq for d in channel.published] == list(range(len(channel.published)))
    assert len(channel.published) <= 2, "pieces of one send are joined into one delta"


async def test_a_failed_try_starts_the_text_over_under_the_next_try_number() -> None:
    channel = MemoryDeltaChannel()
    relay = DeltaRelay(channel, flush_interval_s=0)
    deltas = relay.open(workflow_id="wf_1", role="agent", call=2, step_id="s1", attempt=3)
    deltas.add("half an ans")
    deltas.try_ended()
    deltas.add("the whole answer")
    await deltas.close()
    await relay.close()
    by_try: dict[int, str] = {}
    for delta in channel.published:
        by_try[delta.try_number] = by_try.get(delta.try_number, "") + delta.text
        assert (delta.step_id, delta.attempt, delta.call) == ("s1", 3, 2)
    assert by_try == {1: "half an ans", 2: "the whole answer"}


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    yield scripted
    await scripted.aclose()


class Listener:
    """Stands for an event stream following the workflow's tokens."""

    def __init__(self, harness: Harness, workflow_id: str) -> None:
        self.heard: list[LLMDelta] = []
        self._harness = harness
        self._task = asyncio.create_task(self._follow(workflow_id))

    async def _follow(self, workflow_id: str) -> None:
        async for delta in self._harness.deltas.listen(workflow_id):
            self.heard.append(delta)

    async def stop(self) -> list[LLMDelta]:
        for _ in range(100):  # what is queued for the listener reaches it
            if len(self.heard) >= len(self._harness.deltas.published):
                break
            await asyncio.sleep(0)
        self._task.cancel()
        return self.heard


async def listen(harness: Harness, workflow_id: str) -> Listener:
    listener = Listener(harness, workflow_id)
    await asyncio.sleep(0)  # listening from now on
    return listener


def text_of(deltas: Sequence[LLMDelta], *, step_id: str | None) -> str:
    mine = [d for d in deltas if d.step_id == step_id]
    last = max((d.attempt, d.call, d.try_number) for d in mine)
    return "".join(d.text for d in mine if (d.attempt, d.call, d.try_number) == last)


async def test_a_followed_workflow_streams_its_agents_and_synthesis_live(
    endpoint: ScriptedEndpoint,
) -> None:
    async with Harness(endpoint).running() as harness:
        workflow_id = await harness.submit("collect alpha; collect beta")
        listener = await listen(harness, workflow_id)
        await harness.run()
        heard = await listener.stop()
        record = await harness.record(workflow_id)
    completed = harness.published_of(workflow_id, "step.completed")
    assert completed
    for event in completed:
        assert isinstance(event, StepCompleted)
        assert text_of(heard, step_id=event.step_id) == event.result
    assert text_of(heard, step_id=None) == record.result
    assert {d.role for d in heard} == {"agent", "synthesizer"}
    assert all(r.stream for r in [*endpoint.agent_calls(), *endpoint.synthesis_calls()])
    assert not any(r.stream for r in endpoint.planner_calls()), "the plan is not prose"
    logged = await harness.store.read_log(workflow_id, count=10_000)
    assert "llm.delta" not in {entry.type for entry in logged}


async def test_an_unfollowed_workflow_streams_nothing(endpoint: ScriptedEndpoint) -> None:
    async with Harness(endpoint).running() as harness:
        workflow_id = await harness.submit("collect alpha")
        await harness.run()
    assert (await harness.record(workflow_id)).result
    assert harness.deltas.published == []
    assert not any(r.stream for r in endpoint.requests)


async def test_live_text_is_redacted_as_the_call_records_are(endpoint: ScriptedEndpoint) -> None:
    endpoint.add_rule(rule({"content": TEXT}, contains="You write the final answer"))
    async with Harness(endpoint).running() as harness:
        workflow_id = await harness.submit("collect alpha")
        listener = await listen(harness, workflow_id)
        await harness.run()
        heard = await listener.stop()
    synthesis = text_of(heard, step_id=None)
    assert SECRET not in synthesis
    assert "[REDACTED]" in synthesis
