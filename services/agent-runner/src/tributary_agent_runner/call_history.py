"""The agent loop's view of one step's tool calls: its history and its effects.

The ports (``core.ports.CallHistory`` and ``EffectLedger``) are shared by every
replica; ``StepCallHistory`` binds them to one attempt of one step so the loop
speaks only of fingerprints. Loop records belong to the attempt, recorded
effects to the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tributary_shared.core import ports

__all__ = ["CallHistory", "StepCallHistory"]


class CallHistory(Protocol):
    async def record(self, fingerprint: str) -> list[str]:
        """Append a fingerprint; return the step's recent history, oldest first."""
        ...

    async def first_warning(self) -> bool:
        """True once per step: the model has not been warned about a loop yet."""
        ...

    async def intend_effect(self, fingerprint: str) -> ports.EffectIntent:
        """Note a side-effecting call about to be made; say what is known of it."""
        ...

    @property
    def call_scope(self) -> str:
        """Names the step for idempotency keys: the same in every attempt."""
        ...

    async def record_effect(self, fingerprint: str, output: str) -> None: ...


@dataclass(frozen=True, slots=True)
class StepCallHistory:
    calls: ports.CallHistory
    effects: ports.EffectLedger
    workflow_id: str
    step_id: str
    attempt: int

    async def record(self, fingerprint: str) -> list[str]:
        return await self.calls.record(
            workflow_id=self.workflow_id,
            step_id=self.step_id,
            attempt=self.attempt,
            fingerprint=fingerprint,
        )

    async def first_warning(self) -> bool:
        return await self.calls.first_warning(
            workflow_id=self.workflow_id, step_id=self.step_id, attempt=self.attempt
        )

    async def intend_effect(self, fingerprint: str) -> ports.EffectIntent:
        return await self.effects.intend(
            workflow_id=self.workflow_id, step_id=self.step_id, fingerprint=fingerprint
        )

    @property
    def call_scope(self) -> str:
        return f"{self.workflow_id}/{self.step_id}"

    async def record_effect(self, fingerprint: str, output: str) -> None:
        await self.effects.record(
            workflow_id=self.workflow_id,
            step_id=self.step_id,
            fingerprint=fingerprint,
            output=output,
        )
