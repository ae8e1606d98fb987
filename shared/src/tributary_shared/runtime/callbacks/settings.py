"""Workflow callbacks' configuration: the signing secrets, per-tenant defaults, where
callbacks may go, and how they are retried. Read by the gateway (to accept or refuse
a ``callback_url``) and by the deliverer, which runs in the planner's process."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tributary_shared.core.callback_urls import check_callback_url
from tributary_shared.core.netguard import address_and_port
from tributary_shared.runtime.settings import TributarySettings

__all__ = ["CallbackSettings", "TenantCallback"]


class TenantCallback(BaseModel):
    """One tenant's callback configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = Field(
        default=None,
        description="Callback URL of the tenant's workflows that name none.",
    )
    secret: SecretStr | None = Field(
        default=None,
        description="Key the tenant's callbacks are signed with, instead of "
        "`TRIBUTARY_CALLBACK_SECRET`.",
    )

    @field_validator("url")
    @classmethod
    def _url_form(cls, url: str | None) -> str | None:
        return None if url is None else check_callback_url(url, allow_http=True)


class CallbackSettings(TributarySettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_CALLBACK_", extra="ignore", frozen=True)

    secret: SecretStr | None = Field(
        default=None,
        description="Key (HMAC-SHA256) that signs every callback of a tenant without a secret "
        "of its own in `TRIBUTARY_CALLBACK_TENANTS`; receivers verify the "
        "`Tributary-Signature` header with it (docs/api.md). Unset, and with no tenant "
        "secret, a request with a `callback_url` gets `422`. Never logged nor shown.",
    )
    tenants: dict[str, TenantCallback] = Field(
        default_factory=dict,
        description="Per tenant, a default callback URL and a signing secret of its own, as "
        'JSON: `{"acme": {"url": "https://hooks.acme.example/tributary", "secret": "..."}}`. '
        "A workflow's own `callback_url` wins over the tenant's `url`.",
    )
    allow_http: bool = Field(
        default=False,
        description="Accept `http://` callback URLs, for local development and tests only; "
        "otherwise only `https://`.",
    )
    allowed_targets: tuple[str, ...] = Field(
        default=(),
        description="Non-public addresses callbacks may reach after all (loopback, private, "
        '...), as a JSON list of `address:port`, e.g. `["127.0.0.1:8099"]`: exactly that '
        "address and port. For local development and tests; empty (the default): public "
        "addresses only, as for `fetch_url`. Any client may point a callback at what is "
        "listed.",
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        le=50,
        description="Tries of one callback before it is given up (`failed`). A 5xx, 408, 429, "
        "timeout or connection error is tried again; any other non-2xx answer gives up.",
    )
    backoff_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds before the second try; each later try waits twice as long as the "
        "one before, up to `TRIBUTARY_CALLBACK_MAX_BACKOFF_S`.",
    )
    max_backoff_s: float = Field(
        default=900.0,
        gt=0,
        le=86400,
        description="Longest wait between two tries of a callback, in seconds.",
    )
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Seconds one try may take, from connecting to reading the answer's "
        "status; past it the try counts as failed and is retried.",
    )
    poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between the deliverer's looks for callbacks that are due.",
    )
    concurrency: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="Callbacks one deliverer sends at once; a slow receiver holds up at most "
        "one of these, never the others' callbacks.",
    )

    @field_validator("allowed_targets")
    @classmethod
    def _addresses_and_ports(cls, targets: tuple[str, ...]) -> tuple[str, ...]:
        for target in targets:
            address_and_port(target)
        return targets

    @model_validator(mode="after")
    def _tenant_urls_allowed(self) -> CallbackSettings:
        for tenant, config in self.tenants.items():
            if config.url is not None and not self.allow_http and config.url.startswith("http:"):
                raise ValueError(f"the callback url of {tenant!r} must be https://")
        return self

    @property
    def lease_s(self) -> float:
        """How long a taken callback is kept from other deliverers: longer than a try."""
        return self.timeout_s * 2 + 5

    def secret_for(self, tenant_id: str) -> SecretStr | None:
        own = self.tenants.get(tenant_id)
        if own is not None and own.secret is not None:
            return own.secret
        return self.secret

    def default_url_for(self, tenant_id: str) -> str | None:
        own = self.tenants.get(tenant_id)
        return own.url if own is not None else None
