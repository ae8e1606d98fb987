"""Automatic planner answers: turn a task into one plan step per ';'-separated part.

This makes the number and content of plan steps predictable from the task text alone,
so an offline workflow (and a test asserting on it) knows how many agent steps run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .schema_fill import fill_object, resolve_ref, schema_instance

PLAN_SCHEMA_NAME = "tributary_plan"
TITLE_WORDS = 6
_TASK_PREFIX = "Task:"


def extract_task(text: str) -> str:
    """The task inside a prompt: the text after a line starting with ``Task:``, else all.

    When ``Task:`` stands alone on its line, the following lines up to the next blank
    line are the task (prompts often put a long task in its own paragraph).
    """
    lines = text.splitlines()
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped.startswith(_TASK_PREFIX):
            continue
        rest = stripped[len(_TASK_PREFIX) :].strip()
        if rest:
            return rest
        paragraph: list[str] = []
        for following in lines[index + 1 :]:
            if not following.strip():
                if paragraph:
                    break
                continue
            paragraph.append(following.strip())
        return " ".join(paragraph)
    return text.strip()


def split_task(task: str) -> list[str]:
    """Split on ';' into trimmed, non-empty parts; a task without ';' is one part."""
    parts = [part.strip() for part in task.split(";")]
    parts = [part for part in parts if part]
    return parts or [task.strip()]


def step_title(part: str, words: int = TITLE_WORDS) -> str:
    """The first few words of a step's instruction."""
    return " ".join(part.split()[:words])


def build_plan(schema: Mapping[str, Any], task_text: str) -> dict[str, Any]:
    """A plan instance valid against ``schema`` with one step per task part.

    Every required field besides ``steps[].title``/``steps[].instruction`` gets a generic
    value, so the plan schema can gain fields without breaking the offline mode.
    """
    plan = fill_object(resolve_ref(schema, schema), schema)
    properties = resolve_ref(schema, schema).get("properties")
    steps_schema: Any = (
        resolve_ref(properties.get("steps", {}), schema) if isinstance(properties, Mapping) else {}
    )
    item_schema: Any = steps_schema.get("items", {}) if isinstance(steps_schema, Mapping) else {}

    parts = split_task(extract_task(task_text))
    max_items = steps_schema.get("maxItems") if isinstance(steps_schema, Mapping) else None
    if isinstance(max_items, int) and max_items > 0 and len(parts) > max_items:
        # Keep every part of the task: merge the overflow into the last allowed step.
        parts = [*parts[: max_items - 1], "; ".join(parts[max_items - 1 :])]

    steps: list[Any] = []
    for part in parts:
        step = schema_instance(item_schema, schema)
        if not isinstance(step, dict):
            step = {}
        step["title"] = step_title(part)
        step["instruction"] = part
        steps.append(step)
    plan["steps"] = steps
    return plan
