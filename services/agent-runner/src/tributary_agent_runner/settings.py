from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_AGENT_", extra="ignore", frozen=True)

    max_iterations: int = Field(
        default=8, ge=1, le=100, description="LLM calls one step may make before it is stopped."
    )
    loop_repeat_limit: int = Field(
        default=3,
        ge=2,
        le=20,
        description="Identical tool calls in one step that count as a loop.",
    )
