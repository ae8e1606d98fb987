"""One-line summaries of workflow events for the demo's console output (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_WIDTH = 110


def shorten(text: str, width: int = _WIDTH) -> str:
    """First line of ``text``, cut to ``width`` characters."""
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    more = len(lines) > 1
    if len(line) > width:
        return line[: width - 1] + "…"
    return line + (" …" if more else "")


def _error(data: Mapping[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, Mapping):
        return f"{error.get('code', 'error')}: {error.get('message', '')}"
    return str(error) if error is not None else "unknown error"


class EventFormatter:
    """Turns events into readable lines; remembers step titles from the plan."""

    def __init__(self) -> None:
        self.step_titles: dict[str, str] = {}

    def _step(self, data: Mapping[str, Any]) -> str:
        step_id = str(data.get("step_id", "?"))
        title = self.step_titles.get(step_id)
        return f"{title!r}" if title else step_id

    def summary(self, event_type: str, data: Any) -> str:
        if not isinstance(data, Mapping):
            return shorten(json.dumps(data) if not isinstance(data, str) else data)
        match event_type:
            case "workflow.requested":
                return f"task: {shorten(str(data.get('task', '')))}"
            case "plan.created":
                steps = data.get("steps") or []
                titles = []
                for step in steps:
                    if isinstance(step, Mapping):
                        title = str(step.get("title", step.get("step_id", "?")))
                        self.step_titles[str(step.get("step_id"))] = title
                        titles.append(title)
                return shorten(f"{len(steps)} steps: " + "; ".join(titles))
            case "step.dispatched":
                step = data.get("step")
                if isinstance(step, Mapping):
                    title = str(step.get("title", ""))
                    self.step_titles.setdefault(str(step.get("step_id")), title)
                    return f"{step.get('step_id', '?')}: {shorten(title)}"
            case "step.started":
                return f"{self._step(data)} (attempt {data.get('attempt', 1)})"
            case "step.completed":
                result = shorten(str(data.get("result", "")), 80)
                return f"{self._step(data)} -> {result}"
            case "step.failed":
                return f"{self._step(data)} failed: {shorten(_error(data), 80)}"
            case "synthesis.started":
                return "combining the step results"
            case "workflow.completed":
                partial = " (partial)" if data.get("partial") else ""
                return f"result{partial}: {shorten(str(data.get('result', '')))}"
            case "workflow.failed":
                return shorten(_error(data))
            case "llm.waiting":
                who = self._step(data) if data.get("step_id") else str(data.get("role", "?"))
                where = f"{data.get('model', '?')} at {data.get('deployment', '?')}"
                why = _error(data) if data.get("error") else "its turn at the gate"
                next_try = data.get("next_try_at")
                when = f"next try {str(next_try)[11:19]}" if next_try else "next try when let"
                return shorten(f"{who} waiting for {where} ({why}); {when}")
        payload = {k: v for k, v in data.items() if k not in _ENVELOPE_FIELDS}
        return shorten(json.dumps(payload, default=str))

    def line(self, event_type: str, data: Any) -> str:
        return f"  {event_type:<20} {self.summary(event_type, data)}"


_ENVELOPE_FIELDS = frozenset(
    {
        "event_id",
        "type",
        "schema_version",
        "workflow_id",
        "tenant_id",
        "occurred_at",
        "causation_id",
    }
)


def parse_data(raw: str) -> Any:
    """The event payload as JSON if it is JSON, else the raw text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw
