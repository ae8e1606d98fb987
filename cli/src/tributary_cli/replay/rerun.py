"""``tributary replay <workflow-id> --rerun``: a recorded workflow run again by this code.

The recorded ``workflow.requested`` (same workflow id, tenant, task and
options) goes through the services' real planner, agent-runner and synthesizer
handlers in this process (``pipeline``), with budgets and routing as in
production. No model and no tool is called: each LLM call is answered by the
recorded call of the same role, step and sequence once what it asks (the whole
conversation, the tools offered, the response format) is the same, and each
tool call by the recorded result of the same call of its step (``substitutes``).
Each input request (an agent's question, a plan or step approval) must be the
recorded one, and gets the recorded answer when nothing else is left to run
(``answers``): the paused step resumes from its checkpoint as it did, and a
rejection is given again. A request the recording leaves unanswered ends the
rerun there (``RerunReport.awaiting_input``); nothing waits for a person.
After the planning the plan is compared with the recorded one, after each step
its outcome, and at the end the answer.

The report is ``0 divergences``, or the first point where the rerun did
something else, naming the role, step and iteration and showing the diff.

``live_from`` (a step's id, its title, or its 1-based number in the plan)
replays the planning and the steps before that one; from that step on (and
every step that builds on a live one, and the synthesis) the configured model
is called and the tools run for real, so a changed prompt or tool meets exactly
the situation of the recording.

Deadlines count from the rerun's start (the recorded ones have passed); the
workflow's budget is the one its request set, as recorded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tributary_cli.replay.recorded import Recording, RerunImpossible, recording_of
from tributary_cli.replay.report import Divergence, RerunReport, unified_diff
from tributary_shared.core.events import (
    AnyEvent,
    EventEnvelope,
    InputRequested,
    PlanCreated,
    PlannedStep,
    StepCompleted,
    StepFailed,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
)
from tributary_shared.core.status import WorkflowStatus

if TYPE_CHECKING:
    # The services' packages are the ``replay`` extra of tributary-cli (the gateway's
    # image ships the command without them): they are imported when a rerun starts.
    from tributary_agent_runner.settings import AgentSettings
    from tributary_agent_runner.tools.registry import ToolRegistry
    from tributary_cli.replay.answers import RecordedAnswers
    from tributary_cli.replay.pipeline import ServiceSettings
    from tributary_cli.replay.substitutes import RerunState
    from tributary_shared.runtime.llm.metered import CompletionClient

__all__ = [
    "Divergence",
    "RerunEnvironment",
    "RerunImpossible",
    "RerunReport",
    "live_steps",
    "rerun",
]


@dataclass(frozen=True)
class RerunEnvironment:
    """What a rerun runs with besides the recording: the services' settings, the
    agent-runner's tools, and the model a live step calls."""

    settings: ServiceSettings
    tools: Callable[[], AbstractAsyncContextManager[ToolRegistry]]
    """Opens the tool registry (its schemas are offered; live steps run them)."""
    live_llm: Callable[[], CompletionClient]
    """The model client of live calls; made only for ``live_from``."""

    @classmethod
    def from_environment(cls) -> RerunEnvironment:
        """As the services have them: settings from the ``TRIBUTARY_*`` variables, the
        agent-runner's built-in and MCP tools, the configured LLM deployments."""
        _services_installed()
        from tributary_cli.replay.pipeline import ServiceSettings
        from tributary_shared.runtime.llm.client import LLMClient

        settings = ServiceSettings.from_environment()
        return cls(
            settings=settings,
            tools=lambda: _agent_runner_tools(settings.agent),
            live_llm=lambda: LLMClient(settings.llm),
        )


@asynccontextmanager
async def _agent_runner_tools(settings: AgentSettings) -> AsyncIterator[ToolRegistry]:
    """The registry the agent-runner builds (``tributary_agent_runner.__main__``)."""
    from tributary_agent_runner.__main__ import builtin_tools
    from tributary_agent_runner.tools.mcp_tools import McpToolset

    registry = builtin_tools(settings)
    async with McpToolset.from_env(registry):
        yield registry


