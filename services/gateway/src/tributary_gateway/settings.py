from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tributary_shared.runtime.settings import TributarySettings


class GatewaySettings(TributarySettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_GATEWAY_", extra="ignore", frozen=True)

    max_task_chars: int = Field(
        default=20_000,
        ge=1,
        description="Longest task text accepted, in characters; a longer one gets `422`. The "
        "planner's prompt grows with the task, so raise it with the models' context in mind.",
    )
    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest request body accepted, in bytes; a larger one gets `413` before "
        "it is read further or parsed (a declared `Content-Length` over it is refused at "
        "once, a chunked body as soon as it goes past).",
    )
    sse_ping_s: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between keep-alive comments on an idle event stream "
        "(`GET /v1/workflows/{id}/events`), and between its checks whether the workflow ended "
        "and whether its API key still stands (a revoked key's streams end within this "
        "time). Keep it below the idle timeout of proxies in front of the gateway.",
    )
    max_streams: int = Field(
        default=5_000,
        ge=1,
        description="Event streams (`GET /workflows/{id}/events`) one gateway replica serves "
        "at once; one more gets `429` with `Retry-After`. All of them share one Redis "
        "connection; each costs a little memory and a file descriptor.",
    )
    stream_backlog: int = Field(
        default=256,
        ge=1,
        description="Batches of events an event stream may fall behind its workflow's log "
        "before it is closed (its client reconnects with `Last-Event-ID`), so a slow client "
        "cannot make the gateway buffer without bound.",
    )
