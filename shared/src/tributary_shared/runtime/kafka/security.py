"""How every Kafka client authenticates and protects its connection, from one place.

``kafka_security`` is the only function that turns ``KafkaSettings`` into
connection security; every client the code base builds takes the result:
aiokafka's consumers, producers and admin clients through
``KafkaSecurity.client_kwargs()``, FastStream's ``KafkaBroker`` through
``KafkaSecurity.broker_security()`` (which FastStream turns back into the
same aiokafka arguments). A unit test holds every client constructor of the
code base to that, so a new client cannot quietly connect in plaintext.

One TLS context is built per process and shared by its clients: reading the
certificate files once, and failing at start when they are unusable.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import SecretStr

from tributary_shared.runtime.settings import (
    ConfigurationError,
    KafkaSaslMechanism,
    KafkaSecurityProtocol,
    KafkaSettings,
)

__all__ = ["PLAINTEXT", "KafkaSecurity", "kafka_security", "tls_context"]

_FASTSTREAM_SASL: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "PLAIN": SASLPlaintext,
    "SCRAM-SHA-256": SASLScram256,
    "SCRAM-SHA-512": SASLScram512,
}


@dataclass(frozen=True)
class KafkaSecurity:
    """The security side of a Kafka connection; the bootstrap servers are given apart."""

    protocol: KafkaSecurityProtocol = "PLAINTEXT"
    sasl_mechanism: KafkaSaslMechanism | None = None
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        sasl = self.protocol.startswith("SASL_")
        if sasl and (self.sasl_mechanism is None or self.username is None or not self.password):
            raise ValueError(f"{self.protocol} needs a SASL mechanism, a username and a password")
        if not sasl and (self.sasl_mechanism, self.username, self.password) != (None,) * 3:
            raise ValueError(f"{self.protocol} takes no SASL credentials")
        if self.uses_tls != (self.ssl_context is not None):
            raise ValueError(f"{self.protocol} needs a TLS context exactly when it uses TLS")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaConsumer``, ``AIOKafkaProducer`` and
        ``AIOKafkaAdminClient``."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        if self.sasl_mechanism is not None:
            assert self.password is not None  # checked in __post_init__
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password.get_secret_value()
        return kwargs

    def broker_security(self) -> BaseSecurity | None:
        """The ``security`` argument of FastStream's ``KafkaBroker``."""
        if self.sasl_mechanism is not None:
            assert self.username is not None
            assert self.password is not None
            return _FASTSTREAM_SASL[self.sasl_mechanism](
                self.username,
                self.password.get_secret_value(),
                ssl_context=self.ssl_context,
                use_ssl=self.uses_tls,
            )
        if self.ssl_context is not None:
            return BaseSecurity(ssl_context=self.ssl_context, use_ssl=True)
        return None


PLAINTEXT = KafkaSecurity()
"""No TLS, no authentication: a broker on a trusted network (the local stack's, tests')."""


def tls_context(
    *,
    ca_path: Path | None = None,
    cert_path: Path | None = None,
    key_path: Path | None = None,
    key_password: SecretStr | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client TLS context that verifies the server's certificate against ``ca_path``
    (or the system's authorities), and presents a client certificate when one is given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_path)
    context.check_hostname = check_hostname
    if cert_path is not None:
        context.load_cert_chain(
            cert_path,
            key_path,
            password=key_password.get_secret_value() if key_password is not None else None,
        )
    return context


def kafka_security(settings: KafkaSettings) -> KafkaSecurity:
    """The connection security ``settings`` describe, for every Kafka client of a process."""
    context = None
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        try:
            context = tls_context(
                ca_path=settings.kafka_ssl_ca_path,
                cert_path=settings.kafka_ssl_cert_path,
                key_path=settings.kafka_ssl_key_path,
                key_password=settings.kafka_ssl_key_password,
                check_hostname=settings.kafka_ssl_check_hostname,
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigurationError(
                "invalid configuration: TRIBUTARY_KAFKA_SSL_CA_PATH, _CERT_PATH, _KEY_PATH "
                f"or _KEY_PASSWORD: the certificate files cannot be used ({exc})"
            ) from None
    return KafkaSecurity(
        protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password,
        ssl_context=context,
    )
