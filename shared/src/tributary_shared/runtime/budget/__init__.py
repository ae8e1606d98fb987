"""The Redis adapter of the budget ledger, and how limits and prices are worked out."""

from tributary_shared.runtime.budget.ledger import RedisBudgetLedger
from tributary_shared.runtime.budget.limits import budget_limits

__all__ = ["RedisBudgetLedger", "budget_limits"]
