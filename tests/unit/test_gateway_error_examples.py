"""The error examples of the OpenAPI document are the gateway's answers, word for word.

Each case provokes one cause against the gateway over the twins (default settings)
and compares the body it answers with the example the document shows for it, so
an example cannot drift from a message the code changes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from tests.support.keys import bearer, issue
from tributary_gateway import error_examples as errors
from tributary_gateway.app import app_over
from tributary_gateway.deps import GatewayState
from tributary_gateway.examples import WORKFLOW_ID, Example
from tributary_gateway.settings import GatewaySettings, TenantLimitSettings
from tributary_gateway.stream_tokens import StreamGrant, sign_stream_token
from tributary_gateway.streams import StreamSlots
from tributary_gateway.tenant_limits import TenantCeilings
from tributary_shared.core import machine
from tributary_shared.core.access import Scope
from tributary_shared.core.events import (
    EventEnvelope,
    InputRequested,
    PlanCreated,
    PlannedStep,
    StepCompleted,
    StepDispatched,
    StepStarted,
    SynthesisStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowRequested,
)
from tributary_shared.core.records import StepCheckpoint
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.fanout import LogFanout
from tributary_shared.runtime.kafka.publisher import make_broker
from tributary_shared.runtime.settings import WorkflowDefaults
from tributary_shared.twins import (
    MemoryApiKeyStore,
    MemoryBudgetLedger,
    MemoryCancellationSignal,
    MemoryLogReader,
    MemoryPublisher,
    MemoryRateLimiter,
    MemoryRunningWorkflows,
    MemoryWorkflowStore,
)

TENANT = "acme"
UNKNOWN_KEY_ID = "5e610a30f3dc"


@dataclass
class Gateway:
    """The gateway over the twins, and the keys to call it with."""

    client: httpx.AsyncClient
    state: GatewayState
    store: MemoryWorkflowStore
    keys: MemoryApiKeyStore

    async def key(self, *scopes: Scope, tenant_id: str = TENANT) -> dict[str, str]:
        """The header of a new key of ``tenant_id``: the default scopes unless named."""
        if scopes:
            return bearer(await issue(self.keys, tenant_id, scopes=scopes))
        return bearer(await issue(self.keys, tenant_id))


class Kafka:
    """A broker that refuses every event, as one out of reach does."""

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        raise ConnectionError("no broker reachable")


class UnreachableStore(MemoryWorkflowStore):
    """A workflow store whose Redis has gone away."""

    async def get_workflow(self, workflow_id: str) -> Any:
        raise redis_errors.ConnectionError("Connection refused")


async def workflow_at(store: MemoryWorkflowStore, status: str) -> None:
    """The example workflow, of the tenant, ``running`` (its one step works) or ``completed``."""
    ids = {"workflow_id": WORKFLOW_ID, "tenant_id": TENANT}
    request = WorkflowRequested(**ids, task="Summarise")
    await store.create_workflow(request, deadline_at=time.time() + 600)
    now = time.time()
    await store.apply(
        machine.start_planning(WORKFLOW_ID, owner="planner", lease_until=now + 60, now=now)
    )
    step = PlannedStep(step_id="s1", index=0, title="Summarise", instruction="Summarise")
    dispatched = StepDispatched(**ids, step=step, task=request.task)
    await store.apply(
        machine.record_plan(PlanCreated(**ids, steps=(step,)), (dispatched,), owner="planner")
    )
    started = StepStarted(**ids, step_id="s1", attempt=1)
    await store.apply(machine.start_step(started, owner="runner", lease_until=now + 60, now=now))
    if status == "completed":
        finished = StepCompleted(**ids, step_id="s1", result="Done.", iterations=1)
        await store.apply(machine.finish_step(finished, owner="runner"))
        await store.apply(machine.start_synthesis(SynthesisStarted(**ids)))
        await store.apply(machine.complete(WorkflowCompleted(**ids, result="Done.")))
    record = await store.get_workflow(WORKFLOW_ID)
    assert record is not None
    assert record.status == status


@asynccontextmanager
async def gateway(
    *,
    store: MemoryWorkflowStore | None = None,
    publisher: Any = None,
    streams: int = 10,
    **quotas: Any,
) -> AsyncIterator[Gateway]:
    """The gateway with the default settings, over ``store`` and ``publisher``; ``quotas``
    are ``GatewayState``'s (``rates``, ``running``, ``tenant_limits``)."""
    store = store or MemoryWorkflowStore()
    publisher = publisher or MemoryPublisher()
    keys = MemoryApiKeyStore()
    follower = LogFanout(MemoryLogReader(store), store, idle_s=1.0)
    await follower.start()
    state = GatewayState(
        settings=GatewaySettings(),
        store=store,
        ledger=MemoryBudgetLedger(store),
        follower=follower,
        streams=StreamSlots(streams),
        publisher=publisher,
        broker=make_broker("127.0.0.1:9", client_id="gateway-test"),
        redis=Redis(),  # never connected
        control=WorkflowControl(
            store=store, publisher=publisher, cancellations=MemoryCancellationSignal()
        ),
        defaults=WorkflowDefaults(),
        keys=keys,
        listing=store,
        **quotas,
    )
    transport = httpx.ASGITransport(app=app_over(state))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Gateway(client, state, store, keys)
    finally:
        await follower.close()
        await state.redis.aclose()


