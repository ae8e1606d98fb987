"""Configuration, read from the environment once at each service's entry point.

Each concern has one settings class; services compose the ones they need and
pass them down. A missing or malformed variable fails at start with a message
naming it (see ``load_settings``). Every settings class is a
``TributarySettings``, so each variable ``X`` can also be given as a file named
by ``X_FILE`` (``env_files``): the way Kubernetes hands secrets over.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from tributary_shared.core.redaction import DEFAULT_KEY_PREFIXES, Redactor
from tributary_shared.runtime.env_files import EnvAndFilesSource, FileVariableError

_PREFIXED = SettingsConfigDict(env_prefix="TRIBUTARY_", extra="ignore", frozen=True)


class ConfigurationError(SystemExit):
    """Raised at start when the environment does not describe a usable configuration."""


class TributarySettings(BaseSettings):
    """Base of every service's settings: variables, and ``<VARIABLE>_FILE`` for each of them.

    A file named by ``X_FILE`` gives ``X`` its content (trailing line breaks dropped);
    setting both is an error. See ``tributary_shared.runtime.env_files``.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            EnvAndFilesSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(TributarySettings):
    model_config = _PREFIXED
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Kafka brokers a process contacts first, comma-separated `host:port`; it "
        "learns the rest of the cluster from them. Point it at your cluster, naming more than "
        "one broker so that a start does not depend on a single one.",
    )
    kafka_client_id: str = Field(
        default="tributary",
        description="Prefix of each process's Kafka client id (`<prefix>-<instance>`), which "
        "brokers show in their logs, metrics and quotas. Change it to tell apart deployments "
        "that share one Kafka cluster.",
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default="PLAINTEXT",
        description="How every Kafka client of the process (producers, consumers, admin) "
        "talks to the brokers: `PLAINTEXT` (neither encrypted nor authenticated: a trusted "
        "network only), `SSL` (TLS), `SASL_PLAINTEXT` (a password, unencrypted) or `SASL_SSL` "
        "(a password over TLS: what a shared or managed cluster wants).",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        default=None,
        description="SASL mechanism the brokers accept: `PLAIN`, `SCRAM-SHA-256` or "
        "`SCRAM-SHA-512`. Required with the `SASL_*` protocols, refused without them.",
    )
    kafka_sasl_username: str | None = Field(
        default=None,
        min_length=1,
        description="SASL user the process authenticates as; with the `SASL_*` protocols only.",
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        min_length=1,
        description="That user's password; with the `SASL_*` protocols only. Give it as a file "
        "(`TRIBUTARY_KAFKA_SASL_PASSWORD_FILE`) from a secret.",
    )
    kafka_ssl_ca_path: FilePath | None = Field(
        default=None,
        description="PEM file of the certificate authorities that signed the brokers' "
        "certificates; unset: the system's trusted authorities. With `SSL` and `SASL_SSL` only.",
    )
    kafka_ssl_cert_path: FilePath | None = Field(
        default=None,
        description="PEM file of this client's certificate (then its chain), for brokers that "
        "require client certificates (`ssl.client.auth=required`); unset: none is sent. Its "
        "key is read from `TRIBUTARY_KAFKA_SSL_KEY_PATH`, or from this file when that is unset.",
    )
    kafka_ssl_key_path: FilePath | None = Field(
        default=None,
        description="PEM file of the private key of `TRIBUTARY_KAFKA_SSL_CERT_PATH`.",
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None,
        description="Password of that private key, when it is encrypted.",
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True,
        description="Whether a broker's certificate must name the host the client connects to "
        "(the certificate is verified against the authorities either way). Turn it off only "
        "for brokers reached by an address their certificates do not carry.",
    )

    @model_validator(mode="after")
    def _consistent_security(self) -> KafkaSettings:
        protocol = self.kafka_security_protocol
        sasl = {
            "TRIBUTARY_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "TRIBUTARY_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "TRIBUTARY_KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        tls = {
            "TRIBUTARY_KAFKA_SSL_CA_PATH": self.kafka_ssl_ca_path,
            "TRIBUTARY_KAFKA_SSL_CERT_PATH": self.kafka_ssl_cert_path,
            "TRIBUTARY_KAFKA_SSL_KEY_PATH": self.kafka_ssl_key_path,
            "TRIBUTARY_KAFKA_SSL_KEY_PASSWORD": self.kafka_ssl_key_password,
        }
        if protocol.startswith("SASL_"):
            _require(sasl, f"TRIBUTARY_KAFKA_SECURITY_PROTOCOL={protocol}")
        else:
            _refuse(sasl, f"TRIBUTARY_KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL")
        if protocol not in ("SSL", "SASL_SSL"):
            _refuse(tls, f"TRIBUTARY_KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS")
        if self.kafka_ssl_key_path is not None and self.kafka_ssl_cert_path is None:
            raise ValueError(
                "TRIBUTARY_KAFKA_SSL_KEY_PATH is set without TRIBUTARY_KAFKA_SSL_CERT_PATH"
            )
        return self


