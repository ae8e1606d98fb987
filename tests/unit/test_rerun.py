"""``tributary replay --rerun``: a recorded workflow run again by the current code.

A workflow with a DAG plan and tool calls is recorded in-process (the real
handlers, the scripted LLM behind the real SDK), then rerun from its events.
What the guarantees protect is counted where it happens: requests the scripted
server received, per caller and step, and runs of a counting tool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from pydantic import BaseModel

from tests.support.scripted import HOST, PLAN_FORMAT, ScriptedEndpoint, deployment, rule
from tributary_agent_runner import loop
from tributary_agent_runner.tools.calculator import calculator_tool
from tributary_agent_runner.tools.registry import Tool, ToolError, ToolRegistry
from tributary_cli.replay.pipeline import Pipeline, ServiceSettings
from tributary_cli.replay.rerun import RerunEnvironment, RerunImpossible, rerun
from tributary_planner import planning
from tributary_planner import service as planner_service
from tributary_planner.planning import PlanDraft
from tributary_scripted_llm import Rule
from tributary_shared.core.events import (
    AnyEvent,
    LLMCalled,
    PlannedStep,
    StepCompleted,
    ToolCalled,
    WorkflowOptions,
    WorkflowRequested,
    decode_event,
    encode_event,
)
from tributary_shared.core.untrusted import untrusted
from tributary_synthesizer import service as synthesizer_service
from tributary_synthesizer import synthesis

TASK = "collect alpha; collect beta; combine both"
PLAN = {
    "steps": [
        {"title": "collect alpha", "instruction": "Collect alpha.", "complexity": "low"},
        {"title": "collect beta", "instruction": "Collect beta.", "complexity": "medium"},
        {
            "title": "combine both",
            "instruction": "Combine alpha and beta.",
            "complexity": "high",
            "depends_on": [1, 2],
        },
    ]
}


class LookupArgs(BaseModel):
    key: str


@dataclass
class Lookup:
    """A tool that counts its runs; a key it does not know is a tool error."""

    runs: list[str] = field(default_factory=list)
    description: str = "Look a key up."

    @property
    def tool(self) -> Tool[LookupArgs]:
        return Tool(
            name="lookup", description=self.description, args_model=LookupArgs, run=self._run
        )

    async def _run(self, args: LookupArgs) -> str:
        self.runs.append(args.key)
        if args.key == "nothing":
            raise ToolError("no such key: nothing")
        return f"the value of {args.key} is 42"


@dataclass
class Recorded:
    events: list[AnyEvent]
    endpoint: ScriptedEndpoint
    lookup: Lookup


MODEL = "gpt-4o-mini"
BACKUP = "backup-llm"
LLM: dict[str, object] = {
    # The first deployment is down: every call falls back to the second.
    "TRIBUTARY_LLM_DEPLOYMENTS": {
        MODEL: [deployment("primary", HOST), deployment("backup", BACKUP)]
    },
    "TRIBUTARY_LLM_MAX_BACKOFF_S": 0.01,
}


def scripted() -> ScriptedEndpoint:
    endpoint = ScriptedEndpoint(
        rule({"json": PLAN}, schema_name=PLAN_FORMAT),
        # Step 1 is rate limited once (the call is retried), then cut off at its length
        # limit (a model error: the step re-prompts), then answers.
        Rule.model_validate(
            {
                "match": {"last_user_contains": "Your step: collect alpha"},
                "responses": [
                    {"status": 429, "headers": {"Retry-After": "0"}},
                    {"content": "alpha is", "finish_reason": "length"},
                ],
                "repeat_last": False,
            }
        ),
        # Step 2 looks up a key it does not know first, then one it knows.
        Rule.model_validate(
            {
                "match": {"last_user_contains": "Your step: collect beta", "has_tools": True},
                "responses": [
                    {"tool_calls": [{"name": "lookup", "arguments": {"key": "nothing"}}]},
                    {"tool_calls": [{"name": "lookup", "arguments": {"key": "beta"}}]},
                ],
                "repeat_last": False,
            }
        ),
    )
    endpoint.take_down(HOST)
    return endpoint


def settings(endpoint: ScriptedEndpoint) -> ServiceSettings:
    return ServiceSettings(llm=endpoint.settings(**LLM))


async def record_a_workflow() -> Recorded:
    """A workflow run through the handlers with its calls recorded; its events as the
    topics carry them."""
    endpoint = scripted()
    lookup = Lookup()
    pipeline = Pipeline(
        client=endpoint.client(**LLM),
        tools=ToolRegistry([calculator_tool, lookup.tool]),
        settings=settings(endpoint),
    )
    request = WorkflowRequested(
        workflow_id="wf_rerun",
        tenant_id="acme",
        task=TASK,
        options=WorkflowOptions(token_budget=50_000, deadline_s=120),
    )
    record = await pipeline.run(request, deadline_s=120)
    await pipeline.close()
    assert record is not None
    assert record.status.value == "completed"
    events = [decode_event(encode_event(e)) for e in pipeline.published]
    return Recorded(events, endpoint, lookup)


def environment(recorded: Recorded, *, lookup: Lookup | None = None) -> RerunEnvironment:
    @asynccontextmanager
    async def tools() -> AsyncIterator[ToolRegistry]:
        yield ToolRegistry([calculator_tool, (lookup or recorded.lookup).tool])

    return RerunEnvironment(
        settings=settings(recorded.endpoint),
        tools=tools,
        live_llm=lambda: recorded.endpoint.client(**LLM),
    )


@pytest.fixture
async def recorded() -> AsyncIterator[Recorded]:
    run = await record_a_workflow()
    yield run
    await run.endpoint.aclose()


def test_the_recording_has_a_dag_plan_tool_calls_and_a_tool_error(recorded: Recorded) -> None:
    llm = [e for e in recorded.events if isinstance(e, LLMCalled)]
    tools = [e for e in recorded.events if isinstance(e, ToolCalled)]
    assert {(e.role, e.step_id) for e in llm} == {
        ("planner", None),
        ("agent", "s1"),
        ("agent", "s2"),
        ("agent", "s3"),
        ("synthesizer", None),
    }
    assert [(t.step_id, t.failed) for t in tools] == [("s2", True), ("s2", False)]
    assert recorded.lookup.runs == ["nothing", "beta"]
    step_1 = [(e.error.code if e.error else None) for e in llm if e.step_id == "s1"]
    assert step_1 == ["llm_truncated", None]  # after a 429 retried, then re-prompted
    # Three requests: the 429, the cut-off answer, the answer.
    assert len(recorded.endpoint.agent_calls("collect alpha")) == 3
    served = {e.body.response.deployment for e in llm if e.body and e.body.response}
    assert served == {"backup"}
    tries = [(t.deployment, t.error.code if t.error else None) for e in llm for t in e.tries]
    assert ("primary", "llm_unavailable") in tries  # handed over to the backup
    assert ("backup", "llm_rate_limited") in tries  # and retried there


async def test_a_rerun_of_an_unchanged_workflow_has_no_divergence_and_calls_nothing(
    recorded: Recorded,
) -> None:
    endpoint = recorded.endpoint
    attempts = (endpoint.attempts_at(HOST), endpoint.attempts_at(BACKUP))

    report = await rerun(recorded.events, environment=environment(recorded))

    assert report.divergence is None, report.render()
    assert report.render().splitlines()[0] == "0 divergences"
    assert (endpoint.attempts_at(HOST), endpoint.attempts_at(BACKUP)) == attempts  # no call
    assert recorded.lookup.runs == ["nothing", "beta"]  # no tool ran again
    llm_calls = sum(isinstance(e, LLMCalled) for e in recorded.events)
    assert report.llm_calls_replayed == llm_calls
    assert report.tool_calls_replayed == 2
    assert (report.llm_calls_live, report.tool_calls_live) == (0, 0)
    assert report.status == "completed"
    assert report.final_answer is not None
    assert report.as_json()["divergences"] == 0


async def test_a_changed_agent_prompt_diverges_at_its_step_and_iteration(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tool results now reach the model under another label: the first call that sends
    # one is step s2's second iteration.
    def relabelled(text: str, *, source: str) -> str:
        return untrusted(text, source=source.replace("tool", "tool output of"))

    monkeypatch.setattr(loop, "untrusted", relabelled)
    requests = len(recorded.endpoint.requests)

    report = await rerun(recorded.events, environment=environment(recorded))

    divergence = report.divergence
    assert divergence is not None
    assert (divergence.kind, divergence.role, divergence.step_id, divergence.iteration) == (
        "prompt",
        "agent",
        "s2",
        2,
    )
    assert '-    <untrusted_data source="tool lookup">' in divergence.diff
    assert '+    <untrusted_data source="tool output of lookup">' in divergence.diff
    first_line = report.render().splitlines()[0]
    assert first_line == "1 divergence: prompt at agent, step s2, iteration 2, call 2"
    assert len(recorded.endpoint.requests) == requests


async def test_a_changed_synthesis_prompt_diverges_at_the_synthesis(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synthesis, "SYSTEM_PROMPT", "Write the final answer.")

    report = await rerun(recorded.events, environment=environment(recorded))

    assert report.divergence is not None
    assert (report.divergence.kind, report.divergence.role) == ("prompt", "synthesizer")
    assert "+    Write the final answer." in report.divergence.diff


async def test_a_changed_tool_schema_diverges_as_the_tools_offered(recorded: Recorded) -> None:
    changed = Lookup(description="Look a key up in the new store.")

    report = await rerun(recorded.events, environment=environment(recorded, lookup=changed))

    divergence = report.divergence
    assert divergence is not None
    assert (divergence.kind, divergence.step_id, divergence.iteration) == (
        "tools offered",
        "s1",
        1,
    )
    assert '+      "description": "Look a key up in the new store.",' in divergence.diff
    assert changed.runs == []


async def test_a_plan_the_planner_now_makes_otherwise_diverges_as_the_plan(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same reply of the model, read into steps whose titles are capitalised now.
    def capitalised(draft: PlanDraft) -> tuple[PlannedStep, ...]:
        return tuple(
            step.model_copy(update={"title": step.title.capitalize()})
            for step in planning.planned_steps(draft)
        )

    monkeypatch.setattr(planner_service, "planned_steps", capitalised)
    alpha = len(recorded.endpoint.agent_calls("collect alpha"))

    report = await rerun(recorded.events, environment=environment(recorded))

    divergence = report.divergence
    assert divergence is not None
    assert (divergence.kind, divergence.role, divergence.step_id) == ("plan", "planner", None)
    assert "-1. s1 [low]: collect alpha" in divergence.diff
    assert "+1. s1 [low]: Collect alpha" in divergence.diff
    assert report.render().splitlines()[0] == "1 divergence: plan at planner"
    assert len(recorded.endpoint.agent_calls("collect alpha")) == alpha  # no step ran


async def test_live_from_a_step_calls_the_model_for_it_and_after_only(recorded: Recorded) -> None:
    endpoint = recorded.endpoint
    before = {
        "planner": len(endpoint.planner_calls()),
        "alpha": len(endpoint.agent_calls("collect alpha")),
        "beta": len(endpoint.agent_calls("collect beta")),
        "combine": len(endpoint.agent_calls("combine both")),
        "synthesis": len(endpoint.synthesis_calls()),
    }
    endpoint.add_rule(  # step 2 live: it looks the key up at once this time
        rule(
            {"tool_calls": [{"name": "lookup", "arguments": {"key": "beta"}}]},
            last_user_contains="Your step: collect beta",
            has_tool_result=False,
        )
    )

    report = await rerun(
        recorded.events, live_from="collect beta", environment=environment(recorded)
    )

    assert report.divergence is None, report.render()
    assert report.live_from == "s2"
    after = {
        "planner": len(endpoint.planner_calls()),
        "alpha": len(endpoint.agent_calls("collect alpha")),
        "beta": len(endpoint.agent_calls("collect beta")),
        "combine": len(endpoint.agent_calls("combine both")),
        "synthesis": len(endpoint.synthesis_calls()),
    }
    assert after["planner"] == before["planner"]
    assert after["alpha"] == before["alpha"]
    assert after["beta"] == before["beta"] + 2  # the tool call, then the answer
    assert after["combine"] == before["combine"] + 1
    assert after["synthesis"] == before["synthesis"] + 1
    assert recorded.lookup.runs == ["nothing", "beta", "beta"]  # the live step's tool ran
    assert (report.llm_calls_live, report.tool_calls_live) == (4, 1)
    assert report.llm_calls_replayed == 3  # the planner's and step 1's two
    assert report.tool_calls_replayed == 0
    assert report.status == "completed"


@pytest.mark.parametrize("name", ["s2", "2", "Collect Beta"])
async def test_live_from_names_a_step_by_id_number_or_title(recorded: Recorded, name: str) -> None:
    report = await rerun(recorded.events, live_from=name, environment=environment(recorded))
    assert report.live_from == "s2"


async def test_live_from_an_unknown_step_is_refused(recorded: Recorded) -> None:
    with pytest.raises(RerunImpossible, match=r"no step 'collect gamma'.*1\. s1 'collect alpha'"):
        await rerun(recorded.events, live_from="collect gamma", environment=environment(recorded))


async def test_events_without_a_request_or_without_call_records_cannot_be_rerun(
    recorded: Recorded,
) -> None:
    no_request = [e for e in recorded.events if e.type != "workflow.requested"]
    with pytest.raises(RerunImpossible, match=r"no workflow\.requested"):
        await rerun(no_request, environment=environment(recorded))
    no_calls = [e for e in recorded.events if not isinstance(e, LLMCalled | ToolCalled)]
    with pytest.raises(RerunImpossible, match=r"no llm\.called records"):
        await rerun(no_calls, environment=environment(recorded))


def asked_otherwise(record: LLMCalled, event_id: str, *, earlier_s: float = 0) -> LLMCalled:
    """``record`` as another call that asked something else."""
    assert record.body is not None
    request = record.body.request.model_copy(
        update={"messages": ({"role": "user", "content": "something else"},), "messages_kept": 0}
    )
    return record.model_copy(
        update={
            "event_id": event_id,
            "started_at": record.started_at - timedelta(seconds=earlier_s),
            "body": record.body.model_copy(update={"request": request}),
        }
    )


async def test_a_rerun_replays_the_attempt_and_the_run_that_made_the_outcome(
    recorded: Recorded,
) -> None:
    # Step s2 as if its first attempt had died after one call (asked otherwise) and
    # attempt 2 made the outcome; the planning as if a planner had died in it earlier.
    events: list[AnyEvent] = []
    for event in recorded.events:
        if isinstance(event, LLMCalled | ToolCalled | StepCompleted) and event.step_id == "s2":
            event = event.model_copy(update={"attempt": 2})
        events.append(event)
    step_2 = next(e for e in recorded.events if isinstance(e, LLMCalled) and e.step_id == "s2")
    planning = next(e for e in recorded.events if isinstance(e, LLMCalled) and e.role == "planner")
    events.append(asked_otherwise(step_2, "attempt-1-of-s2"))
    events.append(asked_otherwise(planning, "an-earlier-planning", earlier_s=5))

    report = await rerun(events, environment=environment(recorded))

    assert report.divergence is None, report.render()
    assert report.llm_calls_replayed == sum(isinstance(e, LLMCalled) for e in recorded.events)


async def test_code_that_raises_where_the_recording_went_on_is_reported(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> list[dict[str, str]]:
        raise RuntimeError("the synthesis prompt cannot be built")

    monkeypatch.setattr(synthesizer_service, "synthesis_messages", broken)

    report = await rerun(recorded.events, environment=environment(recorded))

    assert report.divergence is not None
    assert (report.divergence.kind, report.divergence.role) == ("handler error", "synthesizer")
    assert report.divergence.actual == "RuntimeError: the synthesis prompt cannot be built"
    assert report.render().startswith("1 divergence: handler error at synthesizer\n")
