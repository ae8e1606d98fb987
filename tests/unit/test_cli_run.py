"""``tributary run``: a workflow started, followed to its end, answered; the exit codes.

The gateway is scripted (tests/support/fake_gateway.py) behind the SDK's
transport, so each test tells exactly which events the command sees. The
same command on a pseudo-terminal is in test_cli_run_terminal.py; against
the real gateway app in test_cli_workflows.py and on the live stack in
tests/integration/test_cli_e2e.py.
"""

from __future__ import annotations

import io
import re
import socket
from dataclasses import dataclass, field

import pytest
from rich.console import Console

from tests.support.fake_gateway import (
    ANSWER,
    DRAFT,
    KEY,
    QUESTION,
    WORKFLOW_ID,
    FakeGateway,
    completed_story,
    failed_story,
)
from tributary_cli.app import main
from tributary_cli.context import CommandContext
from tributary_client import AsyncTributary

ANSI = re.compile(r"\x1b\[")


@dataclass
class Terminal:
    """What a person at the command would see, and what they would type."""

    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    typed: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    screen: io.StringIO | None = None
    """Set: stdout is a terminal (a rich console writing here)."""

    def ask(self, prompt: str) -> str | None:
        self.asked.append(prompt)
        return self.typed.pop(0) if self.typed else None

    def console(self) -> Console | None:
        if self.screen is None:
            return None
        return Console(file=self.screen, force_terminal=True, width=120, highlight=False)

    @property
    def text(self) -> str:
        return "\n".join(self.out)


def tributary(
    gateway: FakeGateway, terminal: Terminal, *argv: str, environ: dict[str, str] | None = None
) -> int:
    transport = gateway.transport()
    context = CommandContext(
        say=terminal.out.append,
        warn=terminal.err.append,
        environ={"TRIBUTARY_API_KEY": KEY} if environ is None else environ,
        gateway=lambda url, key: AsyncTributary(url, key, transport=transport),
        terminal=terminal.console,
        ask=terminal.ask,
    )
    return main(list(argv), context=lambda: context)


def test_run_follows_the_workflow_to_its_answer_and_exits_0() -> None:
    gateway, terminal = FakeGateway(), Terminal()
    status = tributary(
        gateway,
        terminal,
        "run",
        "Longest river in miles",
        "--max-steps",
        "3",
        "--token-budget",
        "10000",
        "--metadata",
        "team=geo",
        "--idempotency-key",
        "order-42",
    )
    assert status == 0, terminal.err
    [started] = gateway.started
    assert started["task"] == "Longest river in miles"
    assert started["options"] == {
        "max_steps": 3,
        "token_budget": 10000,
        "metadata": {"team": "geo"},
    }
    text = terminal.text
    assert "plan.created        2 steps: Find the longest river; Convert to miles" in text
    assert "step.started        2. Convert to miles (attempt 1)" in text
    assert 'calculator({"expression": "3530 * 0.621371"}) -> 2193.44' in text
    assert "2. Convert to miles: scripted, 120 tokens (total 240)" in text
    assert f"Workflow {WORKFLOW_ID} completed (240 tokens of 10,000, $0.0123 of $1.00)." in text
    assert terminal.out[-2:] == ["Answer:", ANSWER]
    assert not ANSI.search(text)  # not a terminal: plain lines, no escape codes


def test_run_passes_the_pause_callback_and_budget_options() -> None:
    gateway, terminal = FakeGateway(), Terminal()
    status = tributary(
        gateway,
        terminal,
        "run",
        "Longest river in miles",
        "--require-plan-approval",
        "--input-timeout-s",
        "600",
        "--on-input-timeout",
        "approve",
        "--on-budget-exhausted",
        "fail",
        "--callback-url",
        "https://hooks.example.com/tributary",
        "--answer-all",
        "approve",
    )
    assert status == 0, terminal.err
    [started] = gateway.started
    assert started["options"] == {
        "require_plan_approval": True,
        "input_timeout_s": 600,
        "on_input_timeout": "approve",
        "on_budget_exhausted": "fail",
        "callback_url": "https://hooks.example.com/tributary",
    }


