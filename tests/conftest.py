"""Fixtures shared by the suite.

Integration tests run against the real Kafka broker and Redis server that the
project's own devstack starts (on test ports, under ``.run/test``), with the
services as separate OS processes and the bundled scripted LLM over HTTP.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from tests.support.client import GatewayClient
from tests.support.keys import TEST_TENANT, issue
from tests.support.stack import ACTIVE, RunningServices, stack_config_for_tests, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMAdmin, ScriptedLLMServer
from tributary_shared.core.access import parse_key
from tributary_shared.runtime.apikeys import RedisApiKeyStore


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = Stack(stack_config_for_tests(), say=print)
    stack.ensure_infra()
    yield stack
    if os.environ.get("TRIBUTARY_TEST_KEEP_STACK") != "1":
        stack.stop_all()


@pytest.fixture(scope="session")
async def api_key(stack: Stack) -> AsyncIterator[str]:
    """A key of the tests' tenant (``TEST_TENANT``) with the default scopes, revoked at the end."""
    # A client for each end: tests restart Redis in between, which closes connections.
    redis = Redis.from_url(stack.config.redis_url)
    key = await issue(RedisApiKeyStore(redis), TEST_TENANT)
    await redis.aclose()
    yield key
    presented = parse_key(key)
    assert presented is not None
    redis = Redis.from_url(stack.config.redis_url)
    await RedisApiKeyStore(redis).revoke(presented.key_id)
    await redis.aclose()


@pytest.fixture(scope="session")
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
def llm_admin(llm: ScriptedLLMServer) -> Iterator[ScriptedLLMAdmin]:
    admin = llm.admin
    yield admin
    admin.clear_rules()


@pytest.fixture(scope="session")
def services(stack: Stack, llm: ScriptedLLMServer) -> Iterator[RunningServices]:
    running = start_services(stack, llm_base_url=llm.base_url, label="e2e")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def exclusive_topics(stack: Stack) -> Iterator[Stack]:
    """Pause every running service set, so a module's own processes alone do the work.

    Crash and scaling tests count which process handled what; services of
    other tests in the same consumer groups would take part of the work.
    """
    paused = list(ACTIVE)
    for running in paused:
        running.stop()
    yield stack
    for running in paused:
        running.restart_all()


@pytest.fixture
async def gateway(services: RunningServices, api_key: str) -> AsyncIterator[GatewayClient]:
    client = GatewayClient(services.gateway_url, api_key)
    yield client
    await client.aclose()


@pytest.fixture
def marker() -> str:
    """A unique tag to put in a task so scripted LLM rules target only this test."""
    return f"#t{uuid.uuid4().hex[:10]}"
