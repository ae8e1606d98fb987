"""The atomic compare-and-write programs run by ``atomic.lua``, and the hash layout.

A program is data: what must hold before anything is written, then the writes.
The store compiles a ``core.machine.Transition`` into one. Key indexes:
1 = workflow hash, 2 = steps hash, 3 = event log stream (``WorkflowKeys.all``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tributary_shared.core.events import EventEnvelope

WF, STEPS, LOG = 1, 2, 3

PLANNING_OWNER = "planning_owner"
"""Workflow hash field: the token of the planner holding the planning lease."""
PLANNING_LEASE_UNTIL = "planning_lease_until"
"""Workflow hash field: epoch seconds until which the planning lease holds."""
INPUTS_OPEN = "inputs_open"
"""Workflow hash field: how many input requests are open."""
PURGED_AT = "purged_at"
"""Workflow hash field, alone in a deleted workflow's tombstone: when it was deleted."""


@dataclass
class Program:
    expect: list[dict[str, Any]] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)

    def expect_field(self, key: int, name: str, allowed: Iterable[str]) -> Program:
        self.expect.append({"k": key, "f": name, "in": list(allowed)})
        return self

    def expect_at_least(self, key: int, name: str, other: str) -> Program:
        """Both fields numbers, ``name`` >= ``other`` > 0."""
        self.expect.append({"k": key, "f": name, "ge": other})
        return self

    def expect_at_most(self, key: int, name: str, limit: float) -> Program:
        """The field, a number (absent counts as 0), is at most ``limit``."""
        self.expect.append({"k": key, "f": name, "le": limit})
        return self

    def read(self, key: int, names: Iterable[str]) -> Program:
        """Read hash fields after the writes; the result is the op's entry."""
        self.ops.append({"op": "hmget", "k": key, "fs": list(names)})
        return self

    def hset(self, key: int, mapping: Mapping[str, str]) -> Program:
        if mapping:
            self.ops.append({"op": "hset", "k": key, "m": dict(mapping)})
        return self

    def hset_if(self, key: int, name: str, equals: str, mapping: Mapping[str, str]) -> Program:
        """Set ``mapping`` when, after the writes before it, ``name`` holds ``equals``."""
        self.ops.append({"op": "hset_if", "k": key, "f": name, "eq": equals, "m": dict(mapping)})
        return self

    def hincrby(self, key: int, name: str, by: int) -> Program:
        self.ops.append({"op": "hincrby", "k": key, "f": name, "by": by})
        return self

    def append_events(self, events: Iterable[EventEnvelope]) -> Program:
        for event in events:
            self.ops.append(
                {
                    "op": "xadd",
                    "k": LOG,
                    "m": {
                        "type": event.type,
                        "event_id": event.event_id,
                        "event": event.model_dump_json(),
                    },
                }
            )
        return self

    def expire_all(self, seconds: int) -> Program:
        for key in (WF, STEPS, LOG):
            self.ops.append({"op": "expire", "k": key, "s": seconds})
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"expect": self.expect, "ops": self.ops}


def step_status_field(step_id: str) -> str:
    return f"{step_id}:status"


def step_data_field(step_id: str) -> str:
    return f"{step_id}:data"


def step_owner_field(step_id: str) -> str:
    """The token of the runner holding the step's lease."""
    return f"{step_id}:owner"


def step_lease_field(step_id: str) -> str:
    """Epoch seconds until which the step's lease holds."""
    return f"{step_id}:lease_until"


def step_event_field(step_id: str) -> str:
    """The step's terminal event, kept so a redelivery can re-publish it."""
    return f"{step_id}:event"


def step_checkpoint_field(step_id: str) -> str:
    """Where the step's agent paused for input (JSON), to resume from."""
    return f"{step_id}:checkpoint"


INPUT_FIELD_PREFIX = "input:"


def input_field(request_id: str) -> str:
    """Workflow hash field: one input request (JSON)."""
    return f"{INPUT_FIELD_PREFIX}{request_id}"


def input_state_field(request_id: str) -> str:
    """Workflow hash field: the request's state alone (open, answered, expired)."""
    return f"{INPUT_FIELD_PREFIX}{request_id}:state"
