from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlannerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_PLANNER_", extra="ignore", frozen=True)

    max_steps: int = Field(default=8, ge=1, le=50, description="Most steps a plan may have.")
    deadline_sweep_interval_s: float = Field(
        default=1.0, gt=0, description="How often overdue workflows are looked for."
    )
