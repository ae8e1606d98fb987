"""The agent loop for one step, free of Kafka and Redis.

The model is called with the step's instruction and the offered tools; tool
calls run and their results go back to the model, until it answers in text or
the iteration limit is reached. What came from outside (each tool's output, the
results of the steps this one builds on) reaches the model marked as untrusted
data (``core.untrusted``), and the system prompt says it is never to be obeyed.

Errors recover as the error table (``tributary_shared.core.errors.recovery_for``)
says:

* unusable model output (truncated, refused, empty, tool arguments that fail
  validation) is a model error: it gets the table's corrective re-prompts
  (one), then the step fails;
* transient LLM errors were already retried, handed down the chain of
  deployments and waited out inside the LLM client: when they still surface
  (its patience is spent), the step fails;
* logic errors (the iteration limit, a loop, a deadline, a budget that cannot
  cover the next call) stop the step with a clear reason;
* fatal errors and a passed deadline fail the step, and the service then
  fails the workflow;
* tool failures are not errors of the step: they go back to the model as the
  tool's result, so it can adapt;
* a loop (the same call repeated, or a cycle of calls) is first pointed out
  to the model; if it goes on, the step stops as a logic error.

A call of ``ask_human`` stops the loop with a ``Pause``: the conversation so far,
which the runner keeps as the step's checkpoint. The step resumes from that
checkpoint (``resume``) with the person's answer as the call's result, so no LLM
call made before the pause is made again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tributary_agent_runner.call_history import CallHistory
from tributary_agent_runner.loop_detection import detect_loop, fingerprint, loop_warning
from tributary_agent_runner.tool_spans import traced_tool_call
from tributary_agent_runner.tools.ask_human import ASK_HUMAN, AskHumanArgs
from tributary_agent_runner.tools.idempotency import call_key, calling_with
from tributary_agent_runner.tools.registry import ToolArgumentsInvalid, ToolError, ToolRegistry
from tributary_shared.core.completions import Completion, Message, Role, ToolCall
from tributary_shared.core.errors import (
    ErrorClass,
    LogicError,
    ModelError,
    TributaryError,
    recovery_for,
)
from tributary_shared.core.events import PlannedStep, StepInput, TokenUsage, ToolOutcome
from tributary_shared.core.records import StepCheckpoint
from tributary_shared.core.untrusted import UNTRUSTED_DATA_RULE, untrusted
from tributary_shared.runtime import failpoints
from tributary_shared.runtime.metrics import LOOPS_DETECTED_TOTAL, TOOL_CALL_ERRORS_TOTAL

log = logging.getLogger(__name__)

SYSTEM_PROMPT = f"""You are an agent working on one step of a larger task.
Use the tools when they help (for example the calculator for any arithmetic). \
When you have the answer, reply with it in plain text: concise, factual and \
self-contained, since it is combined with other agents' answers.
{UNTRUSTED_DATA_RULE}"""


class AgentLLM(Protocol):
    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        iteration: int | None = None,
    ) -> Completion: ...


class ToolRecorder(Protocol):
    """Records each tool call of the step (``runtime.call_recorder.CallRecorder``)."""

    async def tool_call(
        self,
        *,
        iteration: int | None,
        call: ToolCall,
        result: str,
        failed: bool,
        outcome: ToolOutcome,
        started_at: float,
    ) -> None: ...


Checkpoint = Callable[[], Awaitable[None]]
"""Called before every LLM call; raises a TributaryError when the step must stop."""


@dataclass(frozen=True)
class Pause:
    """The agent asked a person (``ask_human``); the step waits for the answer."""

    tool_call_id: str
    question: str
    choices: tuple[str, ...] | None
    messages: tuple[Message, ...]
    """The conversation up to and including the ask_human call, to resume from."""


@dataclass
class StepOutcome:
    result: str | None
    error: TributaryError | None
    iterations: int
    usage: TokenUsage = field(default_factory=TokenUsage)
    tool_failures: int = 0
    models: list[str] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)
    pause: Pause | None = None
    """Set when the step stopped to wait for a person: neither result nor error."""

    def checkpoint(self, request_id: str) -> StepCheckpoint:
        """What resuming needs, once the pause has a request id."""
        assert self.pause is not None
        return StepCheckpoint(
            request_id=request_id,
            tool_call_id=self.pause.tool_call_id,
            messages=tuple(dict(m) for m in self.pause.messages),
            iterations=self.iterations,
            usage=self.usage,
            models=tuple(self.models),
            deployments=tuple(self.deployments),
            tool_failures=self.tool_failures,
        )


@dataclass(frozen=True)
class Resume:
    """A paused step going on: its checkpoint and the answer it waited for."""

    checkpoint: StepCheckpoint
    answer: str


def step_messages(step: PlannedStep, task: str, inputs: Sequence[StepInput] = ()) -> list[Message]:
    messages: list[Message] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Overall task, for context only: {task}"},
    ]
    if inputs:
        results = "\n\n".join(
            f"## {i.title}\n{untrusted(i.result, source=f'step {i.step_id}')}" for i in inputs
        )
        messages.append(
            {"role": "user", "content": f"Results of the steps yours builds on:\n\n{results}"}
        )
    messages.append({"role": "user", "content": f"Your step: {step.title}\n{step.instruction}"})
    return messages


async def run_agent(
    *,
    llm: AgentLLM,
    tools: ToolRegistry,
    step: PlannedStep,
    task: str,
    max_iterations: int,
    inputs: Sequence[StepInput] = (),
    history: CallHistory,
    repeat_limit: int = 3,
    checkpoint: Checkpoint | None = None,
    recorder: ToolRecorder | None = None,
    resume: Resume | None = None,
) -> StepOutcome:
    schemas = tools.openai_schemas()
    if resume is None:
        messages = step_messages(step, task, inputs)
        outcome = StepOutcome(result=None, error=None, iterations=0)
    else:
        messages, outcome = _resumed(resume)
        asked = _asked(resume.checkpoint)
        if recorder is not None and asked is not None:
            # The ask_human call's record, answered now: replay finds its result here.
            await recorder.tool_call(
                iteration=outcome.iterations,
                call=asked,
                result=resume.answer,
                failed=False,
                outcome="ran",
                started_at=time.time(),
            )
    corrections = 0

    def recover(error: TributaryError) -> bool:
        """True when the step goes on after a corrective re-prompt; False when it ends
        with ``error``."""
        nonlocal corrections
        if corrections >= recovery_for(error).reprompts:
            outcome.error = error
            return False
        corrections += 1
        messages.append(
            {
                "role": "user",
                "content": f"Your last reply could not be used ({error.message}). "
                "Try again: call a tool with valid arguments or answer in plain text.",
            }
        )
        return True

    while outcome.iterations < max_iterations:
        if checkpoint is not None:
            try:
                await checkpoint()
            except TributaryError as error:
                outcome.error = error
                return outcome
        outcome.iterations += 1
        try:
            completion = await llm.complete(
                role="agent",
                messages=messages,
                tools=schemas or None,
                iteration=outcome.iterations,
            )
        except TributaryError as error:
            if recover(error):
                continue
            return outcome
        outcome.usage = outcome.usage + completion.usage
        if completion.model not in outcome.models:
            outcome.models.append(completion.model)
        if completion.deployment and completion.deployment not in outcome.deployments:
            outcome.deployments.append(completion.deployment)

        if not completion.tool_calls:
            answer = (completion.content or "").strip()
            if answer:
                outcome.result = answer
                return outcome
            if recover(ModelError("the reply was empty", code="llm_empty_answer")):
                continue
            return outcome

        messages.append(completion.as_assistant_message())
        invalid_arguments = False
        pause: tuple[str, AskHumanArgs] | None = None
        for call in completion.tool_calls:
            started_at = time.time()
            if call.name == ASK_HUMAN and ASK_HUMAN in tools.names():
                question, refusal = _question(tools, call, asked_already=pause is not None)
                if question is not None:
                    pause = (call.id, question)  # answered when the step resumes
                    continue
                invalid_arguments = invalid_arguments or refusal.invalid
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": refusal.content}
                )
                continue
            call_fingerprint = fingerprint(call.name, call.arguments)
            seen = await history.record(call_fingerprint)
            loop = detect_loop(seen, repeat_limit=repeat_limit)
            if loop is not None:
                if not await history.first_warning():
                    LOOPS_DETECTED_TOTAL.labels(loop, "stopped").inc()
                    outcome.error = LogicError(
                        f"the agent kept repeating itself ({loop} of tool calls) after a warning",
                        code="loop_detected",
                    )
                    return outcome
                LOOPS_DETECTED_TOTAL.labels(loop, "warned").inc()
                # The repeated call is not run again: its effects must not repeat.
                warning = json.dumps({"error": loop_warning(loop, call.name)})
                messages.append({"role": "tool", "tool_call_id": call.id, "content": warning})
                if recorder is not None:
                    await recorder.tool_call(
                        iteration=outcome.iterations,
                        call=call,
                        result=warning,
                        failed=True,
                        outcome="not_run_loop",
                        started_at=started_at,
                    )
                continue
            reply = await traced_tool_call(call, _call_once(tools, call, call_fingerprint, history))
            outcome.tool_failures += int(reply.failed)
            invalid_arguments = invalid_arguments or reply.invalid
            if recorder is not None:
                await recorder.tool_call(
                    iteration=outcome.iterations,
                    call=call,
                    result=reply.content,
                    failed=reply.failed,
                    outcome=reply.outcome,
                    started_at=started_at,
                )
            # Whatever a tool returns (a page, a search result, a remote error) is data.
            data = untrusted(reply.content, source=f"tool {call.name}")
            messages.append({"role": "tool", "tool_call_id": call.id, "content": data})
        if pause is not None:
            call_id, question = pause
            outcome.pause = Pause(
                tool_call_id=call_id,
                question=question.question,
                choices=tuple(question.choices) if question.choices else None,
                messages=tuple(messages),
            )
            return outcome
        if invalid_arguments:
            # The tool result already told the model what was wrong: it counts
            # as the correction, so no re-prompt is added.
            misuse = ModelError(
                "the model kept calling tools with invalid arguments",
                code="tool_arguments_invalid",
            )
            if corrections >= recovery_for(misuse).reprompts:
                outcome.error = misuse
                return outcome
            corrections += 1

    outcome.error = LogicError(
        f"the step did not finish within {max_iterations} iterations", code="iteration_limit"
    )
    return outcome


def _resumed(resume: Resume) -> tuple[list[Message], StepOutcome]:
    """The conversation and the counts where the step paused, the answer appended."""
    saved = resume.checkpoint
    messages: list[Message] = [dict(m) for m in saved.messages]
    messages.append({"role": "tool", "tool_call_id": saved.tool_call_id, "content": resume.answer})
    outcome = StepOutcome(
        result=None,
        error=None,
        iterations=saved.iterations,
        usage=saved.usage,
        tool_failures=saved.tool_failures,
        models=list(saved.models),
        deployments=list(saved.deployments),
    )
    return messages, outcome


def _asked(checkpoint: StepCheckpoint) -> ToolCall | None:
    """The ask_human call the checkpoint waits on, as the model made it."""
    for message in reversed(checkpoint.messages):
        for call in message.get("tool_calls") or ():
            if call.get("id") == checkpoint.tool_call_id:
                function = call.get("function") or {}
                return ToolCall(
                    id=checkpoint.tool_call_id,
                    name=str(function.get("name", ASK_HUMAN)),
                    arguments=str(function.get("arguments", "")),
                )
    return None


def _question(
    tools: ToolRegistry, call: ToolCall, *, asked_already: bool
) -> tuple[AskHumanArgs | None, _ToolAnswer]:
    """The question of an ask_human call, or why it goes back to the model unasked."""
    if asked_already:
        refusal = _tool_error("one question at a time: ask it again after this one's answer")
        return None, _ToolAnswer(refusal, True, False)
    try:
        question = tools.get(ASK_HUMAN).parse_arguments(call.arguments)
    except ToolArgumentsInvalid as error:
        return None, _ToolAnswer(_tool_error(str(error)), True, True)
    assert isinstance(question, AskHumanArgs)
    return question, _ToolAnswer("", False, False)


@dataclass(frozen=True)
class _ToolAnswer:
    content: str
    """What goes back to the model: the tool's output, or a JSON error object."""
    failed: bool
    invalid: bool
    """The model's arguments did not fit the tool's schema."""
    outcome: ToolOutcome = "ran"


