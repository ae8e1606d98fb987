"""Which model serves a call: by role, step complexity and iteration, with a fallback.

Pure: the chain it returns is tried in order by the LLM client, which moves to
the next model when the error table lets a failure fall back (transient
failures once their retries are spent, a model the endpoint does not know).
"""

from __future__ import annotations

from collections.abc import Sequence

from tributary_shared.core.completions import Role
from tributary_shared.core.events import Complexity
from tributary_shared.runtime.settings import LLMSettings


def model_chain(
    settings: LLMSettings,
    role: Role,
    *,
    complexity: Complexity | None = None,
    iteration: int | None = None,
) -> tuple[str, ...]:
    primary = settings.model_for(role)
    if role == "agent":
        long_running = iteration is not None and iteration > settings.escalate_after_iterations
        if (complexity == "high" or long_running) and settings.agent_model_complex:
            primary = settings.agent_model_complex
        elif complexity == "low" and settings.agent_model_simple:
            primary = settings.agent_model_simple
    chain = [primary]
    if settings.fallback_model and settings.fallback_model != primary:
        chain.append(settings.fallback_model)
    return tuple(chain)


def model_served_by(settings: LLMSettings, models: Sequence[str], deployment: str | None) -> str:
    """The model of a call's chain that ``deployment`` serves (deployment ids are unique
    across models); the chain's first when none does. A configured name, so it is fit
    for a metric label, unlike the name the endpoint answers with."""
    for model in models:
        if any(served.id == deployment for served in settings.deployments_for(model)):
            return model
    return models[0] if models else (deployment or "")
