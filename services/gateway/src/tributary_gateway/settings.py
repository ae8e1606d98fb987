from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_GATEWAY_", extra="ignore", frozen=True)

    max_task_chars: int = Field(
        default=20_000,
        ge=1,
        description="Longest task text accepted, in characters; a longer one gets `422`. The "
        "planner's prompt grows with the task, so raise it with the models' context in mind.",
    )
    sse_ping_s: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between keep-alive comments on an idle event stream "
        "(`GET /workflows/{id}/events`), and between its checks whether the workflow ended. "
        "Keep it below the idle timeout of proxies in front of the gateway.",
    )
