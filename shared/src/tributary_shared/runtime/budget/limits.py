"""A workflow's budget limits: its own options, else the configured defaults."""

from __future__ import annotations

import math

from tributary_shared.core.budget import MICRO_USD, BudgetLimits
from tributary_shared.core.events import WorkflowOptions
from tributary_shared.runtime.settings import BudgetSettings


def budget_limits(options: WorkflowOptions, defaults: BudgetSettings) -> BudgetLimits:
    tokens = options.token_budget or defaults.default_token_budget
    cost = options.cost_budget_usd
    return BudgetLimits(
        tokens=tokens,
        micro_usd=math.floor(cost * MICRO_USD) if cost is not None else None,
        policy=options.on_budget_exhausted or defaults.on_budget_exhausted,
    )