async def rerun(
    events: Sequence[AnyEvent],
    *,
    live_from: str | None = None,
    environment: RerunEnvironment | None = None,
) -> RerunReport:
    """Run the recorded workflow in ``events`` again (see the module).

    Raises ``RerunImpossible`` when the events hold no request or no call records,
    or ``live_from`` names no step of the recorded plan.
    """
    recording = recording_of(events)
    live = live_steps(recording, live_from) if live_from is not None else None
    _services_installed()
    from tributary_cli.replay.answers import RecordedAnswers
    from tributary_cli.replay.pipeline import Pipeline, PipelineError
    from tributary_cli.replay.substitutes import (
        Diverged,
        ReplayingLLM,
        RerunState,
        replaying_tools,
    )

    env = environment or RerunEnvironment.from_environment()
    state = RerunState(
        recording,
        live_steps=live[1] if live else frozenset(),
        live_synthesis=live is not None,
        redact=env.settings.redactor.json,
    )
    client = ReplayingLLM(state, live=env.live_llm() if live else None)
    answers = RecordedAnswers(state)
    checks = _Checks(state, answers)
    status: str | None = None
    answer: str | None = None
    async with env.tools() as tools:
        pipeline = Pipeline(
            client=client, tools=replaying_tools(tools, state), settings=env.settings
        )
        try:
            request = recording.request
            deadline_s = request.options.deadline_s or env.settings.defaults.default_deadline_s
            record = await pipeline.run(
                request,
                deadline_s=deadline_s,
                observe=checks,
                on_idle=lambda: answers.settle(pipeline),
            )
            checks.at_the_end()
            if record is not None and (record.status.terminal or answers.left_open):
                status = record.status.value
                if record.status is WorkflowStatus.COMPLETED:
                    answer = record.result
        except Diverged:
            pass
        except PipelineError as failed:
            # The code under test raised where the recorded run went on: a finding too.
            if state.divergence is None:
                state.divergence = _handler_error(failed)
        finally:
            await pipeline.close()
    return RerunReport(
        workflow_id=recording.workflow_id,
        divergence=state.divergence,
        llm_calls_replayed=state.llm_calls_replayed,
        llm_calls_live=state.llm_calls_live,
        tool_calls_replayed=state.tool_calls_replayed,
        tool_calls_live=state.tool_calls_live,
        input_answers_given=answers.answers_given,
        awaiting_input=answers.left_open.describe() if answers.left_open else None,
        final_answer=answer,
        status=status,
        live_from=live[0].step_id if live else None,
    )


def _services_installed() -> None:
    """Raises ``RerunImpossible`` when the services' packages are not installed."""
    for package in ("tributary_planner", "tributary_agent_runner", "tributary_synthesizer"):
        if importlib.util.find_spec(package) is None:
            raise RerunImpossible(
                f"a rerun runs the services' handlers, and {package} is not installed here: "
                "install tributary-cli[replay] (a checkout's `uv sync --all-packages` has it)"
            )


def live_steps(recording: Recording, live_from: str) -> tuple[PlannedStep, frozenset[str]]:
    """The step ``live_from`` names (its id, title or 1-based number in the recorded plan)
    and the ids of the steps that run live with it: it, those after it in the plan, and
    those that build on a live step."""
    if recording.plan is None:
        raise RerunImpossible("the recording holds no plan: there is no step to go live from")
    steps = sorted(recording.plan.steps, key=lambda s: s.index)
    wanted = live_from.strip()
    found = (
        next((s for s in steps if s.step_id == wanted), None)
        or next((s for s in steps if wanted.isdigit() and s.index + 1 == int(wanted)), None)
        or next((s for s in steps if s.title.casefold() == wanted.casefold()), None)
    )
    if found is None:
        listed = "; ".join(f"{s.index + 1}. {s.step_id} {s.title!r}" for s in steps)
        raise RerunImpossible(f"no step {live_from!r} in the recorded plan (its steps: {listed})")
    live = {s.step_id for s in steps if s.index >= found.index}
    grown = True
    while grown:
        more = {s.step_id for s in steps if live.intersection(s.depends_on)} - live
        live |= more
        grown = bool(more)
    return found, frozenset(live)


