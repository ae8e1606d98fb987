"""Settings of the local stack, read once from the environment and passed down.

Every knob has a default that works on a developer machine; tests build a
``StackConfig`` with explicit keyword arguments (which win over the environment)
so they never collide with a stack a developer is running on the default ports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Pinned in tools/devstack/kafka/pom.xml as well; 4.1.x resolves cleanly from Maven Central.
DEFAULT_KAFKA_VERSION = "4.1.1"
# The infrastructure's user and password end up inside JAAS strings, Kafka's
# `--add-scram` arguments and a Redis ACL line; characters outside these need
# quoting rules that differ between the three, so they are refused instead.
_CREDENTIAL = r"^[A-Za-z0-9._~+-]+$"


def find_repo_root(start: Path | None = None) -> Path:
    """Return the workspace root (the directory holding ``tools/devstack``).

    Relative run and cache directories are resolved against it so that running
    the CLI from a sub-directory does not scatter ``.run`` directories around.
    Falls back to the current directory when the package is used outside the repo.
    """
    here = (start or Path(__file__)).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "tools" / "devstack" / "kafka" / "pom.xml").is_file():
            return candidate
    return Path.cwd()


class StackConfig(BaseSettings):
    """Ports, directories and versions of one local stack.

    Environment variables carry the ``TRIBUTARY_`` prefix (``TRIBUTARY_KAFKA_PORT``
    and so on); the LLM endpoint also honours ``OPENAI_BASE_URL``.
    """

    model_config = SettingsConfigDict(
        env_prefix="TRIBUTARY_", extra="ignore", frozen=True, populate_by_name=True
    )

    repo_root: Path = Field(
        default_factory=find_repo_root,
        description="Workspace root; relative run and cache directories are resolved against "
        "it. Found from the installed package; set it to run the stack of another checkout.",
    )
    run_dir: Path = Field(
        default=Path(".run"),
        description="Logs, pid files and the data of Kafka and Redis. Give a second stack its "
        "own (and its own ports) to run it beside the first.",
    )
    cache_dir: Path = Field(
        default=Path(".cache"),
        description="Downloaded Kafka jars, shared by every run directory.",
    )

    kafka_version: str = Field(
        default=DEFAULT_KAFKA_VERSION, description="Kafka version fetched with Maven."
    )
    kafka_port: int = Field(
        default=9092,
        ge=1,
        le=65535,
        description="Port of the Kafka broker; the services get `127.0.0.1:<port>`.",
    )
    kafka_controller_port: int = Field(
        default=9093, ge=1, le=65535, description="Port of the broker's KRaft controller listener."
    )
    # Off on purpose: topics are created with explicit partition counts.
    kafka_auto_create_topics: bool = Field(
        default=False,
        description="Let the broker create unknown topics. Off, so that a mistyped topic name "
        "fails instead of getting one partition.",
    )
    redis_port: int = Field(
        default=6379,
        ge=1,
        le=65535,
        description="Port of the Redis server; the services get `redis://127.0.0.1:<port>/0`.",
    )

    gateway_port: int = Field(
        default=8000, ge=1, le=65535, description="HTTP port of the gateway's first replica."
    )
    gateway_metrics_http_port: int = Field(
        default=8190,
        ge=1,
        le=65535,
        description="Port of the gateway's first replica's metrics server (`/metrics`), apart "
        "from its API port.",
    )
    planner_port: int = Field(
        default=8101, ge=1, le=65535, description="HTTP port of the planner's first replica."
    )
    agent_runner_port: int = Field(
        default=8102, ge=1, le=65535, description="HTTP port of the agent-runner's first replica."
    )
    synthesizer_port: int = Field(
        default=8103, ge=1, le=65535, description="HTTP port of the synthesizer's first replica."
    )
    scripted_llm_port: int = Field(
        default=8199,
        ge=1,
        le=65535,
        description="Port of the bundled scripted LLM server, started when no LLM endpoint is "
        "configured.",
    )

    # A stride of 1 would put planner-1 on agent-runner-0's port with the default
    # ports, so replicas step by 100, which keeps every default base port collision-free.
    replica_port_stride: int = Field(
        default=100,
        ge=1,
        description="Replica `i` of a service listens on its first replica's port + `i * stride`.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Processes per service started by `make up` (`REPLICAS=N` or `--replicas` "
        "win over it).",
    )

    # OPENAI_BASE_URL is accepted because users of the openai SDK already have it exported.
    llm_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TRIBUTARY_LLM_BASE_URL", "OPENAI_BASE_URL"),
        description="OpenAI-compatible endpoint for the services; unset starts the bundled "
        "scripted LLM.",
    )

    tls_cert_path: Path | None = Field(
        default=None,
        description="PEM certificate (then its chain) Kafka and Redis present, naming "
        "`127.0.0.1`. Set with `TRIBUTARY_TLS_KEY_PATH` and `TRIBUTARY_TLS_CA_PATH`, Kafka's "
        "client listener speaks TLS and Redis listens with TLS only; unset: plaintext.",
    )
    tls_key_path: Path | None = Field(
        default=None,
        description="Unencrypted PEM (PKCS#8) private key of `TRIBUTARY_TLS_CERT_PATH`.",
    )
    tls_ca_path: Path | None = Field(
        default=None,
        description="PEM certificate of the authority that signed `TRIBUTARY_TLS_CERT_PATH`; "
        "the services and the stack's own clients trust it.",
    )
    infra_username: str = Field(
        default="tributary",
        pattern=_CREDENTIAL,
        description="User Kafka (SASL) and Redis (ACL) require when `TRIBUTARY_INFRA_PASSWORD` "
        "is set.",
    )
    infra_password: SecretStr | None = Field(
        default=None,
        description="Set: Kafka requires SASL (`PLAIN`, `SCRAM-SHA-256` and `SCRAM-SHA-512` "
        "are all enabled) and Redis the user `TRIBUTARY_INFRA_USERNAME`, both with this "
        "password (letters, digits and `._~+-`); the services read it from a file under the "
        "run dir. Kafka's SCRAM credentials are written when its storage is formatted, so "
        "change it only with a fresh run dir. Unset: no authentication.",
    )
    infra_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512",
        description="SASL mechanism the services use when `TRIBUTARY_INFRA_PASSWORD` is set.",
    )

    java: str = Field(default="java", description="Java executable that runs Kafka.")
    mvn: str = Field(default="mvn", description="Maven executable that fetches the Kafka jars.")
    redis_server: str = Field(default="redis-server", description="`redis-server` executable.")

    startup_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds each component may take to become ready before `make up` gives up.",
    )
    stop_grace_s: float = Field(
        default=15.0,
        gt=0,
        description="Seconds a process may take to stop after SIGTERM before it is killed.",
    )

    @field_validator("llm_base_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @field_validator("infra_password")
    @classmethod
    def _plain_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(_CREDENTIAL, value.get_secret_value()):
            # The message must not quote the password.
            raise ValueError("use only letters, digits and ._~+- in the password")
        return value

    @model_validator(mode="after")
    def _tls_files_together(self) -> StackConfig:
        paths = (self.tls_cert_path, self.tls_key_path, self.tls_ca_path)
        if any(path is not None for path in paths) and None in paths:
            raise ValueError(
                "set TRIBUTARY_TLS_CERT_PATH, TRIBUTARY_TLS_KEY_PATH and TRIBUTARY_TLS_CA_PATH "
                "together, or none of them"
            )
        return self

    @model_validator(mode="after")
    def _absolute_dirs(self) -> StackConfig:
        # Frozen model: bypass __setattr__ to normalise the paths once.
        root = self.repo_root.resolve()
        object.__setattr__(self, "repo_root", root)
        for name in ("run_dir", "cache_dir", "tls_cert_path", "tls_key_path", "tls_ca_path"):
            value: Path | None = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, (root / value.expanduser()).resolve())
        return self

    # Derived locations. Kept here so every module agrees on the layout.

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def kafka_dir(self) -> Path:
        """Run-time state of the broker: rendered config and its data directory."""
        return self.run_dir / "kafka"

    @property
    def kafka_data_dir(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def redis_dir(self) -> Path:
        return self.run_dir / "redis"

    @property
    def admin_key_file(self) -> Path:
        """The local admin API key ``up`` issued (readable by its owner only)."""
        return self.run_dir / "admin.key"

    @property
    def kafka_home(self) -> Path:
        """Cached jars of one Kafka version; shared by every run directory."""
        return self.cache_dir / f"kafka-{self.kafka_version}"

    @property
    def kafka_libs_dir(self) -> Path:
        return self.kafka_home / "libs"

    @property
    def kafka_pom(self) -> Path:
        return self.repo_root / "tools" / "devstack" / "kafka" / "pom.xml"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def uses_tls(self) -> bool:
        return self.tls_cert_path is not None

    @property
    def uses_passwords(self) -> bool:
        return self.infra_password is not None

    @property
    def kafka_security_protocol(self) -> Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]:
        """The protocol of the broker's one client listener (and the services' setting)."""
        if self.uses_passwords:
            return "SASL_SSL" if self.uses_tls else "SASL_PLAINTEXT"
        return "SSL" if self.uses_tls else "PLAINTEXT"

    @property
    def kafka_keystore_path(self) -> Path:
        """Key and certificate chain in one PEM file, as Kafka's PEM keystore reads them."""
        return self.kafka_dir / "keystore.pem"

    @property
    def redis_acl_path(self) -> Path:
        return self.redis_dir / "users.acl"

    @property
    def infra_password_path(self) -> Path:
        """The password as a file, which the services read (``..._PASSWORD_FILE``)."""
        return self.run_dir / "secrets" / "infra-password"

    @property
    def redis_url(self) -> str:
        scheme = "rediss" if self.uses_tls else "redis"
        return f"{scheme}://127.0.0.1:{self.redis_port}/0"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def gateway_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_metrics_http_port}/metrics"

    @property
    def scripted_llm_url(self) -> str:
        return f"http://127.0.0.1:{self.scripted_llm_port}/v1"