Provoke = Callable[[], Awaitable[httpx.Response]]
CASES: list[tuple[Example, Provoke]] = []


def answers(example: Example) -> Callable[[Provoke], Provoke]:
    """Register a function that provokes the answer ``example`` shows."""

    def register(provoke: Provoke) -> Provoke:
        CASES.append((example, provoke))
        return provoke

    return register


WORKFLOW = f"/v1/workflows/{WORKFLOW_ID}"
START = {"task": "Summarise the quarterly report"}


# --- 401, 403 ---------------------------------------------------------------------


@answers(errors.NO_KEY)
async def no_key() -> httpx.Response:
    async with gateway() as g:
        return await g.client.get("/v1/workflows")


@answers(errors.INVALID_KEY)
async def unknown_key() -> httpx.Response:
    async with gateway() as g:
        unknown = bearer(f"trb_{UNKNOWN_KEY_ID}_{'a' * 40}")
        return await g.client.get("/v1/workflows", headers=unknown)


async def stream_token_of(g: Gateway, *, expires_in: int, key_id: str) -> str:
    """A token for the example workflow's stream, signed as the gateway signs them."""
    grant = StreamGrant(
        workflow_id=WORKFLOW_ID,
        tenant_id=TENANT,
        key_id=key_id,
        expires_at=int(time.time()) + expires_in,
    )
    return sign_stream_token(grant, secret=await g.state.stream_secret.secret())


@answers(errors.STREAM_TOKEN_EXPIRED)
async def an_expired_stream_token() -> httpx.Response:
    async with gateway() as g:
        await g.key()
        token = await stream_token_of(g, expires_in=-1, key_id=next(iter(g.keys.records)))
        return await g.client.get(f"{WORKFLOW}/events", params={"token": token})


@answers(errors.STREAM_TOKEN_OTHER_WORKFLOW)
async def a_stream_token_for_another_workflow() -> httpx.Response:
    async with gateway() as g:
        await g.key()
        token = await stream_token_of(g, expires_in=60, key_id=next(iter(g.keys.records)))
        other = "wf_" + "0" * 32
        return await g.client.get(f"/v1/workflows/{other}/events", params={"token": token})


@answers(errors.STREAM_TOKEN_KEY_REVOKED)
async def a_stream_token_of_a_revoked_key() -> httpx.Response:
    async with gateway() as g:
        token = await stream_token_of(g, expires_in=60, key_id=UNKNOWN_KEY_ID)
        return await g.client.get(f"{WORKFLOW}/events", params={"token": token})


@answers(errors.lacks_scope(Scope.START))
async def start_without_start() -> httpx.Response:
    async with gateway() as g:
        return await g.client.post("/v1/workflows", json=START, headers=await g.key(Scope.READ))


@answers(errors.lacks_scope(Scope.READ))
async def list_without_read() -> httpx.Response:
    async with gateway() as g:
        return await g.client.get("/v1/workflows", headers=await g.key(Scope.START))


@answers(errors.lacks_scope(Scope.CANCEL))
async def cancel_without_cancel() -> httpx.Response:
    async with gateway() as g:
        return await g.client.post(f"{WORKFLOW}/cancel", headers=await g.key(Scope.READ))


@answers(errors.lacks_scope(Scope.DELETE))
async def delete_without_delete() -> httpx.Response:
    async with gateway() as g:
        return await g.client.delete(WORKFLOW, headers=await g.key())


@answers(errors.lacks_scope(Scope.ADMIN))
async def keys_without_admin() -> httpx.Response:
    async with gateway() as g:
        return await g.client.get("/v1/keys", headers=await g.key())


