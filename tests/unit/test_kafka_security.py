"""Kafka TLS and SASL: the settings, the one function that turns them into each client's
arguments, and every Kafka client of the code base going through it."""

from __future__ import annotations

import ast
import os
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from tests.support.tls import TestAuthority
from tests.unit.test_deploy_settings import REPO, worker_spec
from tributary_shared.runtime.kafka.consumer import ConsumerConfig, EventConsumer, kafka_client
from tributary_shared.runtime.kafka.security import (
    PLAINTEXT,
    KafkaSecurity,
    kafka_security,
)
from tributary_shared.runtime.settings import ConfigurationError, KafkaSettings, load_settings

PASSWORD = "kafka-pass-not-logged"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("TRIBUTARY_", "OPENAI_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    return TestAuthority(tmp_path_factory.mktemp("tls"))


def sasl_ssl_env(authority: TestAuthority, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {
        "TRIBUTARY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TRIBUTARY_KAFKA_SASL_MECHANISM": mechanism,
        "TRIBUTARY_KAFKA_SASL_USERNAME": "svc",
        "TRIBUTARY_KAFKA_SASL_PASSWORD": PASSWORD,
        "TRIBUTARY_KAFKA_SSL_CA_PATH": str(authority.ca_file),
    }


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(KafkaSettings)


# --- settings ----------------------------------------------------------------------------


def test_plaintext_is_the_default_and_needs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    security = kafka_security(settings_from({}, monkeypatch))
    assert security == PLAINTEXT
    assert security.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert security.broker_security() is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TRIBUTARY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "TRIBUTARY_KAFKA_SASL_MECHANISM"),
        (
            {
                "TRIBUTARY_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "TRIBUTARY_KAFKA_SASL_MECHANISM": "PLAIN",
                "TRIBUTARY_KAFKA_SASL_USERNAME": "svc",
            },
            "TRIBUTARY_KAFKA_SASL_PASSWORD",
        ),
        ({"TRIBUTARY_KAFKA_SASL_USERNAME": "svc"}, "uses no SASL"),
        (
            {"TRIBUTARY_KAFKA_SECURITY_PROTOCOL": "SSL", "TRIBUTARY_KAFKA_SASL_PASSWORD": "x"},
            "SASL",
        ),
        ({"TRIBUTARY_KAFKA_SECURITY_PROTOCOL": "TLS"}, "TRIBUTARY_KAFKA_SECURITY_PROTOCOL"),
        ({"TRIBUTARY_KAFKA_SASL_MECHANISM": "GSSAPI"}, "TRIBUTARY_KAFKA_SASL_MECHANISM"),
        ({"TRIBUTARY_KAFKA_SSL_CA_PATH": "/nonexistent/ca.pem"}, "TRIBUTARY_KAFKA_SSL_CA_PATH"),
    ],
)
def test_an_inconsistent_security_setup_stops_the_service_naming_the_variables(
    env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match=named) as caught:
        settings_from(env, monkeypatch)
    assert PASSWORD not in str(caught.value)


def test_tls_files_without_tls_are_refused(
    authority: TestAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"TRIBUTARY_KAFKA_SSL_CA_PATH": str(authority.ca_file)}
    with pytest.raises(ConfigurationError, match="PLAINTEXT uses no TLS"):
        settings_from(env, monkeypatch)


