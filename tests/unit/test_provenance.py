"""The checks of a consumed event against the store, on records built by the machine.

Events are compared as a consumer gets them (encoded and decoded, as on the
wire), with records as a store returns them.
"""

from __future__ import annotations

from typing import TypeVar

from tributary_planner.service import Planner
from tributary_shared.core import machine
from tributary_shared.core.dispatch import step_dispatch
from tributary_shared.core.errors import EventRefused, recovery_for
from tributary_shared.core.events import (
    PlanCreated,
    PlannedStep,
    StepCompleted,
    StepDispatched,
    StepStarted,
    WorkflowRequested,
    decode_event,
)
from tributary_shared.core.provenance import (
    DISPATCH_UNLIKE_PLAN,
    RESULT_UNLIKE_RECORD,
    TENANT_MISMATCH,
    dispatch_refusal,
    recorded_dispatch,
    result_refusal,
)
from tributary_shared.core.records import WorkflowRecord

PLAN = (
    PlannedStep(step_id="s1", index=0, title="width", instruction="What is 6 * 7?"),
    PlannedStep(step_id="s2", index=1, title="area", instruction="Use it", depends_on=("s1",)),
)


E = TypeVar("E", StepDispatched, StepCompleted)


def on_the_wire(event: E) -> E:
    decoded = decode_event(event.model_dump_json())
    assert isinstance(decoded, type(event))
    return decoded


def running_workflow() -> tuple[WorkflowRecord, WorkflowRequested]:
    request = WorkflowRequested(workflow_id="wf_1", tenant_id="acme", task="measure")
    record = machine.apply(None, machine.create(request, deadline_at=0.0))
    planning = machine.start_planning("wf_1", owner="p", lease_until=10.0, now=1.0)
    record = machine.apply(record, planning)
    plan = PlanCreated(workflow_id="wf_1", tenant_id="acme", steps=PLAN)
    first = step_dispatch(request, PLAN[0], causation_id=plan.event_id)
    return machine.apply(record, machine.record_plan(plan, [first], owner="p")), request


def finished_first_step(record: WorkflowRecord) -> tuple[WorkflowRecord, StepCompleted]:
    started = StepStarted(workflow_id="wf_1", tenant_id="acme", step_id="s1", attempt=1)
    record = machine.apply(
        record, machine.start_step(started, owner="r", lease_until=10.0, now=1.0)
    )
    done = StepCompleted(
        workflow_id="wf_1", tenant_id="acme", step_id="s1", result="42", iterations=1
    )
    return machine.apply(record, machine.finish_step(done, owner="r")), done


def test_the_planners_own_dispatches_pass_as_they_arrive() -> None:
    record, request = running_workflow()
    first = on_the_wire(step_dispatch(request, PLAN[0], causation_id="c"))
    assert dispatch_refusal(first, record) is None

    record, done = finished_first_step(record)
    release = Planner._dispatch(record, record.steps[1], cause=done)
    record = machine.apply(record, machine.release_step(release))
    dependent = on_the_wire(release)
    assert [i.result for i in dependent.inputs] == ["42"]
    assert dispatch_refusal(dependent, record) is None


def test_a_dispatch_is_refused_for_what_differs_and_says_what() -> None:
    record, request = running_workflow()
    real = step_dispatch(request, PLAN[0], causation_id="c")
    cases = {
        "tenant": (real.model_copy(update={"tenant_id": "other"}), TENANT_MISMATCH),
        "step": (
            real.model_copy(update={"step": PLAN[0].model_copy(update={"complexity": "high"})}),
            DISPATCH_UNLIKE_PLAN,
        ),
        "task": (real.model_copy(update={"task": "something else"}), DISPATCH_UNLIKE_PLAN),
    }
    for what, (event, code) in cases.items():
        refused = dispatch_refusal(event, record)
        assert isinstance(refused, EventRefused), what
        assert refused.code == code
        assert recovery_for(refused).dead_letters
        assert recovery_for(refused).spares_workflow
    refused = dispatch_refusal(cases["task"][0], record)
    assert refused is not None
    assert "its task differ" in refused.message
    assert "acme" not in (dispatch_refusal(cases["tenant"][0], record) or refused).message


def test_a_runner_gets_the_step_as_stored_whatever_the_message_carried() -> None:
    record, request = running_workflow()
    real = step_dispatch(request, PLAN[0], causation_id="c")
    carried = real.model_copy(
        update={
            "tenant_id": "other",
            "task": "x",
            "step": PLAN[0].model_copy(update={"instruction": "x"}),
        }
    )
    assert recorded_dispatch(carried, record) == real


def test_a_step_result_passes_only_as_the_store_recorded_it() -> None:
    record, _ = running_workflow()
    record, done = finished_first_step(record)
    assert result_refusal(on_the_wire(done), record) is None
    for unlike in (
        done.model_copy(update={"result": "43"}),
        done.model_copy(update={"step_id": "s2"}),  # no outcome recorded yet
        done.model_copy(update={"step_id": "s7"}),  # not in the plan
    ):
        refused = result_refusal(unlike, record)
        assert refused is not None
        assert refused.code == RESULT_UNLIKE_RECORD
    foreign = result_refusal(done.model_copy(update={"tenant_id": "other"}), record)
    assert foreign is not None
    assert foreign.code == TENANT_MISMATCH
