"""Per-workflow token and cost budgets, shared by every service and replica."""

from tributary_shared.runtime.budget.ledger import (
    BudgetLedger,
    BudgetLimits,
    BudgetState,
    Reservation,
)
from tributary_shared.runtime.budget.limits import budget_limits

__all__ = ["BudgetLedger", "BudgetLimits", "BudgetState", "Reservation", "budget_limits"]
