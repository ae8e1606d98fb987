"""Small builders over the in-memory twins, for tests of one component."""

from __future__ import annotations

from tributary_agent_runner.call_history import StepCallHistory
from tributary_shared.twins import MemoryCallHistory, MemoryEffectLedger


def memory_step_history(
    workflow_id: str = "wf", step_id: str = "s1", attempt: int = 1
) -> StepCallHistory:
    """One attempt's tool-call history and the step's effect ledger, in memory."""
    return StepCallHistory(
        MemoryCallHistory(),
        MemoryEffectLedger(),
        workflow_id=workflow_id,
        step_id=step_id,
        attempt=attempt,
    )