def test_a_failed_workflow_exits_1_with_its_error() -> None:
    gateway, terminal = FakeGateway(story=failed_story()), Terminal()
    assert tributary(gateway, terminal, "run", "Longest river in miles") == 1
    assert "step.failed         1. Find the longest river failed: llm_auth_failed:" in terminal.text
    assert "Error: llm_auth_failed: the model refused the key" in terminal.out


def test_questions_are_answered_from_the_flags() -> None:
    by_question = FakeGateway(story=completed_story(ask=True))
    terminal = Terminal()
    status = tributary(by_question, terminal, "run", "t", "--answer", f"{QUESTION.upper()}=miles")
    assert status == 0, terminal.err
    assert by_question.answers == [{"request_id": "rq_1", "answer": "miles"}]
    assert terminal.asked == []  # nobody was asked
    assert "input.requested     rq_1: Kilometres or miles? [kilometres / miles]" in terminal.text
    assert "input.answered      rq_1: 'miles' (from http)" in terminal.text

    by_id, by_default = (
        FakeGateway(story=completed_story(ask=True)),
        FakeGateway(story=completed_story(ask=True)),
    )
    assert tributary(by_id, Terminal(), "run", "t", "--answer", "rq_1=km", "--answer-all", "x") == 0
    assert tributary(by_default, Terminal(), "run", "t", "--answer-all", "either") == 0
    assert [by_id.answers, by_default.answers] == [
        [{"request_id": "rq_1", "answer": "km"}],
        [{"request_id": "rq_1", "answer": "either"}],
    ]


def test_a_question_is_asked_at_the_terminal_and_a_number_picks_a_choice() -> None:
    gateway = FakeGateway(story=completed_story(ask=True))
    terminal = Terminal(typed=["2"], screen=io.StringIO())
    assert tributary(gateway, terminal, "run", "t") == 0
    assert gateway.answers == [{"request_id": "rq_1", "answer": "miles"}]
    [prompt] = terminal.asked
    assert prompt.startswith(f"The workflow asks: {QUESTION}\n  1. kilometres\n  2. miles")


def test_with_nobody_to_answer_the_command_says_how_and_follows_on() -> None:
    gateway = FakeGateway(story=completed_story(ask=True))
    terminal = Terminal()  # ask() answers None: stdin is no terminal
    gateway._answered.set()  # someone else answers (tributary input ...)
    assert tributary(gateway, terminal, "run", "t") == 0
    assert gateway.answers == []
    assert f"tributary input {WORKFLOW_ID} rq_1 ANSWER" in "\n".join(terminal.err)


def test_on_a_terminal_the_view_is_live_and_ends_with_the_answer() -> None:
    screen = io.StringIO()
    terminal = Terminal(screen=screen)
    assert tributary(FakeGateway(), terminal, "run", "Longest river in miles") == 0
    drawn = screen.getvalue()
    assert "\x1b[?25l" in drawn  # the live view hides the cursor while it redraws
    assert "Convert to miles" in drawn
    assert "✓ completed" in drawn
    assert "calculator" in drawn
    assert ANSWER in drawn
    assert terminal.out == []  # all of it went to the terminal's console

    plain = Terminal(screen=io.StringIO())
    assert tributary(FakeGateway(), plain, "run", "t", "--plain") == 0
    assert plain.screen is not None
    assert plain.screen.getvalue() == ""
    assert plain.out[-1] == ANSWER


def test_the_live_view_shows_the_answer_being_written_and_plain_output_leaves_it_out() -> None:
    gateway, screen = FakeGateway(), io.StringIO()
    assert tributary(gateway, Terminal(screen=screen), "run", "Longest river in miles") == 0
    assert gateway.modes == ["tokens"]
    assert f"Writing the answer: …{DRAFT}" in screen.getvalue()

    gateway, plain = FakeGateway(), Terminal()
    assert tributary(gateway, plain, "run", "t", "--plain") == 0
    assert gateway.modes == [None]  # lifecycle, the default: the gateway sends no deltas
    assert not any(DRAFT in line for line in plain.out[:-1])