class RedisSettings(TributarySettings):
    model_config = _PREFIXED
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis holding workflow state, event logs and budgets, as "
        "`redis://[[user]:password@]host:port/db`, or `rediss://...` for TLS; by default "
        "`redis://127.0.0.1:6379/0`. Every service of one deployment must use the same "
        "database. It may carry a password, so it is kept secret: give it from a secret, or "
        "keep the password out of it in `TRIBUTARY_REDIS_PASSWORD`.",
    )
    redis_username: str | None = Field(
        default=None,
        min_length=1,
        description="Redis ACL user to authenticate as, when the URL names none; unset with a "
        "password: the `default` user.",
    )
    redis_password: SecretStr | None = Field(
        default=None,
        min_length=1,
        description="Password of that user (or of `requirepass`), when the URL carries none. "
        "Give it as a file (`TRIBUTARY_REDIS_PASSWORD_FILE`) from a secret.",
    )
    redis_ssl_ca_path: FilePath | None = Field(
        default=None,
        description="PEM file of the certificate authorities that signed the Redis server's "
        "certificate; unset: the system's trusted authorities. With a `rediss://` URL only.",
    )
    redis_ssl_cert_path: FilePath | None = Field(
        default=None,
        description="PEM file of this client's certificate, for a server that requires client "
        "certificates (`tls-auth-clients yes`); with a `rediss://` URL only.",
    )
    redis_ssl_key_path: FilePath | None = Field(
        default=None,
        description="PEM file of the private key of `TRIBUTARY_REDIS_SSL_CERT_PATH`, when the "
        "certificate's file does not hold it.",
    )
    redis_ssl_check_hostname: bool = Field(
        default=True,
        description="Whether the Redis server's certificate must name the host in the URL (the "
        "certificate is verified against the authorities either way). Turn it off only for "
        "a server reached by an address its certificate does not carry.",
    )
    redis_max_connections: int = Field(
        default=512,
        ge=1,
        description="Connections per Redis connection pool (a process has one pool for commands "
        "and one for blocking reads); when all are busy, callers wait up to "
        "`TRIBUTARY_REDIS_POOL_TIMEOUT_S` for a free one. Raise it with "
        "`TRIBUTARY_MAX_IN_FLIGHT`; keep replicas x 2 x this below Redis's `maxclients`.",
    )
    redis_pool_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="Seconds a caller waits for a free pooled Redis connection before its "
        "command fails. Raise it if bursts fail with pool timeouts while Redis itself keeps up.",
    )
    workflow_retention_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="Seconds a finished workflow's state, events and budget stay in Redis, "
        "readable through the API, before they expire; an `Idempotency-Key` is remembered as "
        "long from its request. Lower it to save Redis memory, raise it if clients collect "
        "results late.",
    )

    @model_validator(mode="after")
    def _consistent_connection(self) -> RedisSettings:
        # Messages never quote the URL: it may hold a password.
        url = urlsplit(self.redis_url.get_secret_value())
        if url.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                "TRIBUTARY_REDIS_URL must start with redis://, rediss:// (TLS) or unix://"
            )
        if url.username and self.redis_username is not None:
            raise ValueError("TRIBUTARY_REDIS_USERNAME is set and TRIBUTARY_REDIS_URL names a user")
        if url.password and self.redis_password is not None:
            raise ValueError(
                "TRIBUTARY_REDIS_PASSWORD is set and TRIBUTARY_REDIS_URL carries a password"
            )
        if url.scheme != "rediss":
            tls = {
                "TRIBUTARY_REDIS_SSL_CA_PATH": self.redis_ssl_ca_path,
                "TRIBUTARY_REDIS_SSL_CERT_PATH": self.redis_ssl_cert_path,
                "TRIBUTARY_REDIS_SSL_KEY_PATH": self.redis_ssl_key_path,
            }
            _refuse(tls, "TRIBUTARY_REDIS_URL is not a rediss:// (TLS) URL")
        if self.redis_ssl_key_path is not None and self.redis_ssl_cert_path is None:
            raise ValueError(
                "TRIBUTARY_REDIS_SSL_KEY_PATH is set without TRIBUTARY_REDIS_SSL_CERT_PATH"
            )
        return self


