"""How ``tributary run`` shows a workflow's progress: live on a terminal, plain lines elsewhere.

Both displays take the same calls: ``event`` after each event was folded into
the progress, ``pause``/``resume`` around a question to the person at the
terminal, ``finish`` once the workflow has ended (it prints the answer).
``PlainDisplay`` writes one line per event and no escape codes, for pipes,
files and CI logs; ``LiveDisplay`` redraws a table of the plan in place (rich)
and prints tool calls and step outcomes above it as they happen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tributary_cli.progress import RunProgress

__all__ = ["Display", "LiveDisplay", "PlainDisplay", "totals"]

_STATE_STYLES = {
    "pending": ("·", "dim"),
    "running": ("▶", "bold cyan"),
    "awaiting_input": ("?", "bold yellow"),
    "completed": ("✓", "green"),
    "failed": ("✗", "bold red"),
}
_NOTABLE = frozenset(
    {
        "step.completed",
        "step.failed",
        "tool.called",
        "llm.waiting",
        "input.requested",
        "input.answered",
        "budget.exhausted",
    }
)
"""Events the live view also prints above itself, so they stay in the scrollback."""


class Display(Protocol):
    def event(self, progress: RunProgress, event_type: str, line: str | None) -> None: ...

    def pause(self) -> None: ...

    def resume(self, progress: RunProgress) -> None: ...

    def finish(self, progress: RunProgress) -> None: ...


def totals(progress: RunProgress) -> str:
    """Tokens and cost so far, with their limits when the workflow has any."""
    tokens = f"{progress.tokens:,} tokens"
    if progress.token_limit is not None:
        tokens += f" of {progress.token_limit:,}"
    if progress.cost_usd is None:
        return tokens
    cost = f"${progress.cost_usd:.4f}"
    if progress.cost_limit_usd is not None:
        cost += f" of ${progress.cost_limit_usd:.2f}"
    return f"{tokens}, {cost}"


class PlainDisplay:
    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def event(self, progress: RunProgress, event_type: str, line: str | None) -> None:
        if line is not None:
            self._say(line)

    def pause(self) -> None:
        pass

    def resume(self, progress: RunProgress) -> None:
        pass

    def finish(self, progress: RunProgress) -> None:
        self._say(f"Workflow {progress.workflow_id} {progress.status} ({totals(progress)}).")
        if progress.error and progress.status != "completed":
            self._say(f"Error: {progress.error}")
        if progress.result is not None:
            self._say("Partial answer:" if progress.partial else "Answer:")
            self._say(progress.result)


class LiveDisplay:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None

    def start(self, progress: RunProgress) -> None:
        self._live = Live(
            _view(progress), console=self._console, refresh_per_second=8, transient=False
        )
        self._live.start()

    def event(self, progress: RunProgress, event_type: str, line: str | None) -> None:
        if self._live is not None:
            self._live.update(_view(progress), refresh=True)
        if line is not None and event_type in _NOTABLE:
            self._console.print(Text(line, style=_line_style(event_type)))

    def pause(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def resume(self, progress: RunProgress) -> None:
        if self._live is None:
            self.start(progress)

    def finish(self, progress: RunProgress) -> None:
        if self._live is not None:
            self._live.update(_view(progress), refresh=True)
            self.pause()
        if progress.error and progress.status != "completed":
            self._console.print(Text(f"Error: {progress.error}", style="bold red"))
        if progress.result is not None:
            title = "Partial answer" if progress.partial else "Answer"
            self._console.print(Panel(Text(progress.result), title=title, title_align="left"))


def _view(progress: RunProgress) -> RenderableType:
    header = Text.assemble(
        ("Workflow ", "bold"),
        (progress.workflow_id, "bold"),
        "  ",
        (progress.status, _status_style(progress.status)),
        "  ",
        (totals(progress), "dim"),
    )
    parts: list[RenderableType] = [header]
    if progress.task:
        parts.append(Text(f"Task: {progress.task}", overflow="ellipsis", no_wrap=True))
    if progress.steps:
        parts.append(_plan(progress))
    elif progress.status in ("pending", "planning"):
        parts.append(Text("Planning…", style="dim"))
    if progress.waiting_for is not None:
        parts.append(Text(f"Waiting for input: {progress.waiting_for.question}", style="yellow"))
    if progress.drafting and progress.status == "synthesizing":
        draft = " ".join(progress.drafting.split())[-200:]
        parts.append(Text(f"Writing the answer: …{draft}", style="dim"))
    return Group(*parts)


def _plan(progress: RunProgress) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("Step", overflow="ellipsis", max_width=40, no_wrap=True)
    table.add_column("State")
    table.add_column("Try", justify="right")
    table.add_column("Tokens", justify="right")
    table.add_column("Last", overflow="ellipsis", max_width=60, no_wrap=True, style="dim")
    for step in sorted(progress.steps.values(), key=lambda s: s.index):
        mark, style = _STATE_STYLES.get(step.state, ("?", ""))
        table.add_row(
            str(step.index + 1),
            step.title,
            Text(f"{mark} {step.state}", style=style),
            str(step.attempt),
            f"{step.tokens:,}",
            step.detail,
        )
    return table


def _status_style(status: str) -> str:
    return {"completed": "bold green", "failed": "bold red", "cancelled": "yellow"}.get(
        status, "cyan"
    )


def _line_style(event_type: str) -> str:
    if event_type == "step.failed":
        return "red"
    if event_type in ("input.requested", "llm.waiting"):
        return "yellow"
    return "dim" if event_type == "tool.called" else ""