def test_a_key_without_its_certificate_is_refused(
    authority: TestAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = authority.issue("lonely-key", client=True)
    env = {
        "TRIBUTARY_KAFKA_SECURITY_PROTOCOL": "SSL",
        "TRIBUTARY_KAFKA_SSL_KEY_PATH": str(client.key),
    }
    with pytest.raises(ConfigurationError, match="without TRIBUTARY_KAFKA_SSL_CERT_PATH"):
        settings_from(env, monkeypatch)


def test_unusable_certificate_files_stop_the_service_naming_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    env = {"TRIBUTARY_KAFKA_SECURITY_PROTOCOL": "SSL", "TRIBUTARY_KAFKA_SSL_CA_PATH": str(garbage)}
    with pytest.raises(ConfigurationError, match="TRIBUTARY_KAFKA_SSL_CA_PATH"):
        kafka_security(settings_from(env, monkeypatch))


def test_the_password_never_shows_in_the_settings_or_the_security(
    authority: TestAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(sasl_ssl_env(authority), monkeypatch)
    security = kafka_security(settings)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in repr(security)


# --- the one function ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mechanism", "faststream_type"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_sasl_ssl_gives_aiokafka_and_faststream_the_same_connection(
    mechanism: str,
    faststream_type: type[BaseSecurity],
    authority: TestAuthority,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    security = kafka_security(settings_from(sasl_ssl_env(authority, mechanism), monkeypatch))
    kwargs = security.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == mechanism
    assert kwargs["sasl_plain_username"] == "svc"
    assert kwargs["sasl_plain_password"] == PASSWORD
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    broker_security = security.broker_security()
    assert type(broker_security) is faststream_type
    # What FastStream hands aiokafka for its producer and consumers is what our own
    # aiokafka clients get.
    assert parse_security(broker_security) == kwargs


def test_tls_alone_and_a_client_certificate(
    authority: TestAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = authority.issue("svc-client", client=True)
    env = {
        "TRIBUTARY_KAFKA_SECURITY_PROTOCOL": "SSL",
        "TRIBUTARY_KAFKA_SSL_CA_PATH": str(authority.ca_file),
        "TRIBUTARY_KAFKA_SSL_CERT_PATH": str(client.cert),
        "TRIBUTARY_KAFKA_SSL_KEY_PATH": str(client.key),
        "TRIBUTARY_KAFKA_SSL_CHECK_HOSTNAME": "false",
    }
    security = kafka_security(settings_from(env, monkeypatch))
    kwargs = security.client_kwargs()
    assert set(kwargs) == {"security_protocol", "ssl_context"}
    assert kwargs["security_protocol"] == "SSL"
    assert kwargs["ssl_context"].check_hostname is False
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    broker_security = security.broker_security()
    assert type(broker_security) is BaseSecurity
    assert parse_security(broker_security) == kwargs


def test_security_built_by_hand_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="needs a SASL mechanism"):
        KafkaSecurity(protocol="SASL_PLAINTEXT")
    with pytest.raises(ValueError, match="TLS context"):
        KafkaSecurity(protocol="SSL")
    with pytest.raises(ValueError, match="takes no SASL"):
        KafkaSecurity(username="svc")


# --- every client goes through it -----------------------------------------------------------

#: aiokafka's clients: each call must spread ``<security>.client_kwargs()`` into its arguments.
AIOKAFKA_CLIENTS = frozenset(
    {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient", "AIOKafkaClient"}
)
#: FastStream's broker: each call must pass ``security=<security>.broker_security()``.
FASTSTREAM_BROKERS = frozenset({"KafkaBroker"})
#: The code base's own ways to a Kafka client: each call must pass ``security=`` (their
#: default, plaintext, is for tests).
WRAPPERS = frozenset(
    {
        "make_broker",
        "ConsumerConfig",
        "read_letters",
        "fetch_letter",
        "redrive",
        "broker_ready",
        "broker_ready_async",
        "describe_partitions",
        "describe_partitions_async",
        "ensure_topics",
        "ensure_topics_async",
    }
)


def production_files() -> list[Path]:
    roots = [REPO / "shared" / "src", REPO / "shared" / "devtools" / "src", REPO / "cli" / "src"]
    roots += sorted((REPO / "services").glob("*/src")) + sorted((REPO / "tools").glob("*/src"))
    return sorted(path for root in roots for path in root.rglob("*.py"))


def called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def is_method_call(node: ast.expr | None, method: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
        and not node.args
        and not node.keywords
    )


def is_own_method(call: ast.Call) -> bool:
    """``self.ensure_topics()``: a class's method of a wrapper's name (``Stack``'s), which
    hands its own security down itself."""
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and (func.value.id == "self")
    )


def annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside a type annotation (a type named there builds nothing)."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        elif isinstance(node, ast.Subscript):  # Callable[[...], AIOKafkaConsumer] and the like
            roots.append(node)
    return {id(inner) for root in roots for inner in ast.walk(root)}


def kafka_client_problems(path: Path) -> Iterator[tuple[str, str]]:
    """(kind, "file:line what") for every call that bypasses the security, and for every use
    of a client class other than calling it or naming it in a type."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(REPO)
    typed = annotation_nodes(tree)
    called: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = called_name(node)
        at = f"{where}:{node.lineno} {name}(...)"
        if name in AIOKAFKA_CLIENTS:
            called.add(id(node.func))
            spread = [kw.value for kw in node.keywords if kw.arg is None]
            ok = any(is_method_call(value, "client_kwargs") for value in spread)
            yield (
                ("aiokafka", at)
                if ok
                else ("problem", f"{at} without **<security>.client_kwargs()")
            )
        elif name in FASTSTREAM_BROKERS:
            called.add(id(node.func))
            given = {kw.arg: kw.value for kw in node.keywords}
            ok = is_method_call(given.get("security"), "broker_security")
            yield (
                ("broker", at)
                if ok
                else ("problem", f"{at} without security=<s>.broker_security()")
            )
        elif name in WRAPPERS and not is_own_method(node):
            ok = any(kw.arg == "security" for kw in node.keywords)
            yield ("wrapper", at) if ok else ("problem", f"{at} without security=")
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else None
        name = node.attr if isinstance(node, ast.Attribute) else name
        if name in AIOKAFKA_CLIENTS | FASTSTREAM_BROKERS and id(node) not in called | typed:
            yield ("problem", f"{where}:{getattr(node, 'lineno', '?')} {name} used unchecked")


def all_problems() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in production_files():
        for kind, text in kafka_client_problems(path):
            found.setdefault(kind, []).append(text)
    return found


def test_every_kafka_client_of_the_code_base_takes_the_configured_security() -> None:
    found = all_problems()
    assert not found.get("problem"), "\n".join(found["problem"])
    # Not vacuous: the consumer runtime, the dead-letter tool's three clients, the local
    # stack's admin client; the services' producer; and the calls that hand security down.
    assert len(found["aiokafka"]) >= 5, found["aiokafka"]
    assert len(found["broker"]) >= 1, found["broker"]
    callers = " ".join(found["wrapper"])
    for place in ("worker.py", "gateway/app.py", "admin/__main__.py", "devstack/stack.py"):
        assert place in callers, place


def test_the_check_catches_a_client_built_without_the_security(tmp_path: Path) -> None:
    """The check itself can fail: plaintext clients written the usual ways are caught."""
    sample = REPO / "shared" / "src" / "unchecked_sample.py"
    bad = (
        "from aiokafka import AIOKafkaProducer\n"
        "from faststream.kafka import KafkaBroker\n"
        "p = AIOKafkaProducer(bootstrap_servers='b:1')\n"
        "q = AIOKafkaProducer(bootstrap_servers='b:1', **other_kwargs())\n"
        "b = KafkaBroker('b:1')\n"
        "c = make_broker('b:1', client_id='x')\n"
        "factory = AIOKafkaProducer\n"
    )
    with mock.patch.object(Path, "read_text", return_value=bad):
        problems = [text for kind, text in kafka_client_problems(sample) if kind == "problem"]
    assert len(problems) == 5, problems


# --- the services take it from the settings ------------------------------------------------


async def test_a_worker_connects_its_producer_and_its_consumer_with_the_settings(
    authority: TestAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tributary_shared.runtime import worker

    for name, value in sasl_ssl_env(authority).items():
        monkeypatch.setenv(name, value)
    configs: list[ConsumerConfig] = []
    real_consumer = EventConsumer

    def recording(config: ConsumerConfig, **kwargs: Any) -> Any:
        configs.append(config)
        return real_consumer(config, **kwargs)

    spec = replace(worker_spec("planner"), build=lambda resources: mock.AsyncMock())
    with (
        mock.patch.object(worker, "EventConsumer", recording),
        mock.patch.object(worker, "configure_logging"),
    ):
        app, _http = worker.build_app(spec)

    # FastStream keeps the producer's connection arguments until it connects.
    producer_kwargs = app.broker._connection_kwargs  # type: ignore[union-attr]
    assert producer_kwargs["security_protocol"] == "SASL_SSL"
    assert producer_kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert producer_kwargs["sasl_plain_password"] == PASSWORD
    assert isinstance(producer_kwargs["ssl_context"], ssl.SSLContext)

    # The planner's own consumer, and that of each service it hosts (the callbacks').
    assert [config.group_id for config in configs] == [
        spec.group_id,
        *(hosted.group_id for hosted in spec.hosts),
    ]
    for config in configs:
        consumer = kafka_client(config)
        try:
            assert isinstance(consumer, AIOKafkaConsumer)
            client = consumer._client
            assert client._security_protocol == "SASL_SSL"
            assert client._sasl_mechanism == "SCRAM-SHA-512"
            assert client._sasl_plain_username == "svc"
            assert client._ssl_context is producer_kwargs["ssl_context"]  # one per process
        finally:
            await consumer.stop()