def _require(values: Mapping[str, object], reason: str) -> None:
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise ValueError(f"{reason} needs {', '.join(missing)}")


def _refuse(values: Mapping[str, object], reason: str) -> None:
    present = [name for name, value in values.items() if value is not None]
    if present:
        raise ValueError(f"{', '.join(present)} set, but {reason}")


class HttpSettings(TributarySettings):
    model_config = _PREFIXED
    http_host: str = Field(
        default="127.0.0.1",
        description="Address the HTTP server (API, health, metrics) listens on. The default "
        "serves this machine only; set `0.0.0.0` in containers so that probes and other pods "
        "reach it.",
    )
    http_port: int = Field(
        default=8000,
        ge=0,
        le=65535,
        description="TCP port of the HTTP server (API, health, metrics). Change it when several "
        "processes share one host.",
    )
    service_instance: str = Field(
        default="",
        description="Name of this replica in log lines and in its Kafka client id; empty means "
        "the service's name. Give each replica its own (the pod name, say) so that logs and "
        "broker metrics tell them apart.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="Lowest level of the log lines written. `DEBUG` is verbose, for diagnosing "
        "a problem. Each process reads its own, so one service can log at `DEBUG` while the "
        "others stay at `INFO`: set it in that service's environment alone (its `environment` "
        "in compose.yaml, its Deployment's `env` in Kubernetes, which overrides the ConfigMap).",
    )


class TracingSettings(TributarySettings):
    """OpenTelemetry's own variables (``OTEL_*``), as far as they decide whether and where
    spans are exported; the SDK reads the rest itself (sampler, batching, exporter headers
    and timeout, resource attributes). See ``runtime.tracing``."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)
    otel_sdk_disabled: bool = Field(
        default=False,
        description="`true` turns tracing off whatever else is set: no span is recorded or "
        "exported.",
    )
    otel_traces_exporter: Literal["otlp", "console", "none"] | None = Field(
        default=None,
        description="Where spans go: `otlp` (OTLP over HTTP/protobuf to "
        "`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `console` (printed to standard output, for "
        "a look on one machine) or `none`. Unset: `otlp` when an OTLP endpoint is set, else "
        "none. With none, tracing is off and costs nothing but the no-op API calls; the "
        "trace context that arrives in Kafka headers is still passed on.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="Base URL of an OTLP/HTTP receiver (a collector, or a tracing backend "
        "that speaks OTLP), as `http://collector:4318`; spans go to its `/v1/traces`. "
        "Setting it turns tracing on.",
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None,
        description="Full URL spans are posted to (`http://collector:4318/v1/traces`), "
        "taken as it is; it wins over `OTEL_EXPORTER_OTLP_ENDPOINT`. Setting it turns "
        "tracing on.",
    )
    otel_exporter_otlp_protocol: Literal["http/protobuf"] = Field(
        default="http/protobuf",
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"
        ),
        description="OTLP transport; only `http/protobuf` is built in (a collector accepts "
        "it on port 4318).",
    )
    otel_service_name: str | None = Field(
        default=None,
        description="`service.name` of the spans; unset: the service's own name (`gateway`, "
        "`planner`, `agent-runner`, `synthesizer`), which is what you want unless one "
        "tracing backend receives several deployments.",
    )

    def exporter(self) -> Literal["otlp", "console"] | None:
        """The exporter to build, or None: tracing is off."""
        if self.otel_sdk_disabled or self.otel_traces_exporter == "none":
            return None
        if self.otel_traces_exporter is not None:
            return self.otel_traces_exporter
        return "otlp" if self.otlp_traces_url() is not None else None

    def otlp_traces_url(self) -> str | None:
        """The full URL spans are posted to (None: the SDK's default, localhost:4318)."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        return None


class RedactionSettings(TributarySettings):
    model_config = _PREFIXED
    redact_key_prefixes: tuple[str, ...] = Field(
        default=DEFAULT_KEY_PREFIXES,
        description="Prefixes by which API keys are recognised and masked (8 or more key "
        "characters after the prefix) in logs, events, stored workflow state, dead letters and "
        "HTTP error responses, as a JSON list. The default holds Tributary's own `trb_` and "
        "the usual providers' (see docs/security.md); setting it replaces that list, so keep "
        "`trb_` in it and add the prefixes of the keys your tools and models use. Every "
        "service of a deployment must use the same list. `Authorization` credentials, "
        "`Bearer` tokens, `password=`-style values and passwords in URLs are masked whatever "
        "it holds.",
    )

    @field_validator("redact_key_prefixes")
    @classmethod
    def _no_blank_prefix(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        if any(not prefix.strip() for prefix in prefixes):
            raise ValueError("a key prefix must not be blank")
        return prefixes

    def redactor(self) -> Redactor:
        return Redactor(self.redact_key_prefixes)


class ConsumerSettings(TributarySettings):
    model_config = _PREFIXED
    outage_patience_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="Seconds a worker waits out Kafka or Redis being away before it treats the "
        "failure as an error: a handler's message is retried without using up its attempts, "
        "and an agent step's budget, loop-record and effect-ledger calls wait in place, so "
        "the step does not start its LLM calls again. Raise it to ride out longer outages.",
    )
    max_in_flight: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Messages one worker process handles at once. Raise it when handlers mostly "
        "wait on the LLM and the CPU is idle; lower it to limit memory or the load on Redis "
        "and the LLM endpoint.",
    )
    handler_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Tries per message, the first included, before a message whose handling "
        "keeps failing is dead-lettered. Raise it if short outages of Redis or the LLM endpoint "
        "dead-letter messages that would have succeeded later.",
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, seconds the messages being handled get to finish before the "
        "process stops; unfinished ones stay uncommitted and are redelivered. Keep it below "
        "the orchestrator's grace period (Kubernetes `terminationGracePeriodSeconds`).",
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=6_000,
        description="Milliseconds without heartbeats after which Kafka declares a replica dead "
        "and moves its partitions to the others. Lower it for faster failover, raise it if busy "
        "replicas lose their partitions; the broker's `group.min.session.timeout.ms` (6000 by "
        "default) bounds it.",
    )
    handler_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds one handling of a message (an agent step with all its LLM and "
        "tool calls, say) may take; past it the handling is cancelled, logged as an error and "
        "counts as a failed attempt (see `TRIBUTARY_HANDLER_ATTEMPTS`). The default matches "
        "`TRIBUTARY_DEFAULT_DEADLINE_S`; keep it above your longest step.",
    )
    max_uncommitted_per_partition: int = Field(
        default=10_000,
        ge=1,
        description="Messages of one partition a worker takes on from the oldest one still "
        "being handled onwards (finished or not: none of them can be committed before it); "
        "at the limit the partition is paused until the oldest finishes. It bounds the memory "
        "a stuck message costs and what a crash redelivers; lower it to redeliver less, raise "
        "it if one long step holds up the other workflows of its partition.",
    )


