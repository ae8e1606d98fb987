"""``tributary replay --rerun`` of workflows that paused for a person.

Each workflow is recorded in-process (the real handlers over the twins, the
scripted LLM behind the real SDK) and answered as the gateway answers: an agent's
``ask_human`` question, a plan approval, a step approval (given or refused), a
timeout's default. The rerun then runs it again from its events alone. That no
model is called again, and that the resumed step's call after the answer is
replayed rather than repeated, is counted at the scripted endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.scripted import PLAN_FORMAT, ScriptedEndpoint, rule
from tributary_agent_runner.tools.ask_human import ask_human_tool
from tributary_agent_runner.tools.calculator import calculator_tool
from tributary_agent_runner.tools.registry import ToolRegistry
from tributary_cli.replay import answers as answers_module
from tributary_cli.replay.pipeline import Pipeline, ServiceSettings
from tributary_cli.replay.rerun import RerunEnvironment, rerun
from tributary_shared.core.events import (
    AnyEvent,
    InputAnswered,
    InputRequested,
    InputSource,
    LLMCalled,
    ToolCalled,
    WorkflowOptions,
    WorkflowRequested,
    decode_event,
    encode_event,
)

TASK = "pick a colour; name a fruit"
PLAN: dict[str, object] = {
    "steps": [
        {"title": "pick a colour", "instruction": "Ask which colour, then say it."},
        {"title": "name a fruit", "instruction": "Name a fruit."},
    ]
}
QUESTION = "which colour?"

Answerer = Callable[[InputRequested], tuple[str, InputSource] | None]
"""Who answers a request in the recorded run: (answer, source), or None to leave it."""


def scripted(plan: dict[str, object] = PLAN) -> ScriptedEndpoint:
    return ScriptedEndpoint(
        rule({"json": plan}, schema_name=PLAN_FORMAT),
        rule(
            {
                "tool_calls": [
                    {
                        "name": "ask_human",
                        "arguments": {"question": QUESTION, "choices": ["red", "blue"]},
                    }
                ]
            },
            has_tools=True,
            has_tool_result=False,
            last_user_contains="pick a colour",
        ),
    )


def by_http(answer: str, *, question: str = "blue") -> Answerer:
    """``answer`` to approvals, ``question`` to an agent's question."""
    return lambda request: (answer if request.kind != "question" else question, "http")


def tools() -> ToolRegistry:
    return ToolRegistry([calculator_tool, ask_human_tool])


@dataclass
class Recorded:
    events: list[AnyEvent]
    endpoint: ScriptedEndpoint

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def record(
    answerer: Answerer | None,
    *,
    endpoint: ScriptedEndpoint | None = None,
    expire: bool = False,
    **options: Any,
) -> Recorded:
    """The workflow run through the handlers, each request answered by ``answerer`` as
    the gateway answers (or, ``expire``, left to its timeout), its events as the topics
    carry them."""
    endpoint = endpoint or scripted()
    pipeline = Pipeline(
        client=endpoint.client(), tools=tools(), settings=ServiceSettings(endpoint.settings())
    )
    request = WorkflowRequested(
        workflow_id="wf_paused",
        tenant_id="acme",
        task=TASK,
        options=WorkflowOptions(token_budget=50_000, deadline_s=600, **options),
    )

    async def answer_open() -> bool:
        record = await pipeline.store.get_workflow(request.workflow_id)
        assert record is not None
        given = False
        for open_request in record.open_inputs:
            if expire:
                assert open_request.expires_at is not None
                later = open_request.expires_at.timestamp() + 1
                await pipeline.inputs.expire(
                    request.workflow_id, open_request.request_id, now=later
                )
                given = True
                continue
            asked = next(
                e
                for e in pipeline.published
                if isinstance(e, InputRequested) and e.request_id == open_request.request_id
            )
            reply = answerer(asked) if answerer is not None else None
            if reply is not None:
                await pipeline.inputs.answer(
                    request.workflow_id,
                    request_id=open_request.request_id,
                    answer=reply[0],
                    source=reply[1],
                )
                given = True
        return given

    await pipeline.run(request, deadline_s=600, on_idle=answer_open)
    await pipeline.close()
    events = [decode_event(encode_event(e)) for e in pipeline.published]
    return Recorded(events, endpoint)


def environment(endpoint: ScriptedEndpoint) -> RerunEnvironment:
    @asynccontextmanager
    async def registry() -> AsyncIterator[ToolRegistry]:
        yield tools()

    return RerunEnvironment(
        settings=ServiceSettings(endpoint.settings()),
        tools=registry,
        live_llm=endpoint.client,
    )