@answers(errors.other_tenant("start workflows for"))
async def start_for_another_tenant() -> httpx.Response:
    async with gateway() as g:
        body = {**START, "tenant_id": "globex"}
        return await g.client.post("/v1/workflows", json=body, headers=await g.key())


@answers(errors.other_tenant("list the workflows of"))
async def list_another_tenant() -> httpx.Response:
    async with gateway() as g:
        return await g.client.get("/v1/workflows?tenant=globex", headers=await g.key())


# --- 404, 409 ---------------------------------------------------------------------


@answers(errors.WORKFLOW_NOT_FOUND)
async def unknown_workflow() -> httpx.Response:
    async with gateway() as g:
        return await g.client.get(WORKFLOW, headers=await g.key())


@answers(errors.KEY_NOT_FOUND)
async def unknown_key_id() -> httpx.Response:
    async with gateway() as g:
        return await g.client.delete(f"/v1/keys/{UNKNOWN_KEY_ID}", headers=await g.key(Scope.ADMIN))


# --- answering an input request ------------------------------------------------

REQUEST_ID = "in_9c41d2e07a6b4f13b58e0d2c7a19f6e4"


async def paused_on_a_question(store: MemoryWorkflowStore, *, expires_in: float = 3600) -> None:
    """The example workflow, its step paused on the example's question (yes or no)."""
    await workflow_at(store, "running")
    now = datetime.now(UTC)
    asked = InputRequested(
        workflow_id=WORKFLOW_ID,
        tenant_id=TENANT,
        request_id=REQUEST_ID,
        step_id="s1",
        question="Count Viessmann (now Carrier) as an EU maker?",
        choices=("yes", "no"),
        requested_at=now,
        expires_at=now + timedelta(seconds=expires_in),
    )
    checkpoint = StepCheckpoint(request_id=REQUEST_ID, tool_call_id="call_1", messages=())
    await store.apply(machine.pause_step(asked, checkpoint, owner="runner", timeout_answer=None))


async def answer_with(g: Gateway, text: str, request_id: str = REQUEST_ID) -> httpx.Response:
    return await g.client.post(
        f"{WORKFLOW}/input",
        json={"request_id": request_id, "answer": text},
        headers=await g.key(),
    )


@answers(errors.INPUT_WORKFLOW_NOT_FOUND)
async def answer_an_unknown_workflow() -> httpx.Response:
    async with gateway() as g:
        return await answer_with(g, "no")


@answers(errors.INPUT_REQUEST_NOT_FOUND)
async def answer_an_unknown_request() -> httpx.Response:
    async with gateway() as g:
        await workflow_at(g.store, "running")
        return await answer_with(g, "no")


@answers(errors.INPUT_ALREADY_ANSWERED)
async def answer_twice() -> httpx.Response:
    async with gateway() as g:
        await paused_on_a_question(g.store)
        assert (await answer_with(g, "no")).status_code == 202
        return await answer_with(g, "yes")


@answers(errors.INPUT_REQUEST_EXPIRED)
async def answer_too_late() -> httpx.Response:
    async with gateway() as g:
        await paused_on_a_question(g.store, expires_in=-1)
        return await answer_with(g, "no")


@answers(errors.INPUT_WORKFLOW_ENDED)
async def answer_a_cancelled_workflow() -> httpx.Response:
    async with gateway() as g:
        await paused_on_a_question(g.store)
        await g.store.apply(
            machine.cancel(WorkflowCancelled(workflow_id=WORKFLOW_ID, tenant_id=TENANT))
        )
        return await answer_with(g, "no")


@answers(errors.INPUT_NOT_A_CHOICE)
async def answer_outside_the_choices() -> httpx.Response:
    async with gateway() as g:
        await paused_on_a_question(g.store)
        return await answer_with(g, "maybe")


@answers(errors.INPUT_BODY_INVALID)
async def answer_without_an_answer() -> httpx.Response:
    async with gateway() as g:
        await paused_on_a_question(g.store)
        return await g.client.post(
            f"{WORKFLOW}/input", json={"request_id": REQUEST_ID}, headers=await g.key()
        )


@answers(errors.ALREADY_ENDED)
async def cancel_a_completed_workflow() -> httpx.Response:
    async with gateway() as g:
        await workflow_at(g.store, "completed")
        return await g.client.post(f"{WORKFLOW}/cancel", headers=await g.key())


@answers(errors.STILL_ACTIVE)
async def delete_a_running_workflow() -> httpx.Response:
    async with gateway() as g:
        await workflow_at(g.store, "running")
        return await g.client.delete(WORKFLOW, headers=await g.key(Scope.ADMIN))


