"""The local stack with TLS and passwords: Kafka's listener, Redis's port and users, and
how the services and the stack's own clients are wired to them."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from tests.support.tls import TestAuthority
from tributary_devstack import kafka_broker, procs
from tributary_devstack.config import StackConfig
from tributary_devstack.infra import kafka_client_security
from tributary_devstack.kafka_config import server_properties, storage_format_command
from tributary_devstack.llm import llm_env, resolve_llm
from tributary_devstack.redis_config import redis_acl, redis_command
from tributary_devstack.services import service_env
from tributary_shared.runtime.kafka.security import PLAINTEXT

PASSWORD = "stack-pass.123"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRIBUTARY_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    return TestAuthority(tmp_path_factory.mktemp("tls"))


def secured(
    tmp_path: Path, authority: TestAuthority, *, tls: bool = True, password: bool = True
) -> StackConfig:
    server = authority.issue("server")
    return StackConfig(
        run_dir=tmp_path / "run",
        kafka_port=29092,
        kafka_controller_port=29093,
        redis_port=26379,
        tls_cert_path=server.cert if tls else None,
        tls_key_path=server.key if tls else None,
        tls_ca_path=authority.ca_file if tls else None,
        infra_password=SecretStr(PASSWORD) if password else None,
    )


def env_of(config: StackConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    return service_env(
        config,
        port=1,
        instance="planner-0",
        llm=llm_env(resolve_llm(config)),
        environ=environ or {},
    )


def test_the_default_stack_stays_plaintext_and_passwordless(tmp_path: Path) -> None:
    config = StackConfig(run_dir=tmp_path)
    props = server_properties(config)
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert not [key for key in props if "sasl" in key or key.startswith("ssl.")]
    assert "--add-scram" not in storage_format_command(config, "x")
    command = redis_command(config)
    assert "--tls-port" not in command
    assert "--aclfile" not in command
    assert kafka_client_security(config) == PLAINTEXT
    env = env_of(config)
    assert env["TRIBUTARY_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert env["TRIBUTARY_REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert not [name for name in env if "SASL" in name or "SSL" in name or "PASSWORD" in name]


def test_a_secured_broker_has_one_sasl_ssl_listener_with_every_mechanism(
    tmp_path: Path, authority: TestAuthority
) -> None:
    config = secured(tmp_path, authority)
    props = server_properties(config)
    assert props["listeners"] == "SASL_SSL://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:29092"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    plain = props["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    assert f'user_tributary="{PASSWORD}"' in plain
    for mechanism in ("scram-sha-256", "scram-sha-512"):
        assert "ScramLoginModule" in props[f"listener.name.sasl_ssl.{mechanism}.sasl.jaas.config"]
    assert props["ssl.keystore.type"] == "PEM"
    assert props["ssl.keystore.location"] == str(config.kafka_keystore_path)
    assert props["ssl.truststore.location"] == str(authority.ca_file)
    # SCRAM users live in the cluster metadata, written by the storage format.
    command = storage_format_command(config, "cluster-id")
    scram = [command[i + 1] for i, arg in enumerate(command) if arg == "--add-scram"]
    assert scram == [
        f"SCRAM-SHA-256=[name=tributary,password={PASSWORD}]",
        f"SCRAM-SHA-512=[name=tributary,password={PASSWORD}]",
    ]


@pytest.mark.parametrize(
    ("tls", "password", "protocol"),
    [(True, False, "SSL"), (False, True, "SASL_PLAINTEXT"), (True, True, "SASL_SSL")],
)
def test_tls_and_passwords_combine_into_the_protocol(
    tmp_path: Path, authority: TestAuthority, tls: bool, password: bool, protocol: str
) -> None:
    config = secured(tmp_path, authority, tls=tls, password=password)
    assert config.kafka_security_protocol == protocol
    security = kafka_client_security(config)
    assert security.protocol == protocol
    assert (security.ssl_context is not None) == tls
    assert (security.sasl_mechanism == "SCRAM-SHA-512") == password
    assert env_of(config)["TRIBUTARY_KAFKA_SECURITY_PROTOCOL"] == protocol
    assert env_of(config)["TRIBUTARY_REDIS_URL"].startswith("rediss://" if tls else "redis://")


def test_secured_redis_speaks_tls_only_and_keeps_its_password_off_the_command_line(
    tmp_path: Path, authority: TestAuthority
) -> None:
    config = secured(tmp_path, authority)
    command = redis_command(config)
    assert command[command.index("--port") + 1] == "0"
    assert command[command.index("--tls-port") + 1] == "26379"
    assert command[command.index("--tls-ca-cert-file") + 1] == str(authority.ca_file)
    assert command[command.index("--aclfile") + 1] == str(config.redis_acl_path)
    assert PASSWORD not in " ".join(command)
    acl = redis_acl(config).splitlines()
    assert acl == ["user default off", f"user tributary on >{PASSWORD} ~* &* +@all"]


def test_the_services_get_the_password_as_a_file_and_nothing_inherited(
    tmp_path: Path, authority: TestAuthority
) -> None:
    config = secured(tmp_path, authority)
    inherited = {
        "PATH": "/bin",
        "TRIBUTARY_KAFKA_SASL_PASSWORD": "from-the-shell",
        "TRIBUTARY_KAFKA_SSL_CHECK_HOSTNAME": "false",
        "TRIBUTARY_REDIS_PASSWORD": "from-the-shell",
        "TRIBUTARY_REDIS_URL_FILE": "/elsewhere",
        "TRIBUTARY_INFRA_PASSWORD": PASSWORD,
    }
    env = env_of(config, inherited)
    assert env["PATH"] == "/bin"
    assert env["TRIBUTARY_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["TRIBUTARY_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["TRIBUTARY_KAFKA_SASL_USERNAME"] == "tributary"
    assert env["TRIBUTARY_KAFKA_SASL_PASSWORD_FILE"] == str(config.infra_password_path)
    assert env["TRIBUTARY_KAFKA_SSL_CA_PATH"] == str(authority.ca_file)
    assert env["TRIBUTARY_REDIS_URL"] == "rediss://127.0.0.1:26379/0"
    assert env["TRIBUTARY_REDIS_USERNAME"] == "tributary"
    assert env["TRIBUTARY_REDIS_PASSWORD_FILE"] == str(config.infra_password_path)
    assert env["TRIBUTARY_REDIS_SSL_CA_PATH"] == str(authority.ca_file)
    for name in ("TRIBUTARY_KAFKA_SASL_PASSWORD", "TRIBUTARY_REDIS_PASSWORD"):
        assert name not in env
    assert "TRIBUTARY_KAFKA_SSL_CHECK_HOSTNAME" not in env
    assert "TRIBUTARY_REDIS_URL_FILE" not in env
    assert PASSWORD not in env.values()


def test_tls_files_go_together(tmp_path: Path, authority: TestAuthority) -> None:
    with pytest.raises(ValidationError, match="together"):
        StackConfig(run_dir=tmp_path, tls_ca_path=authority.ca_file)


def test_a_password_the_broker_files_cannot_hold_is_refused_unquoted(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        StackConfig(run_dir=tmp_path, infra_password=SecretStr('pa"ss]word'))
    assert "only letters, digits" in str(caught.value)
    assert 'pa"ss]word' not in str(caught.value)


def test_files_holding_secrets_are_private_to_their_owner(
    tmp_path: Path, authority: TestAuthority
) -> None:
    config = secured(tmp_path, authority)
    kafka_broker.write_config_files(config)
    for path in (config.kafka_dir / "server.properties", config.kafka_keystore_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    keystore = config.kafka_keystore_path.read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----")
    assert "BEGIN CERTIFICATE" in keystore


def test_a_logged_command_line_masks_the_secrets(tmp_path: Path) -> None:
    log = tmp_path / "format.log"
    code = procs.run_checked(
        [sys.executable, "-c", "pass", f"password={PASSWORD}"],
        log_path=log,
        env=os.environ,
        cwd=tmp_path,
        timeout=30,
        secrets=[PASSWORD],
    )
    assert code == 0
    assert "password=***" in log.read_text()
    assert PASSWORD not in log.read_text()
