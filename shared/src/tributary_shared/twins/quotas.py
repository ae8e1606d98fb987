"""In-memory twins of the quota adapters (``runtime.quotas``), on an injectable clock."""

from __future__ import annotations

import time
from collections.abc import Callable

from tributary_shared.core.quotas import counts_as_running, gcra
from tributary_shared.twins.store import MemoryWorkflowStore

__all__ = ["MemoryRateLimiter", "MemoryRunningWorkflows"]


class MemoryRunningWorkflows:
    """Counts by the twin store's records, as the Redis adapter does by the real ones."""

    def __init__(
        self, store: MemoryWorkflowStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._clock = clock
        self.admitted: dict[str, dict[str, float]] = {}

    async def admit(self, tenant_id: str, workflow_id: str, *, limit: int) -> bool:
        members = self._pruned(tenant_id)
        if workflow_id in members:
            return True
        if len(members) >= limit:
            return False
        members[workflow_id] = self._clock()
        return True

    async def release(self, tenant_id: str, workflow_id: str) -> None:
        self.admitted.get(tenant_id, {}).pop(workflow_id, None)

    async def running(self, tenant_id: str) -> int:
        return len(self._pruned(tenant_id))

    def _pruned(self, tenant_id: str) -> dict[str, float]:
        now = self._clock()
        members = self.admitted.setdefault(tenant_id, {})
        for workflow_id, admitted_at in list(members.items()):
            record = self._store.records.get(workflow_id)
            status = record.status if record is not None else None
            if not counts_as_running(status, admitted_at, now):
                del members[workflow_id]
        return members


class MemoryRateLimiter:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}

    async def acquire(self, key: str, *, per_second: float, burst: int) -> float:
        decision = gcra(self._tats.get(key), self._clock(), per_second=per_second, burst=burst)
        self._tats[key] = decision.tat
        return decision.retry_after_s