class Deployment(BaseModel):
    """One place a model is served: an endpoint, its key, the provider's name for the
    model there, and the limits the provider sets on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}$",
        description="Names the deployment in step outcomes (`deployments`), `llm.waiting` "
        "events, metrics, logs and its shared admission gate; unique across all models, and "
        "not the name of a model served by `TRIBUTARY_LLM_BASE_URL` (whose deployment goes "
        "by the model's name).",
    )
    base_url: str | None = Field(
        default=None,
        min_length=1,
        description="OpenAI-compatible endpoint, ending in `/v1`; unset: "
        "`TRIBUTARY_LLM_BASE_URL` (the OpenAI API when that is unset too).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Key sent to this endpoint; unset: `TRIBUTARY_LLM_API_KEY`.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        description="The provider's id for the model at this endpoint (an Azure deployment "
        "name, a dated version, another provider's name for it); unset: the model name as "
        "configured.",
    )
    rpm: int | None = Field(
        default=None,
        ge=1,
        description="Requests per minute the provider allows this deployment (its "
        "account's limit): its admission gate keeps every replica together within it; "
        "unset: `TRIBUTARY_LLM_RATE_LIMITS`'s for its id, if any.",
    )
    tpm: int | None = Field(
        default=None,
        ge=1,
        description="Tokens (prompt and completion) per minute the provider allows this "
        "deployment, kept as `rpm` is; unset: `TRIBUTARY_LLM_RATE_LIMITS`'s for its id, if any.",
    )


class LLMSettings(TributarySettings):
    """Where the OpenAI-compatible endpoint is and which model serves each role."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TRIBUTARY_LLM_BASE_URL", "OPENAI_BASE_URL"),
        description="OpenAI-compatible endpoint, ending in `/v1` (vLLM, Ollama, a proxy, ...); "
        "unset means the OpenAI API.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TRIBUTARY_LLM_API_KEY", "OPENAI_API_KEY"),
        description="Key sent to the LLM endpoint; the workers do not start without it (give "
        "any value to an endpoint that needs none).",
    )
    planner_model: str = Field(
        default="gpt-4o-mini",
        validation_alias="TRIBUTARY_PLANNER_MODEL",
        min_length=1,
        description="Model that turns a task into a plan of steps.",
    )
    agent_model: str = Field(
        default="gpt-4o-mini",
        validation_alias="TRIBUTARY_AGENT_MODEL",
        min_length=1,
        description="Model that runs agent steps, unless `TRIBUTARY_AGENT_MODEL_SIMPLE` or "
        "`TRIBUTARY_AGENT_MODEL_COMPLEX` takes the step.",
    )
    synthesizer_model: str = Field(
        default="gpt-4o-mini",
        validation_alias="TRIBUTARY_SYNTHESIZER_MODEL",
        min_length=1,
        description="Model that writes the final answer from the steps' results.",
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias="TRIBUTARY_LLM_TIMEOUT_S",
        description="Seconds one LLM request may take before it is abandoned and tried again. "
        "Raise it for slow local models or long completions.",
    )
    stream: bool = Field(
        default=False,
        validation_alias="TRIBUTARY_LLM_STREAM",
        description="Ask the LLM endpoints to stream their answers (`stream: true`, with usage "
        "in the last chunk); the completion is assembled from the chunks and is the same as "
        "without streaming, and `llm_time_to_first_token_seconds` measures how soon the first "
        "token arrives. Off by default: some OpenAI-compatible servers do not stream tool calls "
        "or send no usage when streaming. `TRIBUTARY_LLM_TIMEOUT_S` bounds the whole streamed "
        "request. Off or on, an agent's or the synthesizer's call is streamed while an event "
        "stream with `mode=tokens` follows its workflow (docs/api.md, event stream modes).",
    )
    max_attempts: int = Field(
        default=4,
        ge=1,
        le=10,
        validation_alias="TRIBUTARY_LLM_MAX_ATTEMPTS",
        description="Tries of one LLM call on one deployment, the first included, while it "
        "fails transiently (timeouts, rate limits, server errors, connections refused); then "
        "the next deployment of the call's chain takes over. Once every deployment has had "
        "its tries, the call goes round the chain again while `TRIBUTARY_LLM_PATIENCE_S` and "
        "the workflow's deadline allow.",
    )
    max_backoff_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias="TRIBUTARY_LLM_MAX_BACKOFF_S",
        description="Longest pause, in seconds, between two tries of an LLM call; pauses "
        "double from 0.5 s up to it, each a random part of the way between half and all of "
        "its length. An endpoint's `Retry-After` (or `retry-after-ms`) is waited out in full, "
        "even beyond it. Lower it to notice a recovered endpoint sooner.",
    )
    max_completion_tokens: int = Field(
        default=2048,
        ge=16,
        validation_alias="TRIBUTARY_LLM_MAX_COMPLETION_TOKENS",
        description="Most tokens one LLM call may generate; token budgets reserve this many "
        "before each call. Raise it if answers are cut off, lower it to fit more calls in a "
        "budget.",
    )
    record_calls: bool = Field(
        default=True,
        validation_alias="TRIBUTARY_RECORD_CALLS",
        description="Record every LLM and tool call (prompts, answers, tool arguments and "
        "results, redacted) as `llm.called` / `tool.called` events of its workflow, for "
        "`GET /v1/workflows/{id}/calls` and `tributary replay`. Turn off to keep prompts "
        "out of Redis and Kafka; replay then shows lifecycle events only.",
    )
    agent_model_simple: str | None = Field(
        default=None,
        validation_alias="TRIBUTARY_AGENT_MODEL_SIMPLE",
        description="Cheaper model for steps the planner rates low complexity; unset: "
        "`TRIBUTARY_AGENT_MODEL` runs them.",
    )
    agent_model_complex: str | None = Field(
        default=None,
        validation_alias="TRIBUTARY_AGENT_MODEL_COMPLEX",
        description="Stronger model for steps the planner rates high complexity and for steps "
        "past `TRIBUTARY_ESCALATE_AFTER_ITERATIONS`; unset: `TRIBUTARY_AGENT_MODEL` runs them.",
    )
    escalate_after_iterations: int = Field(
        default=4,
        ge=1,
        validation_alias="TRIBUTARY_ESCALATE_AFTER_ITERATIONS",
        description="Agent iterations (LLM calls within one step) after which the step's calls "
        "go to `TRIBUTARY_AGENT_MODEL_COMPLEX`, when it is set.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        validation_alias="TRIBUTARY_LLM_MAX_CONNECTIONS",
        description="Concurrent HTTP connections to the LLM endpoint per process; calls beyond "
        "it wait for a free one. Lower it if the endpoint limits concurrent requests.",
    )
    fallback_cooldown_s: float = Field(
        default=30.0,
        ge=0,
        validation_alias="TRIBUTARY_LLM_FALLBACK_COOLDOWN_S",
        description="Seconds a deployment whose tries ran out (in this process) goes to the "
        "end of the chains it is in, so that calls try the next deployment or the fallback "
        "model first; `0` keeps every chain in its configured order.",
    )
    fallback_model: str | None = Field(
        default=None,
        validation_alias="TRIBUTARY_FALLBACK_MODEL",
        description="Model that takes a call over, at its own deployments, when every "
        "deployment of the first model has had its tries or does not know it; unset: no "
        "fallback.",
    )
    deployments: dict[str, list[Deployment]] = Field(
        default_factory=dict,
        validation_alias="TRIBUTARY_LLM_DEPLOYMENTS",
        description="Where each model is served, as an ordered list of deployments per model "
        "name (the names the role, routing and fallback settings use), e.g. "
        '`{"gpt-4o-mini": [{"id": "azure-eu", "base_url": "https://eu.example.com/v1", '
        '"api_key": "...", "model": "gpt-4o-mini-eu"}, {"id": "openai", "api_key": "sk-..."}]}`. '
        "A call goes to the first deployment and moves down the list when one keeps failing "
        "(`TRIBUTARY_LLM_MAX_ATTEMPTS`) or has no headroom, then to the fallback model's. A "
        "model not named here is served by `TRIBUTARY_LLM_BASE_URL` with "
        "`TRIBUTARY_LLM_API_KEY`, in a deployment named after the model. It holds keys: give "
        "it as a file (`TRIBUTARY_LLM_DEPLOYMENTS_FILE`).",
    )
    patience_s: float = Field(
        default=3600.0,
        ge=0,
        le=7 * 24 * 3600,
        validation_alias="TRIBUTARY_LLM_PATIENCE_S",
        description="Seconds an LLM call keeps trying, from its first failure, while the "
        "deployments of its chain fail transiently: a try that would come later is not made "
        "and the call fails (`llm_unavailable`, `llm_rate_limited`, `llm_timeout`). The "
        "workflow's deadline ends the wait first when it comes sooner, and the workflow then "
        "fails with `deadline_exceeded`. `0`: no waiting; a failing deployment hands over to "
        "the next at once and the call fails with the last. Keep it below "
        "`TRIBUTARY_HANDLER_TIMEOUT_S`.",
    )
    handover_wait_s: float = Field(
        default=2.0,
        gt=0,
        validation_alias="TRIBUTARY_LLM_HANDOVER_WAIT_S",
        description="Seconds an LLM call waits for its turn at a deployment (its shared "
        "circuit breaker open, or its rate limit reached) while another deployment of its "
        "chain could take it; then that one does. With no other left, a call waits its turn "
        "as long as `TRIBUTARY_LLM_PATIENCE_S` and the workflow's deadline allow.",
    )
    wait_notice_interval_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias="TRIBUTARY_LLM_WAIT_NOTICE_INTERVAL_S",
        description="While an LLM call waits for its model, the workflow's events say so "
        "(`llm.waiting`) at its first pause and then at most once per this many seconds.",
    )

    @field_validator("deployments")
    @classmethod
    def _deployments_are_distinct(
        cls, value: dict[str, list[Deployment]]
    ) -> dict[str, list[Deployment]]:
        seen: set[str] = set()
        for model, deployments in value.items():
            if not deployments:
                raise ValueError(f"model {model!r} is given no deployment")
            for deployment in deployments:
                if deployment.id in seen:
                    raise ValueError(f"deployment id {deployment.id!r} is given twice")
                seen.add(deployment.id)
        return value

    @model_validator(mode="after")
    def _no_deployment_takes_a_default_ones_name(self) -> Self:
        # A model served by TRIBUTARY_LLM_BASE_URL has a deployment named after it:
        # a configured one of the same name would share its admission gate.
        served_by_default = set(self.routed_models()) - set(self.deployments)
        for model, deployments in self.deployments.items():
            for deployment in deployments:
                if deployment.id in served_by_default:
                    raise ValueError(
                        f"TRIBUTARY_LLM_DEPLOYMENTS: deployment id {deployment.id!r} (model "
                        f"{model!r}) is the name of a model served by TRIBUTARY_LLM_BASE_URL, "
                        "whose deployment goes by that name; choose another"
                    )
        return self

    def deployments_for(self, model: str) -> tuple[Deployment, ...]:
        """Where ``model`` is served, in the order calls try them, with the endpoint and
        key each inherits from ``TRIBUTARY_LLM_BASE_URL`` / ``TRIBUTARY_LLM_API_KEY``
        filled in. A model with none of its own is served by ``TRIBUTARY_LLM_BASE_URL``,
        in a deployment named after the model."""
        configured = self.deployments.get(model)
        if not configured:
            return (self.default_deployment(model),)
        return tuple(
            deployment.model_copy(
                update={
                    "base_url": deployment.base_url or self.base_url,
                    "api_key": deployment.api_key or self.api_key,
                }
            )
            for deployment in configured
        )

    def default_deployment(self, model: str) -> Deployment:
        """``model`` at ``TRIBUTARY_LLM_BASE_URL``: named after it (model names are not
        held to the pattern of configured ids)."""
        return Deployment.model_construct(
            id=model, base_url=self.base_url, api_key=self.api_key, model=None, rpm=None, tpm=None
        )

    def configured_deployments(self) -> tuple[Deployment, ...]:
        """Every deployment of ``TRIBUTARY_LLM_DEPLOYMENTS``, endpoint and key filled in."""
        return tuple(d for model in self.deployments for d in self.deployments_for(model))

    def routed_models(self) -> tuple[str, ...]:
        """Every model name these settings send calls to (roles, routing, fallback)."""
        names = (
            self.planner_model,
            self.agent_model,
            self.synthesizer_model,
            self.agent_model_simple,
            self.agent_model_complex,
            self.fallback_model,
        )
        return tuple(dict.fromkeys(name for name in names if name))

    def model_for(self, role: Literal["planner", "agent", "synthesizer"]) -> str:
        return {
            "planner": self.planner_model,
            "agent": self.agent_model,
            "synthesizer": self.synthesizer_model,
        }[role]


