"""Human in the loop, in-process: an agent's ask_human pauses its step, an answer resumes
it from its checkpoint, timeouts, cancels and deadlines apply to paused workflows.

Runs the real handlers on the twins with the scripted LLM (tests/support/harness.py).
That a resumed step makes none of its earlier LLM calls again is counted at the
scripted endpoint, per step.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.support.harness import Harness
from tests.support.scripted import ScriptedEndpoint, rule
from tributary_agent_runner.tools.ask_human import ask_human_tool
from tributary_shared.core.events import (
    InputAnswered,
    InputRequested,
    InputSubmitted,
    StepFailed,
    ToolCalled,
)
from tributary_shared.core.machine import Move, Transition, TransitionConflict
from tributary_shared.core.status import StepStatus, WorkflowStatus
from tributary_shared.runtime.inputs import InputRefused, Refusal, WorkflowInputs

TASK = "collect alpha; collect beta; collect gamma"


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    yield scripted
    await scripted.aclose()


def ask_in(endpoint: ScriptedEndpoint, *names: str) -> None:
    """The agents of these steps first ask a person which colour, then answer."""
    for name in names:
        endpoint.add_rule(
            rule(
                {
                    "tool_calls": [
                        {
                            "name": "ask_human",
                            "arguments": {
                                "question": f"which colour for {name}?",
                                "choices": ["red", "blue"],
                            },
                        }
                    ]
                },
                has_tools=True,
                has_tool_result=False,
                last_user_contains=name,
            )
        )


@pytest.fixture
async def harness(endpoint: ScriptedEndpoint) -> AsyncIterator[Harness]:
    async with Harness(endpoint, tools=[ask_human_tool]).running() as running:
        yield running


def inputs_of(harness: Harness) -> WorkflowInputs:
    """Answers as the gateway gives them."""
    ports = harness.ports_of("gateway")
    return WorkflowInputs(store=ports.store, publisher=ports.publisher)


async def paused(harness: Harness, endpoint: ScriptedEndpoint, **options: object) -> str:
    ask_in(endpoint, "alpha", "beta")
    workflow_id = await harness.submit(TASK, **options)
    await harness.run()
    return workflow_id


def request_of(record_requests: object, step_id: str) -> str:
    for request in record_requests:  # type: ignore[attr-defined]
        if request.step_id == step_id:
            return str(request.request_id)
    raise LookupError(step_id)


async def test_parallel_pauses_answered_in_reverse_order_resume_without_repeating_calls(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await paused(harness, endpoint)
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.AWAITING_INPUT
    statuses = {s.title: s.status for s in record.steps}
    assert statuses == {
        "collect alpha": StepStatus.AWAITING_INPUT,
        "collect beta": StepStatus.AWAITING_INPUT,
        "collect gamma": StepStatus.COMPLETED,
    }
    assert all(s.owner is None for s in record.steps)  # a paused step holds no lease
    requested = harness.published_of(workflow_id, "input.requested")
    assert len(requested) == 2
    assert all(isinstance(e, InputRequested) and e.choices == ("red", "blue") for e in requested)
    alpha, beta = (s.step_id for s in record.steps[:2])

    inputs = inputs_of(harness)
    await inputs.answer(
        workflow_id, request_id=request_of(record.open_inputs, beta), answer="blue", source="http"
    )
    await harness.run()
    assert (await harness.record(workflow_id)).status is WorkflowStatus.AWAITING_INPUT
    await inputs.answer(
        workflow_id, request_id=request_of(record.open_inputs, alpha), answer="red", source="http"
    )
    await harness.run()

    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    # One call before the pause, one after: the first is not made again.
    assert len(endpoint.agent_calls("collect alpha")) == 2
    assert len(endpoint.agent_calls("collect beta")) == 2
    assert len(endpoint.agent_calls("collect gamma")) == 1
    resumed = endpoint.agent_calls("collect alpha")[-1].messages
    assert resumed[-1]["role"] == "tool"
    assert resumed[-1]["content"] == "red"
    answered = harness.published_of(workflow_id, "input.answered")
    assert [(e.answer, e.source) for e in answered if isinstance(e, InputAnswered)] == [
        ("blue", "http"),
        ("red", "http"),
    ]


async def test_a_resume_delivered_twice_runs_the_step_once(endpoint: ScriptedEndpoint) -> None:
    async with Harness(endpoint, tools=[ask_human_tool], deliver_twice=True).running() as harness:
        workflow_id = await paused(harness, endpoint)
        record = await harness.record(workflow_id)
        for request in record.open_inputs:
            await inputs_of(harness).answer(
                workflow_id, request_id=request.request_id, answer="red", source="http"
            )
        await harness.run()
        assert (await harness.record(workflow_id)).status is WorkflowStatus.COMPLETED
        assert len(endpoint.agent_calls("collect alpha")) == 2
        assert len(harness.distinct_ids(workflow_id, "step.completed")) == 3


async def test_refused_answers_say_why_and_change_nothing(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await paused(harness, endpoint)
    record = await harness.record(workflow_id)
    first = record.open_inputs[0].request_id
    inputs = inputs_of(harness)

    async def refusal(workflow: str, request_id: str, answer: str = "red") -> Refusal:
        with pytest.raises(InputRefused) as refused:
            await inputs.answer(workflow, request_id=request_id, answer=answer, source="http")
        return refused.value.refusal

    assert await refusal(workflow_id, first, "green") is Refusal.NOT_A_CHOICE
    assert await refusal(workflow_id, "in_nope") is Refusal.REQUEST_NOT_FOUND
    assert await refusal("wf_nope", first) is Refusal.WORKFLOW_NOT_FOUND
    await inputs.answer(workflow_id, request_id=first, answer="red", source="http")
    assert await refusal(workflow_id, first, "blue") is Refusal.ALREADY_ANSWERED
    await harness.control().cancel(workflow_id, tenant_id="default", reason="enough")
    second = record.open_inputs[1].request_id
    assert await refusal(workflow_id, second) is Refusal.WORKFLOW_ENDED
    assert len(harness.published_of(workflow_id, "input.answered")) == 1


async def test_a_paused_workflow_is_cancelled_and_its_steps_never_resume(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await paused(harness, endpoint)
    assert await harness.control().cancel(workflow_id, tenant_id="default", reason="stop")
    await harness.run()
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.CANCELLED
    assert len(endpoint.agent_calls("collect alpha")) == 1


async def test_the_deadline_sweep_fails_a_paused_workflow(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await paused(harness, endpoint, deadline_s=60)
    await harness.planner.expire_overdue(time.time() + 120)
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.FAILED
    assert record.error is not None
    assert record.error.code == "deadline_exceeded"


async def test_an_expired_request_gets_its_default_answer(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await paused(harness, endpoint, input_timeout_s=30, on_input_timeout="blue")
    record = await harness.record(workflow_id)
    assert all(r.expires_at is not None for r in record.open_inputs)
    await harness.planner.expire_overdue(time.time() + 1)  # not yet due
    assert (await harness.record(workflow_id)).status is WorkflowStatus.AWAITING_INPUT
    await harness.planner.expire_overdue(time.time() + 60)
    await harness.run()
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    assert [(r.state, r.answer) for r in record.input_requests] == [("expired", "blue")] * 2
    answered = harness.published_of(workflow_id, "input.answered")
    assert {e.source for e in answered if isinstance(e, InputAnswered)} == {"timeout"}
    assert endpoint.agent_calls("collect alpha")[-1].messages[-1]["content"] == "blue"


async def test_an_expired_request_without_a_default_fails_its_step(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await paused(harness, endpoint, input_timeout_s=30, on_input_timeout="fail")
    await harness.planner.expire_overdue(time.time() + 60)
    await harness.run()
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    assert record.partial
    failed = [s for s in record.steps if s.status is StepStatus.FAILED]
    assert [s.error.code for s in failed if s.error] == ["input_timeout"] * 2
    assert all(isinstance(e, StepFailed) for e in harness.published_of(workflow_id, "step.failed"))
    assert len(endpoint.agent_calls("collect alpha")) == 1


async def test_an_integration_answers_on_the_ingress_topic(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await paused(harness, endpoint)
    record = await harness.record(workflow_id)
    for request in record.open_inputs:
        harness.produce(
            InputSubmitted(workflow_id=workflow_id, request_id=request.request_id, answer="red")
        )
    harness.produce(InputSubmitted(workflow_id=workflow_id, request_id="in_nope", answer="red"))
    await harness.run()
    assert (await harness.record(workflow_id)).status is WorkflowStatus.COMPLETED
    answered = harness.published_of(workflow_id, "input.answered")
    assert {e.source for e in answered if isinstance(e, InputAnswered)} == {"kafka"}
    # The unknown request is dead-lettered with its reason; the workflow went on.
    assert len(harness.dead_letters) == 1
    assert "input_request_not_found" in harness.dead_letters[0].error_code


async def test_a_plan_waits_for_approval_and_runs_once_approved(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK, require_plan_approval=True)
    await harness.run()
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.AWAITING_INPUT
    (request,) = record.open_inputs
    assert (request.kind, request.step_id, request.choices) == (
        "plan_approval",
        None,
        ("approve", "reject"),
    )
    assert endpoint.agent_calls() == []  # no step was dispatched
    await inputs_of(harness).answer(
        workflow_id, request_id=request.request_id, answer="approve", source="http"
    )
    await harness.run()
    assert (await harness.record(workflow_id)).status is WorkflowStatus.COMPLETED
    assert len(endpoint.agent_calls()) == 3


async def test_a_rejected_plan_fails_the_workflow_without_running_a_step(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await harness.submit(TASK, require_plan_approval=True)
    await harness.run()
    (request,) = (await harness.record(workflow_id)).open_inputs
    await inputs_of(harness).answer(
        workflow_id, request_id=request.request_id, answer="reject", source="http"
    )
    await harness.run()
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.FAILED
    assert record.error is not None
    assert record.error.code == "plan_rejected"
    assert endpoint.agent_calls() == []
    assert len(harness.published_of(workflow_id, "workflow.failed")) == 1


APPROVAL_PLAN = {
    "steps": [
        {"title": "send the alpha mail", "instruction": "Send it.", "needs_approval": True},
        {"title": "collect beta", "instruction": "Collect beta."},
        {"title": "summarise", "instruction": "Sum up.", "depends_on": [1]},
    ]
}


@pytest.mark.parametrize(("answer", "status"), [("approve", "completed"), ("reject", "failed")])
async def test_a_step_that_needs_approval_waits_for_it_before_any_llm_call(
    harness: Harness, endpoint: ScriptedEndpoint, answer: str, status: str
) -> None:
    endpoint.add_rule(rule({"json": APPROVAL_PLAN}, schema_name="tributary_plan"))
    workflow_id = await harness.submit("mail alpha, collect beta, sum up")
    await harness.run()
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.AWAITING_INPUT
    (request,) = record.open_inputs
    assert (request.kind, request.step_id) == ("step_approval", "s1")
    assert endpoint.agent_calls("send the alpha mail") == []
    assert len(endpoint.agent_calls("collect beta")) == 1  # the others go on meanwhile
    await inputs_of(harness).answer(
        workflow_id, request_id=request.request_id, answer=answer, source="http"
    )
    await harness.run()
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    steps = {s.step_id: s for s in record.steps}
    assert steps["s1"].status == status
    if answer == "approve":
        assert len(endpoint.agent_calls("send the alpha mail")) == 1
        assert steps["s3"].status is StepStatus.COMPLETED
    else:
        assert endpoint.agent_calls("send the alpha mail") == []
        assert steps["s1"].error is not None
        assert steps["s1"].error.code == "step_rejected"
        assert steps["s3"].status is StepStatus.FAILED  # its dependent is skipped
        assert record.partial


async def test_a_secret_in_a_question_is_redacted_wherever_it_is_kept(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    secret = "sk-" + "a1b2c3d4" * 3
    endpoint.add_rule(
        rule(
            {"tool_calls": [{"name": "ask_human", "arguments": {"question": f"use {secret}?"}}]},
            has_tools=True,
            has_tool_result=False,
            last_user_contains="alpha",
        )
    )
    workflow_id = await harness.submit(TASK)
    await harness.run()
    record = await harness.record(workflow_id)
    (request,) = record.open_inputs
    step = record.step(request.step_id or "")
    assert step is not None
    assert step.checkpoint is not None
    kept = [request.question, step.checkpoint.model_dump_json()]
    kept += [e.model_dump_json() for e in harness.published_of(workflow_id, "input.requested")]
    assert all(secret not in text for text in kept)
    assert "[REDACTED]" in request.question


async def test_the_answered_question_is_recorded_as_the_ask_human_calls_result(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await paused(harness, endpoint)
    record = await harness.record(workflow_id)
    for request in record.open_inputs:
        await inputs_of(harness).answer(
            workflow_id, request_id=request.request_id, answer="red", source="http"
        )
    await harness.run()
    calls = [
        e
        for e in harness.published_of(workflow_id, "tool.called")
        if isinstance(e, ToolCalled) and e.name == "ask_human"
    ]
    assert sorted(c.step_id or "" for c in calls) == ["s1", "s2"]
    assert all(c.body is not None and c.body.result == "red" for c in calls)
    assert all(c.attempt == 2 for c in calls)  # recorded by the run that resumed


class _MoveBetween:
    """A store where another move comes before each of the first ``times`` answers is
    written: ``between`` makes it (True: a real one, which the answer's write then meets;
    False: the answer's write is told it conflicted, as after a move elsewhere)."""

    def __init__(self, store: Any, between: Callable[[], Awaitable[bool]], times: int) -> None:
        self._store, self._between, self._left = store, between, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def apply(self, transition: Transition) -> Any:
        if self._left > 0 and transition.move is Move.ANSWER_INPUT:
            self._left -= 1
            if not await self._between():
                raise TransitionConflict("workflow", "moved on")
        return await self._store.apply(transition)


async def test_an_answer_that_loses_a_race_is_settled_again_or_refused_with_why(
    harness: Harness, endpoint: ScriptedEndpoint
) -> None:
    workflow_id = await paused(harness, endpoint)
    record = await harness.record(workflow_id)
    alpha, beta = (request_of(record.open_inputs, s.step_id) for s in record.steps[:2])
    ports = harness.ports_of("gateway")
    answers = WorkflowInputs(store=ports.store, publisher=ports.publisher)

    async def elsewhere() -> bool:
        return False

    # Another move came between, and the request is still open: answered on the next read.
    racing = WorkflowInputs(
        store=_MoveBetween(ports.store, elsewhere, times=2), publisher=ports.publisher
    )
    settled = await racing.answer(workflow_id, request_id=alpha, answer="red", source="http")
    assert settled.state == "answered"

    # Another answer came first: refused with the reason, not a bare conflict.
    async def answered_first() -> bool:
        await answers.answer(workflow_id, request_id=beta, answer="blue", source="kafka")
        return True

    racing = WorkflowInputs(
        store=_MoveBetween(ports.store, answered_first, times=1), publisher=ports.publisher
    )
    with pytest.raises(InputRefused) as refused:
        await racing.answer(workflow_id, request_id=beta, answer="red", source="http")
    assert refused.value.refusal is Refusal.ALREADY_ANSWERED
    latest = await harness.record(workflow_id)
    assert [r.answer for r in latest.input_requests if r.request_id == beta] == ["blue"]