async def rerun_of(recorded: Recorded, events: list[AnyEvent] | None = None) -> Any:
    before = len(recorded.endpoint.requests)
    report = await rerun(
        recorded.events if events is None else events, environment=environment(recorded.endpoint)
    )
    assert len(recorded.endpoint.requests) == before  # a rerun calls no model
    return report


@pytest.fixture
async def asked_and_answered() -> AsyncIterator[Recorded]:
    recorded = await record(by_http("blue"))
    yield recorded
    await recorded.endpoint.aclose()


def changed_answer(events: list[AnyEvent], answer: str) -> list[AnyEvent]:
    return [
        e.model_copy(update={"answer": answer}) if isinstance(e, InputAnswered) else e
        for e in events
    ]


async def test_the_recording_paused_the_step_and_resumed_it_with_the_answer(
    asked_and_answered: Recorded,
) -> None:
    recorded = asked_and_answered
    assert [(e.kind, e.question) for e in recorded.of(InputRequested)] == [("question", QUESTION)]
    assert [(e.answer, e.source) for e in recorded.of(InputAnswered)] == [("blue", "http")]
    colour = [e for e in recorded.of(LLMCalled) if e.role == "agent" and e.step_id == "s1"]
    assert [(e.attempt, e.sequence) for e in colour] == [(1, 1), (2, 1)]  # paused, resumed
    asked = [e for e in recorded.of(ToolCalled) if e.name == "ask_human"]
    assert [e.body.result for e in asked if e.body] == ["blue"]
    assert len(recorded.endpoint.agent_calls("pick a colour")) == 2


async def test_a_rerun_gives_the_recorded_answer_and_has_no_divergence(
    asked_and_answered: Recorded,
) -> None:
    report = await rerun_of(asked_and_answered)

    assert report.divergence is None, report.render()
    assert report.status == "completed"
    assert report.input_answers_given == 1
    # Every recorded LLM call, those before the pause and after the answer, replayed.
    assert report.llm_calls_replayed == len(asked_and_answered.of(LLMCalled))
    assert "gave 1 recorded input answer" in report.render()