class DeploymentLimits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rpm: int | None = Field(
        default=None, ge=1, description="Requests per minute the deployment allows; unset: none."
    )
    tpm: int | None = Field(
        default=None,
        ge=1,
        description="Tokens per minute the deployment allows, counted as providers count them "
        "before a call (its estimated prompt plus its completion cap); unset: none.",
    )


class AdmissionSettings(TributarySettings):
    """How LLM calls are admitted to each deployment: limits, breaker and fair order.

    Every replica shares one gate per deployment in Redis, named by the
    deployment's id (``LLMSettings.deployments_for``: a model served by
    ``TRIBUTARY_LLM_BASE_URL`` goes by its name).
    """

    model_config = _PREFIXED

    llm_rate_limits: dict[str, DeploymentLimits] = Field(
        default_factory=dict,
        description="Per-minute limits of each LLM deployment by its id (a model served by "
        "`TRIBUTARY_LLM_BASE_URL` goes by its name), shared by every replica, e.g. "
        '`{"gpt-4o-mini": {"rpm": 500, "tpm": 200000}}`; a deployment\'s own `rpm` and `tpm` '
        "in `TRIBUTARY_LLM_DEPLOYMENTS` win. Limits the provider announces in its "
        "`x-ratelimit-limit-*` headers apply as well, and the lower of the two wins; a "
        "deployment without either goes unpaced.",
    )
    llm_rate_burst_s: float = Field(
        default=60.0,
        gt=0,
        le=60,
        description="Seconds' worth of a deployment's per-minute limits that may go out at "
        "once. 60 lets a whole minute's limit go in a burst, as a provider's token bucket "
        "does; lower it to spread calls evenly if the provider enforces its limits over "
        "shorter windows.",
    )
    llm_breaker_failures: int = Field(
        default=5,
        ge=0,
        description="Outages of a deployment in a row (connection failures, timeouts, 5xx), "
        "counted across every replica, that open its circuit breaker: nobody sends to it "
        "until a probe call succeeds. `0` never opens it.",
    )
    llm_breaker_cooldown_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds an open breaker waits before it lets one call through as a probe; "
        "a probe that fails starts another wait.",
    )
    llm_breaker_probe_lease_s: float = Field(
        default=90.0,
        gt=0,
        description="Seconds a probe call may take before another call probes instead (its "
        "replica may have died). Keep it above `TRIBUTARY_LLM_TIMEOUT_S`.",
    )
    llm_max_waiting: int = Field(
        default=1000,
        ge=1,
        description="LLM calls one process lets wait for their turn at once; one more is "
        "refused at once as a transient `llm_admission_queue_full`, and retried after a "
        "pause. Waiting calls hold no sending slot.",
    )
    llm_max_sending: int = Field(
        default=1000,
        ge=1,
        description="LLM calls one process sends at once, once admitted; the next admitted "
        "call waits for one to return.",
    )
    tenant_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Share of each tenant when LLM calls wait for their turn, e.g. "
        '`{"gold": 3}`: while both wait, a tenant of weight 3 gets three calls admitted for '
        "each one of a tenant of weight 1 (the default).",
    )

    @field_validator("tenant_weights")
    @classmethod
    def _positive_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        for tenant, weight in weights.items():
            if not 0 < weight <= 1000:
                raise ValueError(f"the weight of {tenant!r} must be above 0 and at most 1000")
        return weights


