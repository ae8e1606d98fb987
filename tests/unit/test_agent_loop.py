"""The agent loop's recovery rules, driven by a scripted stand-in for the LLM port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from tests.support.twins import memory_step_history
from tributary_agent_runner.loop import run_agent
from tributary_agent_runner.tools.calculator import calculator_tool
from tributary_agent_runner.tools.registry import Tool, ToolRegistry
from tributary_shared.core.errors import FatalError, ModelError, TributaryError
from tributary_shared.core.events import PlannedStep, TokenUsage
from tributary_shared.core.untrusted import untrusted
from tributary_shared.runtime.llm import Completion, Message, Role, ToolCall

STEP = PlannedStep(step_id="s1", index=0, title="Multiply", instruction="What is 6 * 7?")


class ScriptedPort:
    def __init__(self, *replies: Completion | TributaryError) -> None:
        self._replies = list(replies)
        self.seen: list[list[Message]] = []

    async def complete(
        self,
        *,
        role: Role,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        iteration: int | None = None,
    ) -> Completion:
        self.seen.append(list(messages))
        reply = self._replies.pop(0)
        if isinstance(reply, TributaryError):
            raise reply
        return reply


def answer(text: str) -> Completion:
    return Completion(
        content=text,
        tool_calls=(),
        finish_reason="stop",
        model="m",
        usage=TokenUsage(prompt_tokens=10, completion_tokens=5),
    )


def call(arguments: str, name: str = "calculator") -> Completion:
    return Completion(
        content=None,
        tool_calls=(ToolCall(id="c1", name=name, arguments=arguments),),
        finish_reason="tool_calls",
        model="m",
        usage=TokenUsage(prompt_tokens=10, completion_tokens=5),
    )


async def run(port: ScriptedPort, max_iterations: int = 5) -> Any:
    return await run_agent(
        llm=port,
        tools=ToolRegistry([calculator_tool]),
        step=STEP,
        task="math",
        max_iterations=max_iterations,
        history=memory_step_history(),
    )


async def test_a_tool_result_goes_back_to_the_model_before_it_answers() -> None:
    port = ScriptedPort(call('{"expression": "6 * 7"}'), answer("42"))
    outcome = await run(port)
    assert outcome.result == "42"
    assert outcome.error is None
    assert outcome.iterations == 2
    assert outcome.usage == TokenUsage(prompt_tokens=20, completion_tokens=10)
    tool_message = port.seen[1][-1]
    assert tool_message == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": untrusted("6 * 7 = 42", source="tool calculator"),
    }


async def test_a_failing_tool_is_reported_to_the_model_which_can_adapt() -> None:
    port = ScriptedPort(call('{"expression": "1/0"}'), answer("undefined"))
    outcome = await run(port)
    assert outcome.result == "undefined"
    assert outcome.tool_failures == 1
    assert "division by zero" in port.seen[1][-1]["content"]


async def test_malformed_arguments_get_one_correction_then_fail_the_step() -> None:
    port = ScriptedPort(call('{"expression": '), call("{oops"))
    outcome = await run(port)
    assert outcome.result is None
    assert isinstance(outcome.error, ModelError)
    assert outcome.error.code == "tool_arguments_invalid"


async def test_malformed_arguments_then_a_good_call_succeeds() -> None:
    port = ScriptedPort(call('{"expression": '), call('{"expression": "6*7"}'), answer("42"))
    assert (await run(port)).result == "42"


async def test_unusable_output_gets_one_corrective_reprompt() -> None:
    port = ScriptedPort(ModelError("cut off", code="llm_truncated"), answer("42"))
    outcome = await run(port)
    assert outcome.result == "42"
    assert "could not be used (cut off)" in port.seen[1][-1]["content"]


async def test_a_second_unusable_output_fails_the_step_with_its_code() -> None:
    port = ScriptedPort(
        ModelError("refused", code="llm_refused"), ModelError("refused", code="llm_refused")
    )
    outcome = await run(port)
    assert outcome.error is not None
    assert outcome.error.code == "llm_refused"


async def test_a_fatal_error_fails_at_once() -> None:
    port = ScriptedPort(FatalError("bad key", code="llm_auth_failed"))
    outcome = await run(port)
    assert outcome.error is not None
    assert outcome.error.code == "llm_auth_failed"
    assert outcome.iterations == 1


async def test_the_iteration_limit_stops_the_step_with_a_logic_error() -> None:
    port = ScriptedPort(*[call(f'{{"expression": "1+{i}"}}') for i in range(3)])
    outcome = await run(port, max_iterations=3)
    assert outcome.error is not None
    assert outcome.error.code == "iteration_limit"
    assert outcome.error.error_class.value == "logic"


async def test_an_unknown_tool_is_reported_to_the_model() -> None:
    port = ScriptedPort(call("{}", name="teleport"), answer("ok"))
    outcome = await run(port)
    assert outcome.result == "ok"
    assert "unknown tool 'teleport'" in port.seen[1][-1]["content"]


async def test_a_repeated_call_is_pointed_out_once_then_stops_the_step() -> None:
    same = '{"expression": "2+2"}'
    port = ScriptedPort(*[call(same) for _ in range(6)])
    outcome = await run(port, max_iterations=10)
    assert outcome.error is not None
    assert outcome.error.code == "loop_detected"
    assert outcome.iterations == 4  # 3rd identical call warned, 4th stopped
    warning = port.seen[3][-1]
    assert warning["role"] == "tool"
    assert "Loop detected" in warning["content"]


async def test_argument_order_and_spacing_do_not_hide_a_repeat() -> None:
    port = ScriptedPort(
        call('{"expression": "2+2"}'),
        call('{ "expression":"2+2" }'),
        call('{"expression":  "2+2"}'),
        answer("4"),
    )
    outcome = await run(port)
    assert outcome.result == "4"
    assert "Loop detected" in port.seen[3][-1]["content"]


async def test_the_model_can_recover_after_the_warning() -> None:
    same = '{"expression": "2+2"}'
    port = ScriptedPort(call(same), call(same), call(same), answer("4"))
    outcome = await run(port)
    assert outcome.result == "4"
    assert outcome.error is None


async def test_the_models_that_served_the_step_are_recorded() -> None:
    port = ScriptedPort(call('{"expression": "1+1"}'), answer("2"))
    assert (await run(port)).models == ["m"]


class SendArgs(BaseModel):
    to: str


async def test_a_side_effect_runs_once_even_when_the_step_runs_again() -> None:
    sent: list[str] = []

    async def send(args: SendArgs) -> str:
        sent.append(args.to)
        return f"sent to {args.to}"

    mailer = Tool(name="send_mail", description="", args_model=SendArgs, run=send, read_only=False)
    history = memory_step_history()
    for _attempt in (1, 2):  # the second run is the step redelivered after a crash
        port = ScriptedPort(call('{"to": "ops@example.org"}', name="send_mail"), answer("done"))
        outcome = await run_agent(
            llm=port,
            tools=ToolRegistry([mailer]),
            step=STEP,
            task="mail",
            max_iterations=5,
            history=history,
        )
        assert outcome.result == "done"
        assert port.seen[1][-1]["content"] == untrusted(
            "sent to ops@example.org", source="tool send_mail"
        )
    assert sent == ["ops@example.org"]
