"""The chaos tests' history checker finds each broken invariant it is meant to see."""

from __future__ import annotations

from tests.support.history import History, problems_of


def event(type_: str, event_id: str, **fields: object) -> dict[str, object]:
    return {"type": type_, "event_id": event_id, "workflow_id": "wf", **fields}


def healthy() -> History:
    log = [
        event("workflow.requested", "r"),
        event("step.dispatched", "d1", step={"step_id": "s1"}),
        event("step.completed", "c1", step_id="s1"),
        event("workflow.completed", "f"),
    ]
    return History(kafka=[*log, log[2]], log=list(log))  # a re-sent copy is fine


def test_a_healthy_history_has_no_problems() -> None:
    assert problems_of("wf", healthy()) == []


def test_two_outcomes_of_one_step_are_found() -> None:
    history = healthy()
    history.kafka.append(event("step.failed", "x1", step_id="s1"))
    history.log.append(event("step.failed", "x1", step_id="s1"))
    assert any("s1 has 2 outcomes" in p for p in problems_of("wf", history))


def test_a_missing_or_second_final_result_is_found() -> None:
    history = healthy()
    history.log = history.log[:-1]
    history.kafka = history.kafka[:-2]
    assert any("0 terminal events" in p for p in problems_of("wf", history))
    history = healthy()
    history.log.append(event("workflow.failed", "f2"))
    assert any("2 terminal events" in p for p in problems_of("wf", history))


def test_a_final_event_that_never_reached_kafka_is_found() -> None:
    history = healthy()
    history.kafka = [e for e in history.kafka if e["type"] != "workflow.completed"]
    assert any("terminal event on Kafka" in p for p in problems_of("wf", history))


def test_a_dispatched_step_left_unfinished_is_found() -> None:
    history = healthy()
    history.log.insert(2, event("step.dispatched", "d2", step={"step_id": "s2"}))
    history.log = [e for e in history.log if e["type"] != "workflow.completed"]
    assert any("s2 was dispatched and never finished" in p for p in problems_of("wf", history))


def test_an_event_published_but_not_recorded_is_found() -> None:
    history = healthy()
    history.kafka.append(event("step.completed", "ghost", step_id="s9"))
    assert any("ghost was published but not recorded" in p for p in problems_of("wf", history))


def test_an_event_recorded_but_never_published_is_found() -> None:
    history = healthy()
    history.log.insert(2, event("step.started", "lost", step_id="s1", attempt=1))
    assert any("lost was recorded but never published" in p for p in problems_of("wf", history))
