"""How the services and the stack's own clients reach its Kafka and Redis (TLS, passwords).

The stack owns these connections: the variables it sets for a service replace
any the caller's environment holds (``infra_env``), and its own admin and
readiness clients connect the same way (``kafka_client_security``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tributary_devstack.config import StackConfig
from tributary_shared.runtime.kafka.security import PLAINTEXT, KafkaSecurity, tls_context

__all__ = [
    "OWNED_PREFIXES",
    "infra_env",
    "kafka_client_security",
    "redis_client_options",
    "without_owned",
]

#: Service variables about the connections, which only the stack sets for its services.
OWNED_PREFIXES = (
    "TRIBUTARY_KAFKA_SECURITY_",
    "TRIBUTARY_KAFKA_SASL_",
    "TRIBUTARY_KAFKA_SSL_",
    "TRIBUTARY_REDIS_USERNAME",
    "TRIBUTARY_REDIS_PASSWORD",
    "TRIBUTARY_REDIS_SSL_",
    "TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS_FILE",
    "TRIBUTARY_REDIS_URL_FILE",
    # The stack's own password is no business of the services.
    "TRIBUTARY_INFRA_PASSWORD",
)


def without_owned(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the connection variables the stack sets itself."""
    return {k: v for k, v in environ.items() if not k.upper().startswith(OWNED_PREFIXES)}


def infra_env(config: StackConfig) -> dict[str, str]:
    """Security variables of a service (the addresses are set beside them).

    The password goes by file (``..._PASSWORD_FILE``, written by the stack) as a
    Kubernetes deployment gives it.
    """
    env: dict[str, str] = {"TRIBUTARY_KAFKA_SECURITY_PROTOCOL": config.kafka_security_protocol}
    if config.uses_passwords:
        password_file = str(config.infra_password_path)
        env["TRIBUTARY_KAFKA_SASL_MECHANISM"] = config.infra_sasl_mechanism
        env["TRIBUTARY_KAFKA_SASL_USERNAME"] = config.infra_username
        env["TRIBUTARY_KAFKA_SASL_PASSWORD_FILE"] = password_file
        env["TRIBUTARY_REDIS_USERNAME"] = config.infra_username
        env["TRIBUTARY_REDIS_PASSWORD_FILE"] = password_file
    if config.tls_ca_path is not None:
        env["TRIBUTARY_KAFKA_SSL_CA_PATH"] = str(config.tls_ca_path)
        env["TRIBUTARY_REDIS_SSL_CA_PATH"] = str(config.tls_ca_path)
    return env


def kafka_client_security(config: StackConfig) -> KafkaSecurity:
    """How the stack's own admin and readiness clients connect to its broker."""
    protocol = config.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return PLAINTEXT
    return KafkaSecurity(
        protocol=protocol,
        sasl_mechanism=config.infra_sasl_mechanism if config.uses_passwords else None,
        username=config.infra_username if config.uses_passwords else None,
        password=config.infra_password,
        ssl_context=tls_context(ca_path=config.tls_ca_path) if config.uses_tls else None,
    )


def redis_client_options(config: StackConfig) -> dict[str, Any]:
    """Keyword arguments, beside ``config.redis_url``, of the stack's own Redis clients."""
    options: dict[str, Any] = {}
    if config.infra_password is not None:
        options["username"] = config.infra_username
        options["password"] = config.infra_password.get_secret_value()
    if config.tls_ca_path is not None:
        options["ssl_ca_certs"] = str(config.tls_ca_path)
        options["ssl_cert_reqs"] = "required"
    return options
