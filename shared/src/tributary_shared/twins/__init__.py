"""In-memory twins of the runtime's adapters, for fast in-process tests.

Each twin implements its port (``core.ports``) with the same rules as the real
adapter, and passes the same contract tests (``tests/contract``). The workflow
store twin runs ``core.machine.apply`` itself; the budget twin the same
``BudgetAccount`` rule as ``budget.lua``; the deployment gate twin the
operations of ``core.admission`` that ``gate.lua`` runs. None of them expires anything.
"""

from tributary_shared.twins.admission import MemoryDeploymentGate
from tributary_shared.twins.apikeys import MemoryApiKeyStore
from tributary_shared.twins.budget import MemoryBudgetLedger
from tributary_shared.twins.callbacks import MemoryCallbackStore
from tributary_shared.twins.calls import MemoryCallHistory, MemoryEffectLedger
from tributary_shared.twins.cancellation import MemoryCancellationSignal
from tributary_shared.twins.deltas import MemoryDeltaChannel
from tributary_shared.twins.follower import MemoryLogReader
from tributary_shared.twins.publisher import MemoryPublisher
from tributary_shared.twins.quotas import MemoryRateLimiter, MemoryRunningWorkflows
from tributary_shared.twins.store import MemoryWorkflowStore

__all__ = [
    "MemoryApiKeyStore",
    "MemoryBudgetLedger",
    "MemoryCallHistory",
    "MemoryCallbackStore",
    "MemoryCancellationSignal",
    "MemoryDeltaChannel",
    "MemoryDeploymentGate",
    "MemoryEffectLedger",
    "MemoryLogReader",
    "MemoryPublisher",
    "MemoryRateLimiter",
    "MemoryRunningWorkflows",
    "MemoryWorkflowStore",
]
