"""The gateway's quotas as request dependencies and helpers: who is calling, how often,
how much a workflow may ask for, and how many of a tenant's run at once.

The caller is named by ``principal``: its API key's id. Rate limits and per-key
stream ceilings key on it; tenant ceilings key on the workflow's tenant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status

from tributary_gateway.auth import Authenticated
from tributary_gateway.deps import State
from tributary_gateway.tenant_limits import CeilingExceeded, TenantCeilings, within_ceilings
from tributary_shared.core.events import WorkflowOptions
from tributary_shared.core.quotas import retry_after_header

__all__ = [
    "RUNNING_RETRY_AFTER_S",
    "Principal",
    "admit_running",
    "bounded_options",
    "pace",
    "principal",
    "rate_limited",
    "release_running",
]

# A tenant at its running ceiling waits for one of its workflows to end: minutes,
# usually. Retrying every few seconds costs one Redis script each.
RUNNING_RETRY_AFTER_S = 5


def principal(caller: Authenticated) -> str:
    """Who is calling, for per-caller limits: the API key (authenticated first)."""
    return f"key:{caller.key_id}"


Principal = Annotated[str, Depends(principal)]


async def rate_limited(state: State, caller: Principal) -> None:
    """Pace each caller's requests (every replica shares the count); 429 beyond its rate."""
    await pace(state, caller)


async def pace(state: State, caller: str) -> None:
    """``rate_limited`` for a caller named some other way (a stream token's key)."""
    if state.rates is None:
        return
    settings = state.settings
    wait = await state.rates.acquire(
        caller, per_second=settings.rate_limit_per_s, burst=settings.rate_limit_burst
    )
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many requests for this API key; retry after the time Retry-After gives",
            headers={"Retry-After": retry_after_header(wait)},
        )


def bounded_options(state: State, tenant_id: str, options: WorkflowOptions) -> WorkflowOptions:
    """The options within the tenant's ceilings; 422 naming the ceiling a request passes."""
    try:
        return within_ceilings(
            options,
            state.tenant_limits.ceilings_of(tenant_id),
            default_token_budget=state.budgets.default_token_budget,
            default_deadline_s=state.defaults.default_deadline_s,
        )
    except CeilingExceeded as exceeded:
        raise HTTPException(422, str(exceeded)) from None


async def admit_running(state: State, tenant_id: str, workflow_id: str) -> None:
    """Count the workflow against its tenant's running ceiling; 429 if the tenant is at it."""
    ceilings: TenantCeilings = state.tenant_limits.ceilings_of(tenant_id)
    limit = ceilings.max_running_workflows
    if state.running is None or limit is None:
        return
    if not await state.running.admit(tenant_id, workflow_id, limit=limit):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"this tenant runs as many workflows as its ceiling max_running_workflows ({limit}) "
            "allows; retry once one has ended",
            headers={"Retry-After": str(RUNNING_RETRY_AFTER_S)},
        )


async def release_running(state: State, tenant_id: str, workflow_id: str) -> None:
    """Stop counting a workflow that was admitted but not created (a replay, a refusal)."""
    if state.running is not None:
        await state.running.release(tenant_id, workflow_id)
