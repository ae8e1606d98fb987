"""Redaction where it is applied: stored state, events, the effect ledger, dead letters and
the gateway's answers.

Secrets enter a workflow through its task, a tool's output that the agent quotes in
its result, and error messages. None of them may be written to the store (records and
logs), published, recorded as a tool's effect, or answered back over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from tests.support.harness import Harness
from tests.support.keys import bearer, issue
from tests.support.scripted import ScriptedEndpoint, rule
from tributary_agent_runner.tools.registry import Tool
from tributary_gateway.app import app_over
from tributary_gateway.deps import GatewayState
from tributary_gateway.settings import GatewaySettings
from tributary_gateway.streams import StreamSlots
from tributary_shared.core.redaction import REDACTED, Redactor
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.fanout import LogFanout
from tributary_shared.runtime.kafka.deadletter import DeadLetter
from tributary_shared.runtime.kafka.publisher import make_broker
from tributary_shared.runtime.redaction import RedactingPublisher, RedactingStore
from tributary_shared.runtime.settings import WorkflowDefaults
from tributary_shared.twins import (
    MemoryApiKeyStore,
    MemoryBudgetLedger,
    MemoryCancellationSignal,
    MemoryLogReader,
    MemoryPublisher,
    MemoryWorkflowStore,
)

API_KEY = "sk-proj-0123456789abcdefABCDEF"
DB_PASSWORD = "hunter2-db-pass"
OWN_KEY = "acme_0123456789abcdef"


class LookupArgs(BaseModel):
    name: str


async def lookup(args: LookupArgs) -> str:
    return f"{args.name}: connect with postgres://app:{DB_PASSWORD}@db:5432/x, key {OWN_KEY}"


LOOKUP = Tool(
    name="lookup",
    description="Look a service up.",
    args_model=LookupArgs,
    run=lookup,
    read_only=False,  # its result is kept in the effect ledger
)


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    yield scripted
    await scripted.aclose()


async def test_no_secret_reaches_the_store_the_topics_or_the_effect_ledger(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.add_rule(
        rule(
            {"tool_calls": [{"name": "lookup", "arguments": {"name": "billing"}}]},
            has_tools=True,
            has_tool_result=False,
        )
    )
    redactor = Redactor(["sk-", "acme_"])
    async with Harness(endpoint, tools=[LOOKUP], redactor=redactor).running() as harness:
        workflow_id = await harness.submit(f"find billing with key {API_KEY}")
        await harness.run()

        record = await harness.record(workflow_id)
        assert record.status is WorkflowStatus.COMPLETED
        # The agent quoted the tool's output: the secrets were there to leak.
        assert "postgres://app:" in (record.steps[0].result or "")
        stored = [
            record.model_dump_json(),
            *(entry.event_json for entry in await harness.store.read_log(workflow_id)),
        ]
        published = [event.model_dump_json() for event in harness.published]
        effects = list(harness.effects.effects.values())
        assert effects
        for text in (*stored, *published, *effects):
            for secret in (API_KEY[3:], DB_PASSWORD, OWN_KEY[5:]):
                assert secret not in text
        assert f"sk-{REDACTED}" in record.task
        assert f"postgres://app:{REDACTED}@db" in (record.result or "")


def test_a_dead_letter_names_its_error_without_the_secrets_in_it() -> None:
    letter = DeadLetter.of(
        consumer="tributary-planner",
        topic="tributary.step.results",
        partition=0,
        offset=7,
        key=b"wf_1",
        value=b"{}",
        headers={},
        error=ConnectionError(f"redis://default:{DB_PASSWORD}@redis:6379 refused"),
        attempts=3,
        redact=Redactor(),
    )
    assert letter.error_message == f"ConnectionError: redis://default:{REDACTED}@redis:6379 refused"
    assert letter.error_code == "handler_failed"
    assert not letter.refused


# -- the gateway -----------------------------------------------------------------------------


@pytest.fixture
async def gateway() -> AsyncIterator[
    tuple[httpx.AsyncClient, MemoryWorkflowStore, MemoryPublisher]
]:
    """The gateway on the twins, its store and publisher wrapped as ``create_app`` wraps them."""
    twin, topics, redis = MemoryWorkflowStore(), MemoryPublisher(), Redis()
    keys = MemoryApiKeyStore()
    redactor = Redactor()
    store, publisher = RedactingStore(twin, redactor), RedactingPublisher(topics, redactor)
    state = GatewayState(
        settings=GatewaySettings(),
        store=store,
        ledger=MemoryBudgetLedger(twin),
        follower=LogFanout(MemoryLogReader(twin), store, idle_s=1.0),
        streams=StreamSlots(10),
        publisher=publisher,
        broker=make_broker("127.0.0.1:9", client_id="gateway-test"),
        redis=redis,
        control=WorkflowControl(
            store=store, publisher=publisher, cancellations=MemoryCancellationSignal()
        ),
        defaults=WorkflowDefaults(),
        keys=keys,
        listing=twin,
    )
    transport = httpx.ASGITransport(app=app_over(state, redactor=redactor))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        client.headers.update(bearer(await issue(keys, "acme")))
        yield client, twin, topics
    await redis.aclose()


async def test_the_gateway_stores_and_sends_a_task_without_its_secrets(
    gateway: tuple[httpx.AsyncClient, MemoryWorkflowStore, MemoryPublisher],
) -> None:
    client, twin, topics = gateway
    task = f"Summarise https://bob:{DB_PASSWORD}@intranet/report with {API_KEY}"
    created = await client.post("/v1/workflows", json={"task": task})
    assert created.status_code == 202
    workflow_id = created.json()["workflow_id"]

    state = (await client.get(f"/v1/workflows/{workflow_id}")).json()
    assert state["task"] == f"Summarise https://bob:{REDACTED}@intranet/report with sk-{REDACTED}"
    sent = [e.model_dump_json() for events in topics.topics.values() for e in events]
    logged = [e.event_json for e in await twin.read_log(workflow_id)]
    assert sent
    assert logged
    for text in (*sent, *logged):
        assert DB_PASSWORD not in text
        assert API_KEY[3:] not in text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # A 404 repeats the id it was given.
        ("GET", f"/v1/workflows/{API_KEY}", None),
        ("POST", f"/v1/workflows/{API_KEY}/cancel", None),
        # A 422 repeats the input it refused.
        (
            "POST",
            "/v1/workflows",
            {"task": "x", "options": {"max_steps": f"password={DB_PASSWORD}"}},
        ),
        ("POST", "/v1/workflows", {"task": {"Authorization": f"Basic {DB_PASSWORD}"}}),
    ],
)
async def test_error_answers_repeat_no_secret(
    gateway: tuple[httpx.AsyncClient, MemoryWorkflowStore, MemoryPublisher],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    client, _, _ = gateway
    answer = await client.request(method, path, json=body)
    assert answer.status_code in (404, 422)
    text = json.dumps(answer.json())
    assert "detail" in answer.json()
    assert DB_PASSWORD not in text
    assert API_KEY[3:] not in text
    assert REDACTED in text
