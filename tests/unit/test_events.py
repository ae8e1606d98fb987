from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tributary_shared.core import topics
from tributary_shared.core.events import (
    ErrorInfo,
    PlannedStep,
    StepCompleted,
    StepDispatched,
    WorkflowRequested,
    decode_event,
    derived_event_id,
    encode_event,
    event_catalog,
    home_topic,
)


def test_an_event_round_trips_through_its_wire_form() -> None:
    event = WorkflowRequested(workflow_id="wf_1", task="compare rivers")
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert isinstance(decoded, WorkflowRequested)
    assert decoded.occurred_at.tzinfo is not None
    assert decoded.schema_version == 1


def test_events_are_immutable() -> None:
    event = WorkflowRequested(workflow_id="wf_1", task="t")
    with pytest.raises(ValidationError):
        event.task = "other"  # type: ignore[misc]


def test_unknown_fields_are_ignored_so_producers_can_add_fields_first() -> None:
    raw = encode_event(WorkflowRequested(workflow_id="wf_1", task="t"))
    widened = raw.replace(b'"task"', b'"future_field":42,"task"')
    assert isinstance(decode_event(widened), WorkflowRequested)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"type": "no.such.event", "workflow_id": "wf_1"}',
        b'{"type": "workflow.requested"}',
        b'{"type": "workflow.requested", "workflow_id": "wf", "task": "t", '
        b'"occurred_at": "2026-01-01T00:00:00"}',
    ],
    ids=["not-json", "unknown-type", "missing-fields", "naive-timestamp"],
)
def test_malformed_or_unknown_events_are_rejected(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_event(raw)


def test_derived_event_ids_are_stable_and_distinct() -> None:
    assert derived_event_id("e1", "plan") == derived_event_id("e1", "plan")
    assert derived_event_id("e1", "plan") != derived_event_id("e2", "plan")
    assert derived_event_id("e1", "dispatch", "s1") != derived_event_id("e1", "dispatch", "s2")


def test_each_event_type_has_one_home_topic() -> None:
    step = PlannedStep(step_id="s1", index=0, title="t", instruction="i")
    assert home_topic(WorkflowRequested(workflow_id="w", task="t")) == topics.WORKFLOW_REQUESTS.name
    assert home_topic(StepDispatched(workflow_id="w", step=step, task="t")) == topics.STEPS.name
    assert (
        home_topic(StepCompleted(workflow_id="w", step_id="s1", result="r", iterations=1))
        == topics.STEP_RESULTS.name
    )


def test_the_catalog_lists_every_event_type_by_its_literal() -> None:
    catalog = event_catalog()
    assert catalog["workflow.requested"] is WorkflowRequested
    assert {"plan.created", "step.failed", "workflow.completed", "workflow.failed"} <= set(catalog)


@pytest.mark.parametrize("field", ["event_id", "occurred_at", "workflow_id"])
def test_an_event_missing_envelope_fields_on_the_wire_is_rejected(field: str) -> None:
    wire = WorkflowRequested(workflow_id="wf_1", task="t").model_dump(mode="json")
    del wire[field]
    with pytest.raises(ValidationError, match=field):
        decode_event(json.dumps(wire))


def test_an_event_of_a_newer_schema_version_is_refused_not_misread() -> None:
    wire = WorkflowRequested(workflow_id="wf_1", task="t").model_dump(mode="json")
    wire["schema_version"] = 2
    with pytest.raises(ValidationError, match="schema_version"):
        decode_event(json.dumps(wire))


def test_error_classes_are_the_taxonomy_s() -> None:
    with pytest.raises(ValidationError):
        ErrorInfo(code="x", message="x", error_class="mysterious")