class _Checks:
    """What is compared beyond the calls: the plan, each step's outcome, the answer, and
    that no recorded call was left unmade."""

    def __init__(self, state: RerunState, answers: RecordedAnswers) -> None:
        self._state = state
        self._answers = answers
        self._recording = state.recording
        self._finished = False

    def __call__(self, event: EventEnvelope) -> None:
        if isinstance(event, InputRequested):
            self._answers.asked(event)
        elif isinstance(event, PlanCreated):
            self._missing("planner", "", requests=False)  # its approval is asked after it
            self._compare(
                "planner",
                None,
                "plan",
                _render_plan(self._recording.plan),
                _render_plan(event),
            )
        elif isinstance(event, StepCompleted | StepFailed) and event.attempt > 0:
            if self._state.is_live("agent", event.step_id):
                return
            self._missing("agent", event.step_id)
            recorded = self._recording.outcomes.get(event.step_id)
            self._compare(
                "agent",
                event.step_id,
                "step outcome",
                _render_outcome(recorded),
                self._answers.as_recorded(_render_outcome(event)),
                iteration=event.iterations,
            )
        elif isinstance(event, WorkflowCompleted | WorkflowFailed | WorkflowCancelled):
            self._finished = True
            if self._state.live_synthesis:
                return
            self._missing("synthesizer", "")
            self._compare(
                "workflow",
                None,
                "answer",
                _render_final(self._recording.final),
                self._answers.as_recorded(_render_final(event)),
            )

    def at_the_end(self) -> None:
        """After the last delivery: the calls and input requests no step or synthesis came
        to make, and an answer that never came (unless the recording waits for one too)."""
        plan = self._recording.plan
        steps = sorted(plan.steps, key=lambda s: s.index) if plan is not None else []
        self._missing("planner", "")
        for step in steps:
            if not self._state.is_live("agent", step.step_id):
                self._missing("agent", step.step_id)
        if self._answers.left_open is not None:
            return  # the recording ends at the same open request
        if not self._state.live_synthesis:
            self._missing("synthesizer", "")
            if not self._finished:
                self._compare(
                    "workflow",
                    None,
                    "answer",
                    _render_final(self._recording.final),
                    "(the rerun ended without an answer)",
                )

    def _missing(self, role: str, step_id: str, *, requests: bool = True) -> None:
        divergence = self._state.missing_llm_call(role, step_id)
        if divergence is None and role == "agent":
            divergence = self._state.missing_tool_call(step_id)
        if divergence is None and requests and role in ("agent", "planner"):
            divergence = self._answers.missing(step_id or None)
        if divergence is not None:
            raise self._state.diverged(divergence)

    def _compare(
        self,
        role: str,
        step_id: str | None,
        kind: str,
        expected: str,
        actual: str,
        *,
        iteration: int | None = None,
    ) -> None:
        if expected == actual:
            return
        raise self._state.differed(
            role=role,
            step_id=step_id,
            iteration=iteration,
            kind=kind,
            expected=expected,
            actual=actual,
        )


def _handler_error(failed: Exception) -> Divergence:
    service = getattr(failed, "service", "") or "a service"
    event = getattr(failed, "event", None)
    # Only the agent-runner works on one step; the others handle a step's outcome.
    step = getattr(event, "step", None) if service == "agent-runner" else None
    cause = failed.__cause__ or failed
    actual = f"{type(cause).__name__}: {cause}"
    expected = f"{event.type if event is not None else 'the event'} handled"
    return Divergence(
        role=service,
        step_id=getattr(step, "step_id", None),
        iteration=None,
        kind="handler error",
        expected=expected,
        actual=actual,
        diff=unified_diff(expected, actual),
    )


def _render_plan(plan: PlanCreated | None) -> str:
    if plan is None:
        return "(no plan)"
    lines = []
    for step in sorted(plan.steps, key=lambda s: s.index):
        needs = f" after {', '.join(step.depends_on)}" if step.depends_on else ""
        lines.append(f"{step.index + 1}. {step.step_id} [{step.complexity}]{needs}: {step.title}")
        lines.extend(f"    {line}" for line in step.instruction.splitlines())
    return "\n".join(lines)


def _render_outcome(outcome: StepCompleted | StepFailed | None) -> str:
    if outcome is None:
        return "(no outcome)"
    if isinstance(outcome, StepCompleted):
        return "completed:\n" + outcome.result
    return f"failed: {outcome.error.code}: {outcome.error.message}"


def _render_final(final: WorkflowCompleted | WorkflowFailed | WorkflowCancelled | None) -> str:
    if final is None:
        return "(no answer)"
    if isinstance(final, WorkflowCompleted):
        return ("completed (partial):\n" if final.partial else "completed:\n") + final.result
    if isinstance(final, WorkflowFailed):
        return f"failed: {final.error.code}: {final.error.message}"
    return f"cancelled: {final.reason}"