@answers(errors.IDEMPOTENCY_KEY_OF_DELETED)
async def retry_the_request_of_a_deleted_workflow() -> httpx.Response:
    async with gateway() as g:
        admin = {**await g.key(Scope.ADMIN), "Idempotency-Key": "report-2026-11-30"}
        first = await g.client.post("/v1/workflows", json=START, headers=admin)
        workflow = first.json()["links"]["self"]
        assert (await g.client.post(f"{workflow}/cancel", headers=admin)).status_code == 200
        assert (await g.client.delete(workflow, headers=admin)).status_code == 204
        return await g.client.post("/v1/workflows", json=START, headers=admin)


# --- 400, 413 ---------------------------------------------------------------------


@answers(errors.BODY_NOT_UTF8)
async def a_body_not_utf8() -> httpx.Response:
    async with gateway() as g:
        headers = {**await g.key(), "Content-Type": "application/json"}
        return await g.client.post("/v1/workflows", content=b'{"task": "\xff"}', headers=headers)


@answers(errors.BODY_TOO_LARGE)
async def a_body_too_large() -> httpx.Response:
    async with gateway() as g:
        padding = "x" * g.state.settings.max_body_bytes
        return await g.client.post("/v1/workflows", json={"task": padding}, headers=await g.key())


@answers(errors.BAD_LAST_EVENT_ID)
async def a_bad_last_event_id() -> httpx.Response:
    async with gateway() as g:
        headers = {**await g.key(), "Last-Event-ID": "yesterday"}
        return await g.client.get(f"{WORKFLOW}/events", headers=headers)


# --- 422 --------------------------------------------------------------------------


async def started_with(body: dict[str, Any], **quotas: Any) -> httpx.Response:
    async with gateway(**quotas) as g:
        return await g.client.post("/v1/workflows", json=body, headers=await g.key())


async def read(path: str, *scopes: Scope) -> httpx.Response:
    async with gateway() as g:
        return await g.client.get(path, headers=await g.key(*scopes))


@answers(errors.TASK_MISSING)
async def no_task() -> httpx.Response:
    return await started_with({"options": {"max_steps": 4}})


@answers(errors.OPTION_OUT_OF_BOUNDS)
async def too_many_steps() -> httpx.Response:
    return await started_with({**START, "options": {"max_steps": 80}})


@answers(errors.TASK_BLANK)
async def a_blank_task() -> httpx.Response:
    return await started_with({"task": "   "})


@answers(errors.TASK_TOO_LONG)
async def a_task_too_long() -> httpx.Response:
    return await started_with({"task": "x" * (GatewaySettings().max_task_chars + 1)})


@answers(errors.ABOVE_CEILING)
async def a_budget_above_the_tenants_ceiling() -> httpx.Response:
    limits = TenantLimitSettings(limits={TENANT: TenantCeilings(max_token_budget=1_000_000)})
    body = {**START, "options": {"token_budget": 2_000_000}}
    return await started_with(body, tenant_limits=limits)


@answers(errors.IDEMPOTENCY_KEY_REUSED)
async def an_idempotency_key_reused() -> httpx.Response:
    async with gateway() as g:
        headers = {**await g.key(), "Idempotency-Key": "report-2026-11-30"}
        await g.client.post("/v1/workflows", json=START, headers=headers)
        return await g.client.post("/v1/workflows", json={"task": "Other"}, headers=headers)


@answers(errors.LIST_LIMIT_OUT_OF_BOUNDS)
async def a_page_too_long() -> httpx.Response:
    return await read("/v1/workflows?limit=500")


@answers(errors.BAD_TIME_BOUND)
async def a_time_bound_not_a_date_time() -> httpx.Response:
    return await read("/v1/workflows?created_after=yesterday")


@answers(errors.TIME_BOUNDS_REVERSED)
async def time_bounds_reversed() -> httpx.Response:
    return await read(
        "/v1/workflows?created_after=2026-11-30T10:00:00Z&created_before=2026-11-30T09:00:00Z"
    )


@answers(errors.CALLS_LIMIT_OUT_OF_BOUNDS)
async def a_calls_page_too_long() -> httpx.Response:
    return await read(f"{WORKFLOW}/calls?limit=1000")


@answers(errors.BAD_CALLS_FLAG)
async def a_calls_flag_not_boolean() -> httpx.Response:
    return await read(f"{WORKFLOW}/events?calls=maybe")


