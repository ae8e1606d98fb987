"""In-memory twin of the callback store (``core.ports.CallbackStore``)."""

from __future__ import annotations

from tributary_shared.core.callbacks import CallbackAttempt, CallbackState
from tributary_shared.core.ports import CallbackProgress

__all__ = ["MemoryCallbackStore"]


class MemoryCallbackStore:
    def __init__(self) -> None:
        self.schedule_at: dict[str, float] = {}
        self._progress: dict[str, CallbackProgress] = {}

    async def schedule(self, workflow_id: str, *, at: float) -> None:
        self.schedule_at.setdefault(workflow_id, at)

    async def due(self, *, now: float, lease_s: float, limit: int) -> list[str]:
        ready = sorted(
            (at, workflow_id) for workflow_id, at in self.schedule_at.items() if at <= now
        )[:limit]
        for _, workflow_id in ready:
            self.schedule_at[workflow_id] = now + lease_s
        return [workflow_id for _, workflow_id in ready]

    async def progress(self, workflow_id: str) -> CallbackProgress:
        return self._progress.get(workflow_id, CallbackProgress())

    async def record_attempt(
        self, workflow_id: str, attempt: CallbackAttempt, *, state: CallbackState
    ) -> None:
        known = self._progress.get(workflow_id, CallbackProgress())
        self._progress[workflow_id] = CallbackProgress(
            state=state, attempts=(*known.attempts, attempt)
        )

    async def retry_at(self, workflow_id: str, at: float) -> None:
        if workflow_id in self.schedule_at:
            self.schedule_at[workflow_id] = at

    async def unschedule(self, workflow_id: str) -> None:
        self.schedule_at.pop(workflow_id, None)
