"""Configuration, read from the environment once at each service's entry point.

Each concern has one settings class; services compose the ones they need and
pass them down. A missing or malformed variable fails at start with a message
naming it (see ``load_settings``).
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

_PREFIXED = SettingsConfigDict(env_prefix="TRIBUTARY_", extra="ignore", frozen=True)


class ConfigurationError(SystemExit):
    """Raised at start when the environment does not describe a usable configuration."""


class KafkaSettings(BaseSettings):
    model_config = _PREFIXED
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_client_id: str = "tributary"


class RedisSettings(BaseSettings):
    model_config = _PREFIXED
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_max_connections: int = Field(
        default=512,
        ge=1,
        description="Redis connections per pool; callers wait for a free one when all are busy.",
    )
    redis_pool_timeout_s: float = Field(
        default=20.0, gt=0, description="How long a caller waits for a free Redis connection."
    )
    workflow_retention_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long finished workflows stay readable."
    )


class HttpSettings(BaseSettings):
    model_config = _PREFIXED
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    service_instance: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ConsumerSettings(BaseSettings):
    model_config = _PREFIXED
    max_in_flight: int = Field(default=64, ge=1, le=10_000)
    handler_attempts: int = Field(
        default=3, ge=1, le=20, description="Tries per message before it is dead-lettered."
    )
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=6_000,
        description="How long a crashed replica keeps its partitions before they move.",
    )


class LLMSettings(BaseSettings):
    """Where the OpenAI-compatible endpoint is and which model serves each role."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("TRIBUTARY_LLM_BASE_URL", "OPENAI_BASE_URL")
    )
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TRIBUTARY_LLM_API_KEY", "OPENAI_API_KEY")
    )
    planner_model: str = Field(
        default="gpt-4o-mini", validation_alias="TRIBUTARY_PLANNER_MODEL", min_length=1
    )
    agent_model: str = Field(
        default="gpt-4o-mini", validation_alias="TRIBUTARY_AGENT_MODEL", min_length=1
    )
    synthesizer_model: str = Field(
        default="gpt-4o-mini", validation_alias="TRIBUTARY_SYNTHESIZER_MODEL", min_length=1
    )
    timeout_s: float = Field(default=60.0, gt=0, validation_alias="TRIBUTARY_LLM_TIMEOUT_S")
    max_attempts: int = Field(default=4, ge=1, le=10, validation_alias="TRIBUTARY_LLM_MAX_ATTEMPTS")
    max_backoff_s: float = Field(default=30.0, gt=0, validation_alias="TRIBUTARY_LLM_MAX_BACKOFF_S")
    max_completion_tokens: int = Field(
        default=2048,
        ge=16,
        validation_alias="TRIBUTARY_LLM_MAX_COMPLETION_TOKENS",
        description="Cap on each call's completion; budgets reserve it before the call.",
    )
    agent_model_simple: str | None = Field(
        default=None,
        validation_alias="TRIBUTARY_AGENT_MODEL_SIMPLE",
        description="Cheaper model for steps the planner rates low complexity.",
    )
    agent_model_complex: str | None = Field(
        default=None,
        validation_alias="TRIBUTARY_AGENT_MODEL_COMPLEX",
        description="Stronger model for high-complexity steps and long-running agent loops.",
    )
    escalate_after_iterations: int = Field(
        default=4,
        ge=1,
        validation_alias="TRIBUTARY_ESCALATE_AFTER_ITERATIONS",
        description="Agent iterations after which calls go to the complex model.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        validation_alias="TRIBUTARY_LLM_MAX_CONNECTIONS",
        description="Concurrent HTTP connections to the LLM endpoint per process.",
    )
    fallback_cooldown_s: float = Field(
        default=30.0,
        ge=0,
        validation_alias="TRIBUTARY_LLM_FALLBACK_COOLDOWN_S",
        description="After a model's retries run out, calls skip it for this long.",
    )
    fallback_model: str | None = Field(
        default=None,
        validation_alias="TRIBUTARY_FALLBACK_MODEL",
        description="Secondary model after repeated transient failures or an unknown model.",
    )

    def model_for(self, role: Literal["planner", "agent", "synthesizer"]) -> str:
        return {
            "planner": self.planner_model,
            "agent": self.agent_model,
            "synthesizer": self.synthesizer_model,
        }[role]


class WorkflowDefaults(BaseSettings):
    """Defaults a workflow's own options override."""

    model_config = _PREFIXED

    default_deadline_s: int = Field(
        default=3600, ge=1, description="Seconds a workflow may take when it sets no deadline."
    )


class ModelPrice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_per_1k_usd: float = Field(ge=0)
    completion_per_1k_usd: float = Field(ge=0)


class BudgetSettings(BaseSettings):
    """Defaults for per-workflow budgets; a workflow's options override them."""

    model_config = _PREFIXED

    default_token_budget: int | None = Field(
        default=200_000, ge=1, description="Tokens per workflow when the request sets none."
    )
    on_budget_exhausted: Literal["partial", "fail"] = "partial"
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description='JSON: {"model": {"prompt_per_1k_usd": 0.15, "completion_per_1k_usd": 0.6}}',
    )


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Instantiate ``cls`` from the environment or exit naming the bad variables."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            problems.append(f"{prefix}{field.upper()}: {err['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