async def test_a_rerun_that_ignored_the_recorded_answer_would_be_caught(
    asked_and_answered: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rerun as if it answered every question with its first choice instead.
    real_answer = answers_module.RecordedAnswers._answer

    async def first_choice(
        self: Any, pipeline: Any, request: Any, recorded: Any, answered: InputAnswered
    ) -> bool:
        first = answered.model_copy(update={"answer": "red"})
        return await real_answer(self, pipeline, request, recorded, first)

    monkeypatch.setattr(answers_module.RecordedAnswers, "_answer", first_choice)

    report = await rerun_of(asked_and_answered)

    assert report.divergence is not None
    assert (report.divergence.kind, report.divergence.step_id) == ("answer", "s1")


async def test_a_changed_answer_is_a_divergence_that_names_both_answers(
    asked_and_answered: Recorded,
) -> None:
    report = await rerun_of(asked_and_answered, changed_answer(asked_and_answered.events, "red"))

    divergence = report.divergence
    assert divergence is not None
    assert (divergence.kind, divergence.role, divergence.step_id) == ("answer", "agent", "s1")
    assert divergence.iteration == 2  # the call after the answer
    call_id = divergence.expected.removeprefix("ask_human [").split("]")[0]
    assert f"-ask_human [{call_id}]: blue" in divergence.diff
    assert f"+ask_human [{call_id}]: red" in divergence.diff
    assert report.render().startswith("1 divergence: answer at agent, step s1, iteration 2")


async def test_a_changed_question_is_a_divergence_at_the_request(
    asked_and_answered: Recorded,
) -> None:
    events = [
        e.model_copy(update={"question": "which color?"}) if isinstance(e, InputRequested) else e
        for e in asked_and_answered.events
    ]

    report = await rerun_of(asked_and_answered, events)

    divergence = report.divergence
    assert divergence is not None
    assert (divergence.kind, divergence.step_id, divergence.iteration) == (
        "input request",
        "s1",
        1,
    )
    assert "-question: which color?" in divergence.diff
    assert "+question: which colour?" in divergence.diff
    assert report.input_answers_given == 0  # nothing answered after the divergence


async def test_a_recording_still_waiting_stops_the_rerun_at_its_open_request() -> None:
    recorded = await record(None)
    try:
        assert recorded.of(InputAnswered) == []
        report = await rerun_of(recorded)
    finally:
        await recorded.endpoint.aclose()

    assert report.divergence is None, report.render()
    assert report.status == "awaiting_input"
    assert report.awaiting_input is not None
    assert f"of step s1: {QUESTION!r} [red | blue]" in report.awaiting_input
    assert "stopped at an input request the recording leaves unanswered" in report.render()
    assert report.as_json()["divergences"] == 0


async def test_a_timeout_default_is_given_again_by_expiring_the_request() -> None:
    recorded = await record(None, expire=True, input_timeout_s=60, on_input_timeout="red")
    try:
        assert [(e.answer, e.source) for e in recorded.of(InputAnswered)] == [("red", "timeout")]
        report = await rerun_of(recorded)
    finally:
        await recorded.endpoint.aclose()
    assert report.divergence is None, report.render()
    assert (report.status, report.input_answers_given) == ("completed", 1)


async def test_a_question_that_expired_unanswered_expires_again() -> None:
    recorded = await record(None, expire=True, input_timeout_s=60, on_input_timeout="fail")
    try:
        assert recorded.of(InputAnswered) == []
        failed = [e for e in recorded.events if e.type == "step.failed"]
        assert [e.error.code for e in failed] == ["input_timeout"]
        report = await rerun_of(recorded)
    finally:
        await recorded.endpoint.aclose()
    assert report.divergence is None, report.render()
    assert report.input_answers_given == 1


async def test_a_step_run_live_gets_the_recorded_answer_to_its_question(
    asked_and_answered: Recorded,
) -> None:
    endpoint = asked_and_answered.endpoint
    before = len(endpoint.agent_calls("pick a colour"))

    report = await rerun(
        asked_and_answered.events,
        live_from="pick a colour",
        environment=environment(endpoint),
    )

    assert report.divergence is None, report.render()
    assert (report.status, report.input_answers_given) == ("completed", 1)
    assert len(endpoint.agent_calls("pick a colour")) == before + 2  # asked, then resumed
    resumed = endpoint.agent_calls("pick a colour")[-1]
    assert any(m.get("content") == "blue" for m in resumed.messages)


@pytest.mark.parametrize("verdict", ["approve", "reject"])
async def test_plan_approval_is_given_as_recorded(verdict: str) -> None:
    recorded = await record(by_http(verdict), require_plan_approval=True)
    try:
        kinds = [e.kind for e in recorded.of(InputRequested)]
        assert kinds[0] == "plan_approval"
        report = await rerun_of(recorded)
    finally:
        await recorded.endpoint.aclose()
    assert report.divergence is None, report.render()
    assert report.status == ("completed" if verdict == "approve" else "failed")


async def test_a_rejected_step_approval_reproduces_the_rejection() -> None:
    plan: dict[str, object] = {
        "steps": [
            {"title": "name a fruit", "instruction": "Name a fruit.", "needs_approval": True},
            {"title": "name a tree", "instruction": "Name a tree."},
        ]
    }

    def reject_the_step(request: InputRequested) -> tuple[str, InputSource]:
        return ("reject", "kafka") if request.kind == "step_approval" else ("blue", "http")

    recorded = await record(reject_the_step, endpoint=scripted(plan))
    try:
        assert [e.answer for e in recorded.of(InputAnswered)] == ["reject"]
        report = await rerun_of(recorded)
        approved = changed_answer(recorded.events, "approve")
        changed = await rerun_of(recorded, approved)
    finally:
        await recorded.endpoint.aclose()
    assert report.divergence is None, report.render()
    assert report.input_answers_given == 1
    # Approved instead, the step runs and calls the model: the recording has no such call.
    assert changed.divergence is not None
    assert (changed.divergence.kind, changed.divergence.step_id) == ("extra call", "s1")


async def test_a_question_the_recording_does_not_hold_is_a_divergence(
    asked_and_answered: Recorded,
) -> None:
    # As if the step's pause had been an approval: the recording holds no question.
    events = [
        e.model_copy(update={"kind": "step_approval"}) if isinstance(e, InputRequested) else e
        for e in asked_and_answered.events
    ]
    report = await rerun_of(asked_and_answered, events)
    assert report.divergence is not None
    assert (report.divergence.kind, report.divergence.step_id) == ("extra input request", "s1")
    assert "+question: which colour?" in report.divergence.diff
