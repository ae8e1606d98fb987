"""``tributary replay``'s model: a workflow's run rebuilt from its events alone."""

from __future__ import annotations

import random

import pytest

from tests.support.recorded_run import (
    ANSWER,
    LONG_PAGE,
    QUESTION,
    TASK,
    WORKFLOW,
    paused_run,
    recorded_run,
)
from tributary_cli.replay.render import as_json
from tributary_cli.replay.timeline import CallView, StepView, Timeline, build_timeline
from tributary_shared.core.events import LLMCalled, StepCompleted, StepFailed, ToolCalled


@pytest.fixture
def timeline() -> Timeline:
    return build_timeline(recorded_run())


def step(timeline: Timeline, step_id: str) -> StepView:
    [found] = [s for s in timeline.steps if s.step_id == step_id]
    return found


def kinds(calls: tuple[CallView, ...]) -> list[tuple[str, int]]:
    return [(view.kind, view.record.sequence) for view in calls]


def test_the_request_plan_and_outcome_come_from_their_events(timeline: Timeline) -> None:
    assert timeline.workflow_id == WORKFLOW
    assert timeline.request is not None
    assert timeline.request.task == TASK
    assert timeline.request.options.token_budget == 300
    assert timeline.plan is not None
    assert [s.step_id for s in timeline.steps] == ["s1", "s2", "s3"]
    assert step(timeline, "s3").planned is not None
    assert step(timeline, "s3").planned.depends_on == ("s1", "s2")  # type: ignore[union-attr]
    assert kinds(timeline.planning.calls) == [("llm", 1)]
    assert timeline.status == "completed"
    assert timeline.outcome is not None
    assert timeline.outcome.result == ANSWER  # type: ignore[union-attr]
    assert timeline.problems == ()


def test_a_step_attempt_shows_each_iteration_its_calls_and_the_retried_tries(
    timeline: Timeline,
) -> None:
    s1 = step(timeline, "s1")
    [attempt] = s1.attempts
    assert [i.number for i in attempt.iterations] == [1, 2]
    assert kinds(attempt.iterations[0].calls) == [("llm", 1), ("tool", 1)]
    assert kinds(attempt.iterations[1].calls) == [("llm", 2)]
    first = attempt.iterations[0].calls[0].record
    assert isinstance(first, LLMCalled)
    assert [t.error.code if t.error else None for t in first.tries] == ["llm_unavailable", None]
    tool = attempt.iterations[0].calls[1].record
    assert isinstance(tool, ToolCalled)
    assert tool.body is not None
    assert tool.body.result == "42"
    # The second call sent two new messages after the two it kept from the first.
    assert attempt.iterations[1].calls[0].messages_total == 4
    assert [w.step_id for w in attempt.waits] == ["s1"]
    assert isinstance(s1.outcome, StepCompleted)


def test_a_body_in_payload_parts_is_joined_back_whole(timeline: Timeline) -> None:
    [first, _] = step(timeline, "s2").attempts
    fetch = first.iterations[0].calls[1]
    assert isinstance(fetch.record, ToolCalled)
    assert fetch.incomplete is None
    assert fetch.record.body is not None
    assert fetch.record.body.result == LONG_PAGE


def test_a_failed_step_keeps_every_attempt_and_a_skipped_one_its_failure(
    timeline: Timeline,
) -> None:
    s2 = step(timeline, "s2")
    assert [a.number for a in s2.attempts] == [1, 2]
    assert all(isinstance(a.outcome, StepFailed) for a in s2.attempts)
    [failing_call] = s2.attempts[1].iterations[0].calls
    assert failing_call.record.error is not None
    assert failing_call.record.error.code == "llm_refused"
    s3 = step(timeline, "s3")
    assert [a.started for a in s3.attempts] == [None]
    assert isinstance(s3.outcome, StepFailed)
    assert s3.outcome.error.code == "dependency_failed"


def test_the_budget_compares_what_was_used_with_what_was_asked(timeline: Timeline) -> None:
    budget = timeline.budget
    assert budget.token_budget == 300
    # planner 100+40, s1 50+10 and 70+5, s2's first call 40+10; the refused call none.
    assert budget.used_tokens == 325
    assert budget.used_source == "llm.called"
    assert budget.exhausted is not None
    assert (budget.exhausted.limit_tokens, budget.exhausted.used_tokens) == (300, 325)


def test_missing_payload_parts_mark_the_record_incomplete_instead_of_failing() -> None:
    timeline = build_timeline(recorded_run(with_all_parts=False))
    [first, _] = step(timeline, "s2").attempts
    fetch = first.iterations[0].calls[1]
    assert fetch.record.body is None
    assert fetch.incomplete is not None
    assert "parts" in fetch.incomplete
    assert len(timeline.problems) == 1
    assert timeline.status == "completed"  # the rest of the run is all there


def test_order_and_duplicates_of_the_input_change_nothing() -> None:
    events = recorded_run()
    shuffled = events + events[:5]  # redeliveries of the same events
    random.Random(7).shuffle(shuffled)
    again = build_timeline(shuffled)
    assert as_json(again) == as_json(build_timeline(events))
    times = [event.occurred_at for event in again.events]
    assert times == sorted(times)
    assert len(again.events) == len(events)


def test_a_run_without_a_terminal_event_is_running() -> None:
    events = [e for e in recorded_run() if not e.type.startswith("workflow.completed")]
    assert build_timeline(events).status == "running"


def test_no_events_or_several_workflows_are_refused() -> None:
    with pytest.raises(ValueError, match="no events"):
        build_timeline([])
    other = recorded_run()[0].model_copy(update={"workflow_id": "wf_other", "event_id": "x"})
    with pytest.raises(ValueError, match="2 workflows"):
        build_timeline([*recorded_run(), other])


def test_a_question_is_in_the_attempt_that_asked_it_after_the_iteration_that_asked() -> None:
    timeline = build_timeline(paused_run())
    paused, resumed = step(timeline, "p1").attempts
    [asked] = paused.inputs
    assert (asked.requested.kind, asked.requested.question) == ("question", QUESTION)
    assert asked.requested.choices == ("red", "blue")
    assert asked.iteration == 1 == paused.iterations[-1].number
    assert asked.answered is not None
    assert (asked.answered.answer, asked.answered.source) == ("blue", "http")
    assert paused.outcome is None
    # The resumed attempt: the ask_human call answered, then the model called again.
    assert [i.number for i in resumed.iterations] == [1, 2]
    assert resumed.inputs == ()
    assert isinstance(resumed.outcome, StepCompleted)


def test_approvals_belong_to_the_plan_and_to_their_step() -> None:
    timeline = build_timeline(paused_run())
    [plan] = timeline.plan_inputs
    assert plan.requested.kind == "plan_approval"
    assert plan.answered is not None
    assert (plan.answered.answer, plan.answered.source) == ("approve", "kafka")
    [only] = step(timeline, "p2").attempts
    [approval] = only.inputs
    assert (approval.requested.kind, approval.iteration) == ("step_approval", None)
    assert approval.answered is not None
    assert approval.answered.answer == "reject"
    assert [v.requested.request_id for v in timeline.inputs] == ["in_plan", "in_p1", "in_p2"]
    assert timeline.status == "completed"


def test_a_run_with_an_unanswered_request_is_awaiting_input() -> None:
    timeline = build_timeline(paused_run(answered=False))
    assert timeline.status == "awaiting_input"
    assert [v.requested.request_id for v in timeline.inputs if v.answered is None] == [
        "in_p1",
        "in_p2",
    ]
