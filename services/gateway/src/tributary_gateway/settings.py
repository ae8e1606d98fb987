from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_GATEWAY_", extra="ignore", frozen=True)

    max_task_chars: int = Field(default=20_000, ge=1, description="Longest accepted task text.")
    sse_ping_s: float = Field(default=15.0, gt=0, description="Keep-alive comment interval.")