@answers(errors.BAD_STREAM_MODE)
async def an_unknown_stream_mode() -> httpx.Response:
    return await read(f"{WORKFLOW}/events?mode=all")


@answers(errors.REASON_NOT_TEXT)
async def a_reason_not_text() -> httpx.Response:
    async with gateway() as g:
        return await g.client.post(f"{WORKFLOW}/cancel", json={"reason": 42}, headers=await g.key())


@answers(errors.BAD_KEY_BODY)
async def a_key_for_no_tenant_and_no_scope() -> httpx.Response:
    async with gateway() as g:
        body = {"tenant_id": "acme corp", "scopes": ["write"]}
        return await g.client.post("/v1/keys", json=body, headers=await g.key(Scope.ADMIN))


@answers(errors.BAD_TENANT_QUERY)
async def keys_of_no_tenant() -> httpx.Response:
    return await read("/v1/keys?tenant=acme:eu", Scope.ADMIN)


@answers(errors.BAD_KEY_ID)
async def revoke_by_a_key_id_one_digit_short() -> httpx.Response:
    async with gateway() as g:
        return await g.client.delete(
            f"/v1/keys/{UNKNOWN_KEY_ID[:-1]}", headers=await g.key(Scope.ADMIN)
        )


# --- 429, 503 ---------------------------------------------------------------------


@answers(errors.RATE_LIMITED)
async def requests_past_the_rate() -> httpx.Response:
    async with gateway(rates=MemoryRateLimiter()) as g:
        key = await g.key()
        for _ in range(10 * g.state.settings.rate_limit_burst):
            answer = await g.client.get("/v1/workflows", headers=key)
            if answer.status_code == 429:
                return answer
        raise AssertionError("never limited")


@answers(errors.TENANT_AT_CEILING)
async def one_workflow_past_the_running_ceiling() -> httpx.Response:
    limits = TenantLimitSettings(limits={TENANT: TenantCeilings(max_running_workflows=10)})
    store = MemoryWorkflowStore()
    running = MemoryRunningWorkflows(store)
    async with gateway(store=store, running=running, tenant_limits=limits) as g:
        key = await g.key()
        for _ in range(10):
            assert (await g.client.post("/v1/workflows", json=START, headers=key)).is_success
        return await g.client.post("/v1/workflows", json=START, headers=key)


@answers(errors.REPLICA_STREAMS_FULL)
async def a_stream_past_the_replicas_most() -> httpx.Response:
    async with gateway(streams=0) as g:
        key = await g.key()
        workflow = (await g.client.post("/v1/workflows", json=START, headers=key)).json()
        return await g.client.get(workflow["links"]["events"], headers=key)


@answers(errors.KEY_STREAMS_FULL)
async def a_stream_past_the_keys_most() -> httpx.Response:
    async with gateway() as g:
        key = await g.key()
        workflow = (await g.client.post("/v1/workflows", json=START, headers=key)).json()
        key_id = next(iter(g.keys.records))
        most = g.state.settings.max_streams_per_key
        assert all(g.state.key_streams.take(key_id, limit=most) for _ in range(most))
        return await g.client.get(workflow["links"]["events"], headers=key)


@answers(errors.STORE_UNAVAILABLE)
async def redis_away() -> httpx.Response:
    async with gateway(store=UnreachableStore()) as g:
        return await g.client.get(WORKFLOW, headers=await g.key())


@answers(errors.NOT_QUEUED)
async def kafka_away() -> httpx.Response:
    return await started_with(START, publisher=Kafka())


@answers(errors.NOT_QUEUED_KEYED)
async def kafka_away_with_an_idempotency_key() -> httpx.Response:
    async with gateway(publisher=Kafka()) as g:
        headers = {**await g.key(), "Idempotency-Key": "report-2026-11-30"}
        return await g.client.post("/v1/workflows", json=START, headers=headers)


@pytest.mark.parametrize(
    ("example", "provoke"), CASES, ids=[provoke.__name__ for _, provoke in CASES]
)
async def test_the_example_is_what_the_gateway_answers(example: Example, provoke: Provoke) -> None:
    answer = await provoke()
    assert 400 <= answer.status_code < 600
    assert answer.json() == example.value


def test_every_error_example_is_provoked_here() -> None:
    provoked = [example for example, _ in CASES]
    written = [value for value in vars(errors).values() if isinstance(value, Example)]
    assert written, "no error examples found"
    unprovoked = [example.name for example in written if example not in provoked]
    assert not unprovoked, f"add a case for: {unprovoked}"