class WorkflowDefaults(TributarySettings):
    """Defaults a workflow's own options override."""

    model_config = _PREFIXED

    default_deadline_s: int = Field(
        default=3600,
        ge=1,
        description="Seconds a workflow may run when its request sets no `deadline_s`; past it "
        "the workflow fails with `deadline_exceeded`.",
    )
    input_timeout_s: int | None = Field(
        default=None,
        ge=1,
        description="Seconds an input request (an agent's `ask_human` question) stays open "
        "when the request sets no `input_timeout_s`; unset: until the workflow's deadline.",
    )
    on_input_timeout: str = Field(
        default="fail",
        min_length=1,
        description="What an expired input request gets when the request sets no "
        "`on_input_timeout`: `fail` fails its step with `input_timeout`; any other text is "
        "the answer given in its place.",
    )


class ModelPrice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_per_1k_usd: float = Field(
        ge=0, description="US dollars per 1,000 prompt (input) tokens."
    )
    completion_per_1k_usd: float = Field(
        ge=0, description="US dollars per 1,000 completion (output) tokens."
    )


class BudgetSettings(TributarySettings):
    """Defaults for per-workflow budgets; a workflow's options override them."""

    model_config = _PREFIXED

    default_token_budget: int | None = Field(
        default=200_000,
        ge=1,
        description="Tokens (prompt and completion) one workflow may use when its request sets "
        "no `token_budget`.",
    )
    on_budget_exhausted: Literal["partial", "fail"] = Field(
        default="partial",
        description="When a workflow's budget runs out: `partial` answers from the steps that "
        "finished (marked partial), `fail` fails the workflow. A request's "
        "`on_budget_exhausted` overrides it.",
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Price of each model, for cost budgets (`cost_budget_usd`), e.g. "
        '`{"gpt-4o-mini": {"prompt_per_1k_usd": 0.15, "completion_per_1k_usd": 0.6}}`. '
        "The model name an endpoint answers with finds its price as written, else without a "
        "date suffix (`gpt-4o-mini-2024-07-18` → `gpt-4o-mini`), else by the longest name it "
        "begins with; a call served by a model with no price is charged at the dearest price "
        "of the models it could have gone to (what was reserved for it). Price every model you "
        "route to when you use cost budgets: calls that no price covers cost nothing.",
    )
    budget_hold_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds an LLM call's reservation holds budget at most. A hold its call "
        "never settled (the process died mid-call) stops counting after it; a call that "
        "outlives its hold is still charged in full, but for the rest of it parallel calls no "
        "longer see its worst case. It is also the longest a call waits while only other "
        "calls' reservations stand in its way. Keep it above the longest one LLM call takes "
        "while its endpoint answers (`TRIBUTARY_LLM_TIMEOUT_S` x `TRIBUTARY_LLM_MAX_ATTEMPTS`, "
        "plus backoff); a call waiting out an outage (`TRIBUTARY_LLM_PATIENCE_S`) may outlive "
        "it.",
    )


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Instantiate ``cls`` from the environment or exit naming the bad variables.

    Values are never quoted: the variable may hold a secret.
    """
    prefix = cls.model_config.get("env_prefix", "")
    try:
        return cls()
    except FileVariableError as exc:
        raise ConfigurationError(f"invalid configuration: {exc}") from None
    except SettingsError as exc:
        # A JSON setting that does not parse; name its variable, never its value.
        field = re.search(r'field "(\w+)"', str(exc))
        name = _variable(cls, field.group(1)) if field else cls.__name__
        raise ConfigurationError(f"invalid configuration: {name}: not valid JSON") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False):
            if not err["loc"]:  # a rule between several variables names them in its message
                problems.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            first, *rest = (str(p) for p in err["loc"])
            where = ".".join([f"{prefix}{first.upper()}", *rest])
            problems.append(f"{where}: {err['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


def _variable(cls: type[BaseSettings], field: str) -> str:
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    return f"{cls.model_config.get('env_prefix', '')}{field}".upper()
