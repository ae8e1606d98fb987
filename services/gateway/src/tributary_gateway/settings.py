from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tributary_gateway.tenant_limits import TenantCeilings
from tributary_shared.runtime.settings import TributarySettings


class GatewaySettings(TributarySettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_GATEWAY_", extra="ignore", frozen=True)

    metrics_port: int = Field(
        default=9100,
        ge=1,
        le=65535,
        description="Port of the gateway's metrics server (`/metrics`, and `/healthz` for its "
        "own probe), apart from the public API's port (`TRIBUTARY_HTTP_PORT`), which serves "
        "only `/v1` and the health checks. It listens on `TRIBUTARY_HTTP_HOST` as well: "
        "keep it out of public reach (the Kubernetes NetworkPolicy lets only the "
        "`monitoring` namespace in).",
    )
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
    max_streams_per_key: int = Field(
        default=20,
        ge=1,
        description="Event streams one caller (API key) may hold open at once on one gateway "
        "replica; one more gets `429` with `Retry-After`.",
    )
    rate_limit_per_s: float = Field(
        default=10.0,
        gt=0,
        description="Requests per second one caller (API key) may make to `/v1`, sustained, "
        "counted in Redis across every gateway replica; past it (and its burst) a request "
        "gets `429` with `Retry-After`.",
    )
    rate_limit_burst: int = Field(
        default=20,
        ge=1,
        description="Requests one caller may make at once before `TRIBUTARY_GATEWAY_RATE_LIMIT_"
        "PER_S` paces it.",
    )
    stream_backlog: int = Field(
        default=256,
        ge=1,
        description="Batches of events an event stream may fall behind its workflow's log "
        "before it is closed (its client reconnects with `Last-Event-ID`), so a slow client "
        "cannot make the gateway buffer without bound.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins of web pages that may call the API from a browser (CORS), "
        "exact, comma-separated (or a JSON list): `https://app.example.com,http://localhost:5173`. "
        "Empty: no CORS headers at all, so browsers keep pages of other origins out. "
        "Credentials (cookies) are never allowed; pages send an API key, or a stream token "
        "to an event stream.",
    )
    stream_token_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Secret (at least 32 characters) stream tokens are signed with "
        "(HMAC-SHA256); every gateway replica must have the same. Empty: the replicas share "
        "a random one they keep in Redis. Set it (from a secret, "
        "`TRIBUTARY_GATEWAY_STREAM_TOKEN_SECRET_FILE`) so that a copy of Redis's data is not "
        "enough to forge tokens; changing it ends every token issued before.",
    )
    stream_token_ttl_s: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="Seconds a stream token (`POST /v1/workflows/{id}/stream-token`) can "
        "open its event stream for; a stream already open when it expires goes on.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)  # a JSON list, as other list settings take
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            if not (parts.scheme and parts.netloc) or origin != f"{parts.scheme}://{parts.netloc}":
                raise ValueError(
                    f"{origin!r} is not an exact origin like https://app.example.com "
                    "(scheme, host and port only; no '*', no trailing '/')"
                )
        return origins


class TenantLimitSettings(TributarySettings):
    """Per-tenant ceilings: the defaults every tenant gets, and overrides for some."""

    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_TENANT_", extra="ignore", frozen=True)

    max_token_budget: int | None = Field(
        default=2_000_000,
        ge=1,
        description="Highest `token_budget` a tenant's workflow may ask for; above it the "
        "request gets `422` naming `max_token_budget`. Empty: no ceiling.",
    )
    max_cost_budget_usd: float | None = Field(
        default=None,
        gt=0,
        description="Highest `cost_budget_usd` a tenant's workflow may ask for (`422` "
        "above it); a workflow that asks for none gets this one. Empty: no ceiling.",
    )
    max_deadline_s: int | None = Field(
        default=24 * 3600,
        ge=1,
        description="Longest `deadline_s` a tenant's workflow may ask for (`422` above it). "
        "Empty: no ceiling.",
    )
    max_steps: int | None = Field(
        default=None,
        ge=1,
        description="Highest `max_steps` a tenant's workflow may ask for (`422` above it); "
        "a workflow that asks for none gets this one. Empty: no ceiling.",
    )
    max_running_workflows: int | None = Field(
        default=100,
        ge=1,
        description="Workflows of one tenant running at once (accepted and not yet ended, "
        "counted in Redis across every gateway replica); one more gets `429` with "
        "`Retry-After`. Empty: no ceiling.",
    )
    limits: dict[str, TenantCeilings] = Field(
        default_factory=dict,
        description="Ceilings of particular tenants, over the defaults above, as JSON: "
        '`{"acme": {"max_running_workflows": 500, "max_token_budget": 10000000}}`. '
        "Fields a tenant's entry leaves out keep the defaults; `null` lifts that ceiling.",
    )

    def ceilings_of(self, tenant_id: str) -> TenantCeilings:
        defaults = TenantCeilings(
            max_token_budget=self.max_token_budget,
            max_cost_budget_usd=self.max_cost_budget_usd,
            max_deadline_s=self.max_deadline_s,
            max_steps=self.max_steps,
            max_running_workflows=self.max_running_workflows,
        )
        override = self.limits.get(tenant_id)
        return defaults.merged(override) if override is not None else defaults