def test_no_follow_prints_the_id_and_returns() -> None:
    gateway, terminal = FakeGateway(), Terminal()
    assert tributary(gateway, terminal, "run", "t", "--no-follow") == 0
    assert terminal.out == [WORKFLOW_ID]


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "t", "--max-steps", "0"],
        ["run", "t", "--max-steps", "many"],
        ["run", "t", "--metadata", "no-equals-sign"],
        ["run", "t", "--answer", "no-equals-sign"],
        ["list", "--status", "sleeping"],
        ["get"],
    ],
)
def test_bad_flags_exit_2_before_anything_is_sent(argv: list[str]) -> None:
    gateway = FakeGateway()
    with pytest.raises(SystemExit) as refused:
        tributary(gateway, Terminal(), *argv)
    assert refused.value.code == 2
    assert gateway.started == []


def test_without_a_key_it_exits_2_and_says_where_to_get_one() -> None:
    gateway, terminal = FakeGateway(), Terminal()
    assert tributary(gateway, terminal, "run", "t", environ={}) == 2
    assert gateway.started == []
    assert "no API key: pass --api-key or set TRIBUTARY_API_KEY" in terminal.err[0]


def test_a_refused_key_exits_2_with_the_gateways_message_and_never_shows_the_key() -> None:
    gateway, terminal = FakeGateway(), Terminal()
    wrong = "trb_wrong_key_123"
    assert tributary(gateway, terminal, "run", "t", "--api-key", wrong) == 2
    assert terminal.err == ["error: the gateway answered 401: Invalid or revoked API key."]
    assert wrong not in "\n".join(terminal.out + terminal.err)


def test_a_gateway_that_does_not_answer_exits_2() -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    terminal = Terminal()
    context = CommandContext(say=terminal.out.append, warn=terminal.err.append)
    status = main(
        ["run", "t", "--url", f"http://127.0.0.1:{port}", "--api-key", KEY, "--plain"],
        context=lambda: context,
    )
    assert status == 2
    [error] = terminal.err
    assert error.startswith(f"error: cannot reach the gateway at http://127.0.0.1:{port}:")
    assert KEY not in error


def test_the_url_and_key_come_from_the_environment_when_no_flag_names_them() -> None:
    gateway, terminal = FakeGateway(), Terminal()
    urls: list[str] = []
    transport = gateway.transport()

    def client(url: str, key: str) -> AsyncTributary:
        urls.append(url)
        return AsyncTributary(url, key, transport=transport)

    context = CommandContext(
        say=terminal.out.append,
        warn=terminal.err.append,
        environ={"TRIBUTARY_URL": "http://gw.example:8000/", "TRIBUTARY_API_KEY": KEY},
        gateway=client,
        terminal=lambda: None,
    )
    assert main(["run", "t", "--no-follow"], context=lambda: context) == 0
    assert (
        main(["run", "t", "--no-follow", "--url", "http://other:1"], context=lambda: context) == 0
    )
    assert urls == ["http://gw.example:8000", "http://other:1"]


def test_events_in_tokens_mode_prints_each_delta_as_a_live_line() -> None:
    gateway, terminal = FakeGateway(), Terminal()
    assert tributary(gateway, terminal, "events", WORKFLOW_ID, "--mode", "tokens") == 0
    assert gateway.modes == ["tokens"]
    live = [line for line in terminal.out if line.startswith("(live)")]
    assert len(live) == 2
    assert all("llm.delta" in line and "synthesizer #1" in line for line in live)
    assert "".join(line.split(": ", 1)[1].strip("'") for line in live) == DRAFT
    logged = [line for line in terminal.out if not line.startswith("(live)")]
    assert logged[0].startswith("1-0 ")
    with pytest.raises(SystemExit) as refused:
        tributary(FakeGateway(), Terminal(), "events", WORKFLOW_ID, "--mode", "all")
    assert refused.value.code == 2
