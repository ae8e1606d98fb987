"""A workflow completes with Kafka behind a SASL_SSL listener and Redis behind TLS and a
password, every service configured through its environment (the password by file).

The stack here is its own (run dir, ports) with a certificate authority made for the
test: Kafka 4.1 reads its key and chain as PEM, enables PLAIN, SCRAM-SHA-256 and
SCRAM-SHA-512 (the services use SCRAM-SHA-512), and has no plaintext listener for
clients; Redis (Debian's build has TLS) listens with TLS only and knows one ACL user.
The checks that the doors are really locked (plaintext, a wrong password, no password)
keep the workflow's success from meaning "the security was never on".
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from redis.asyncio import Redis as AsyncRedis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.client import GatewayClient
from tests.support.keys import TEST_TENANT, issue
from tests.support.stack import REPO, RunningServices, start_services
from tests.support.tls import TestAuthority
from tributary_devstack.config import StackConfig
from tributary_devstack.infra import redis_client_options
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMServer
from tributary_shared.runtime.apikeys import RedisApiKeyStore
from tributary_shared.runtime.kafka.security import KafkaSecurity, tls_context

pytestmark = pytest.mark.integration

RUN_DIR = REPO / ".run" / "test-secured"
KAFKA_PORT, CONTROLLER_PORT, REDIS_PORT = 19492, 19493, 16479
USER = "tributary"


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    return TestAuthority(tmp_path_factory.mktemp("secured-tls"))


@pytest.fixture(scope="module")
def secured_stack(authority: TestAuthority, password: str) -> Iterator[Stack]:
    server = authority.issue("server")
    config = StackConfig(
        run_dir=RUN_DIR,
        kafka_port=KAFKA_PORT,
        kafka_controller_port=CONTROLLER_PORT,
        redis_port=REDIS_PORT,
        llm_base_url="http://127.0.0.1:1/v1",  # the services get the test's LLM instead
        tls_cert_path=server.cert,
        tls_key_path=server.key,
        tls_ca_path=authority.ca_file,
        infra_password=SecretStr(password),
    )
    # SCRAM users are written when Kafka's storage is formatted: start from nothing.
    Stack(config).stop_all()
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    stack = Stack(config, say=print)
    stack.ensure_infra()  # readiness and topics already go through SASL_SSL
    yield stack
    stack.stop_all()


@pytest.fixture(scope="module")
def secured_services(secured_stack: Stack, llm: ScriptedLLMServer) -> Iterator[RunningServices]:
    running = start_services(secured_stack, llm_base_url=llm.base_url, label="secured")
    yield running
    running.stop()


@pytest.fixture
async def gateway(
    secured_stack: Stack, secured_services: RunningServices
) -> AsyncIterator[GatewayClient]:
    # A key of this stack's own Redis, reached over TLS with the password.
    config = secured_stack.config
    keys_redis = AsyncRedis.from_url(config.redis_url, **redis_client_options(config))
    key = await issue(RedisApiKeyStore(keys_redis), TEST_TENANT)
    await keys_redis.aclose()
    client = GatewayClient(secured_services.gateway_url, key)
    yield client
    await client.aclose()


async def test_a_workflow_completes_over_sasl_ssl_kafka_and_tls_redis(
    gateway: GatewayClient,
    secured_services: RunningServices,
    authority: TestAuthority,
    password: str,
    marker: str,
) -> None:
    _workflow_id, events, state = await gateway.run(f"What is 12 * 12? {marker}")

    assert state["status"] == "completed"
    assert "144" in state["result"]
    assert [e.type for e in events][-1] == "workflow.completed"
    _assert_told_where_not_what(secured_services, password)


async def test_kafka_accepts_each_mechanism_and_refuses_plaintext_and_wrong_passwords(
    secured_stack: Stack, authority: TestAuthority, password: str
) -> None:
    context = tls_context(ca_path=authority.ca_file)
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        security = KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism=mechanism,
            username=USER,
            password=SecretStr(password),
            ssl_context=context,
        )
        cluster = await _describe_cluster(security.client_kwargs())
        assert cluster is not None, mechanism
        assert cluster["brokers"], mechanism
    wrong = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        username=USER,
        password=SecretStr(password + "x"),
        ssl_context=context,
    )
    assert await _describe_cluster(wrong.client_kwargs()) is None
    assert await _describe_cluster({"security_protocol": "PLAINTEXT"}) is None
    no_password = {"security_protocol": "SSL", "ssl_context": context}
    assert await _describe_cluster(no_password) is None


def test_redis_accepts_the_user_over_tls_only(
    secured_stack: Stack, authority: TestAuthority, password: str
) -> None:
    tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(authority.ca_file)}
    with _redis(username=USER, password=password, **tls) as client:
        assert client.ping()
    with _redis(**tls) as anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    with (
        _redis(username=USER, password=password + "x", **tls) as wrong,
        pytest.raises(redis.AuthenticationError),
    ):
        wrong.ping()
    with (
        _redis(username=USER, password=password) as plaintext,
        pytest.raises((redis.ConnectionError, redis.TimeoutError)),
    ):
        plaintext.ping()


def _redis(**kwargs: Any) -> redis.Redis:
    # No retries: a refused login is a ConnectionError, which redis-py would retry.
    return redis.Redis(port=REDIS_PORT, socket_timeout=5, retry=Retry(NoBackoff(), 0), **kwargs)


def _assert_told_where_not_what(services: RunningServices, password: str) -> None:
    """The services were told where to find the password, never the password itself,
    and none of them wrote it to its log."""
    for process in services.processes.values():
        environ = Path(f"/proc/{process.pid}/environ").read_bytes()
        assert b"TRIBUTARY_KAFKA_SASL_PASSWORD_FILE=" in environ, process.name
        assert b"TRIBUTARY_REDIS_PASSWORD_FILE=" in environ, process.name
        assert password.encode() not in environ, process.name
        assert password not in process.log_path.read_text(errors="replace"), process.name


async def _describe_cluster(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The cluster's description, or None when the broker does not let the client in."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=f"127.0.0.1:{KAFKA_PORT}", request_timeout_ms=5_000, **kwargs
    )
    try:
        async with asyncio.timeout(20):
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
            return cluster
    except Exception:  # refused: bad handshake, failed authentication, closed connection
        return None
    finally:
        await admin.close()
