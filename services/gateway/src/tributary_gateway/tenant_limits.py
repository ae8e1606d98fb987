"""Per-tenant ceilings on what one workflow may ask for, and how many may run at once.

Pure rules: the settings name the ceilings (defaults, and overrides per tenant);
``within_ceilings`` checks a request's options against its tenant's and fills in
an option the request left out when the configured default would pass the
ceiling, so a tenant cannot get past a ceiling by saying nothing.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tributary_shared.core.events import (
    COST_BUDGET_USD_BOUND,
    DEADLINE_S_BOUND,
    MAX_STEPS_BOUND,
    TOKEN_BUDGET_BOUND,
    WorkflowOptions,
)

__all__ = ["CeilingExceeded", "TenantCeilings", "within_ceilings"]


class TenantCeilings(BaseModel):
    """One tenant's ceilings; ``None`` is no ceiling beyond the request bounds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_token_budget: int | None = Field(
        default=None,
        ge=1,
        le=TOKEN_BUDGET_BOUND,
        description="Highest `token_budget` a workflow may ask for.",
    )
    max_cost_budget_usd: float | None = Field(
        default=None,
        gt=0,
        le=COST_BUDGET_USD_BOUND,
        description="Highest `cost_budget_usd` a workflow may ask for; one that asks for "
        "none gets this one.",
    )
    max_deadline_s: int | None = Field(
        default=None,
        ge=1,
        le=DEADLINE_S_BOUND,
        description="Longest `deadline_s` a workflow may ask for.",
    )
    max_steps: int | None = Field(
        default=None,
        ge=1,
        le=MAX_STEPS_BOUND,
        description="Highest `max_steps` a workflow may ask for.",
    )
    max_running_workflows: int | None = Field(
        default=None,
        ge=1,
        description="Workflows of the tenant running at once (accepted and not yet ended); "
        "one more gets `429` with `Retry-After`.",
    )

    def merged(self, override: TenantCeilings) -> TenantCeilings:
        """These ceilings with those ``override`` sets (its unset fields keep ours)."""
        return self.model_copy(update=override.model_dump(exclude_unset=True))


class CeilingExceeded(Exception):
    """A request asked for more than its tenant's ceiling; the message names it."""

    def __init__(self, option: str, value: float, ceiling: str, limit: float) -> None:
        super().__init__(
            f"options.{option} ({value:g}) is above this tenant's ceiling {ceiling} ({limit:g})"
        )
        self.option = option
        self.ceiling = ceiling


def within_ceilings(
    options: WorkflowOptions,
    ceilings: TenantCeilings,
    *,
    default_token_budget: int | None,
    default_deadline_s: int,
) -> WorkflowOptions:
    """``options`` if within ``ceilings``, with left-out options capped; else raise."""
    checks: list[tuple[str, str, float | None, float | None, float | None]] = [
        # option, ceiling, asked for, ceiling's value, what leaving it out means
        ("token_budget", "max_token_budget", options.token_budget, ceilings.max_token_budget,
         default_token_budget),
        ("cost_budget_usd", "max_cost_budget_usd", options.cost_budget_usd,
         ceilings.max_cost_budget_usd, None),
        ("deadline_s", "max_deadline_s", options.deadline_s, ceilings.max_deadline_s,
         default_deadline_s),
        ("max_steps", "max_steps", options.max_steps, ceilings.max_steps, None),
    ]  # fmt: skip
    capped: dict[str, float] = {}
    for option, ceiling, asked, limit, default in checks:
        if limit is None:
            continue
        if asked is not None:
            if asked > limit:
                raise CeilingExceeded(option, asked, ceiling, limit)
        elif default is None or default > limit:
            capped[option] = limit
    return options.model_copy(update=capped) if capped else options
