from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_AGENT_", extra="ignore", frozen=True)

    max_iterations: int = Field(
        default=8,
        ge=1,
        le=100,
        description="LLM calls one agent step may make (each may call tools) before it fails "
        "with `iteration_limit`. Raise it for steps that need many tool calls; lower it to cap "
        "the cost of a step.",
    )
    loop_repeat_limit: int = Field(
        default=3,
        ge=2,
        le=20,
        description="Times one tool call (same name and arguments) may occur in a step before "
        "the step is stopped as a loop (`loop_detected`). Raise it if a tool is meant to be "
        "polled with the same arguments.",
    )
    step_lease_s: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        description="Seconds a runner's lease on a step lasts; it is renewed every third of "
        "that while the step runs. A step whose runner died is taken over by the next delivery "
        "once the lease lapses, so a shorter lease recovers sooner but renews more often.",
    )
