"""A step's tool-call history and the effect ledger, in memory."""

from __future__ import annotations

from tributary_shared.core.ports import EffectIntent

__all__ = ["MemoryCallHistory", "MemoryEffectLedger"]

_MAX_HISTORY = 64  # as the Redis list is capped


class MemoryCallHistory:
    def __init__(self) -> None:
        self.calls: dict[tuple[str, str, int], list[str]] = {}
        self._warned: set[tuple[str, str, int]] = set()

    async def record(
        self, *, workflow_id: str, step_id: str, attempt: int, fingerprint: str
    ) -> list[str]:
        history = self.calls.setdefault((workflow_id, step_id, attempt), [])
        history.append(fingerprint)
        del history[:-_MAX_HISTORY]
        return list(history)

    async def first_warning(self, *, workflow_id: str, step_id: str, attempt: int) -> bool:
        key = (workflow_id, step_id, attempt)
        first = key not in self._warned
        self._warned.add(key)
        return first


class MemoryEffectLedger:
    def __init__(self) -> None:
        self.effects: dict[tuple[str, str, str], str] = {}
        self._intended: set[tuple[str, str, str]] = set()

    async def intend(self, *, workflow_id: str, step_id: str, fingerprint: str) -> EffectIntent:
        key = (workflow_id, step_id, fingerprint)
        recorded = self.effects.get(key)
        first = key not in self._intended
        self._intended.add(key)
        return EffectIntent(recorded=recorded, repeated=recorded is None and not first)

    async def record(
        self, *, workflow_id: str, step_id: str, fingerprint: str, output: str
    ) -> None:
        self.effects[(workflow_id, step_id, fingerprint)] = output