async def _call_once(
    tools: ToolRegistry, call: ToolCall, call_fingerprint: str, history: CallHistory
) -> _ToolAnswer:
    """Run a call, unless it has side effects and already ran in an earlier attempt.

    A side-effecting call is noted before it is made and gets an idempotency
    key that is the same in every attempt; its result is recorded after.
    """
    side_effects = call.name in tools.names() and not tools.get(call.name).read_only
    if not side_effects:
        return _ToolAnswer(*await _call_tool(tools, call))
    intent = await history.intend_effect(call_fingerprint)
    if intent.recorded is not None:
        return _ToolAnswer(intent.recorded, False, False, "effect_recorded")
    if intent.repeated:
        # The runner of an earlier attempt died during this call: it may have
        # acted. Only a far side that honours the idempotency key can tell.
        log.warning("calling %s again after an attempt that may have acted", call.name)
    with calling_with(call_key(history.call_scope, call_fingerprint)):
        content, failed, invalid = await _call_tool(tools, call)
    failpoints.hit("agent-runner.after_effect")  # tests only: may have acted, not recorded
    if not failed:
        await history.record_effect(call_fingerprint, content)
        failpoints.hit("agent-runner.after_effect_recorded")
    return _ToolAnswer(content, failed, invalid)


async def _call_tool(tools: ToolRegistry, call: ToolCall) -> tuple[str, bool, bool]:
    """Run one tool call. Returns (content for the model, failed, arguments invalid)."""
    try:
        tool = tools.get(call.name)
        output = await tool.invoke(call.arguments)
    except ToolArgumentsInvalid as error:
        TOOL_CALL_ERRORS_TOTAL.labels(call.name, ErrorClass.MODEL.value).inc()
        return _tool_error(str(error)), True, True
    except ToolError as error:
        TOOL_CALL_ERRORS_TOTAL.labels(_label(tools, call.name), ErrorClass.TOOL.value).inc()
        return _tool_error(str(error)), True, False
    except Exception:
        log.exception("tool %s raised", call.name)
        TOOL_CALL_ERRORS_TOTAL.labels(call.name, ErrorClass.TOOL.value).inc()
        return _tool_error(f"{call.name} failed unexpectedly"), True, False
    return output, False, False


def _tool_error(message: str) -> str:
    return json.dumps({"error": message})


def _label(tools: ToolRegistry, name: str) -> str:
    # Unknown names come from the model; keep metric labels a bounded set.
    return name if name in tools.names() else "unknown"
