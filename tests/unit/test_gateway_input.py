"""POST /v1/workflows/{id}/input and the open requests of GET /v1/workflows/{id}.

The real gateway app on the twins; the workflow is paused by the store's own
transitions. What a client relies on: an answer resumes exactly its step (the
step is dispatched again), and every answer that cannot be taken gets its own
status and code, changing nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.contract.test_input_requests import pause
from tests.contract.test_workflow_store import planned
from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import bearer, issue
from tributary_shared.core import machine
from tributary_shared.core.access import Scope
from tributary_shared.core.events import StepDispatched, WorkflowCancelled
from tributary_shared.core.status import StepStatus, WorkflowStatus
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
def keys() -> MemoryApiKeyStore:
    return MemoryApiKeyStore()


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
async def gateway(
    store: MemoryWorkflowStore, keys: MemoryApiKeyStore, publisher: MemoryPublisher
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_over_twins(store=store, publisher=publisher, keys=keys) as client:
        yield client


@pytest.fixture
async def key(keys: MemoryApiKeyStore) -> dict[str, str]:
    return bearer(await issue(keys, "default"))


async def test_the_open_requests_are_shown_and_an_answer_resumes_its_step(
    gateway: httpx.AsyncClient,
    store: MemoryWorkflowStore,
    publisher: MemoryPublisher,
    key: dict[str, str],
) -> None:
    workflow_id = await planned(store)
    await pause(store, workflow_id, "s1", expires_in=600)
    await pause(store, workflow_id, "s2")
    view = (await gateway.get(f"/v1/workflows/{workflow_id}", headers=key)).json()
    assert view["status"] == "awaiting_input"
    shown = {r["request_id"]: r for r in view["input_requests"]}
    assert set(shown) == {"in_s1", "in_s2"}
    assert shown["in_s1"]["kind"] == "question"
    assert shown["in_s1"]["step_id"] == "s1"
    assert shown["in_s1"]["question"] == "which for s1?"
    assert shown["in_s1"]["choices"] == ["a", "b"]
    assert shown["in_s1"]["expires_at"] is not None
    assert shown["in_s2"]["expires_at"] is None

    answer = await gateway.post(
        f"/v1/workflows/{workflow_id}/input",
        json={"request_id": "in_s2", "answer": "b"},
        headers=key,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "answered"
    assert answer.json()["answer"] == "b"
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.AWAITING_INPUT
    assert {s.step_id: s.status for s in record.steps} == {
        "s1": StepStatus.AWAITING_INPUT,
        "s2": StepStatus.PENDING,
    }
    published = [e for events in publisher.topics.values() for e in events]
    resumed = [e for e in published if isinstance(e, StepDispatched)]
    assert [e.step.step_id for e in resumed] == ["s2"]
    view = (await gateway.get(f"/v1/workflows/{workflow_id}", headers=key)).json()
    assert [r["request_id"] for r in view["input_requests"]] == ["in_s1"]


@pytest.mark.parametrize(
    ("request_id", "answer", "status", "code"),
    [
        ("in_s1", "c", 422, "input_answer_not_a_choice"),
        ("in_nope", "a", 404, "input_request_not_found"),
    ],
)
async def test_an_answer_that_cannot_be_taken_says_why(
    gateway: httpx.AsyncClient,
    store: MemoryWorkflowStore,
    key: dict[str, str],
    request_id: str,
    answer: str,
    status: int,
    code: str,
) -> None:
    workflow_id = await planned(store)
    await pause(store, workflow_id, "s1")
    refused = await gateway.post(
        f"/v1/workflows/{workflow_id}/input",
        json={"request_id": request_id, "answer": answer},
        headers=key,
    )
    assert (refused.status_code, refused.json()["code"]) == (status, code)
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.status is WorkflowStatus.AWAITING_INPUT


async def test_answered_expired_ended_and_unknown_are_told_apart(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, key: dict[str, str]
) -> None:
    workflow_id = await planned(store)
    await pause(store, workflow_id, "s1")
    await pause(store, workflow_id, "s2", expires_in=-1)
    url = f"/v1/workflows/{workflow_id}/input"

    async def code_of(request_id: str, url: str = url) -> tuple[int, str]:
        answer = await gateway.post(
            url, json={"request_id": request_id, "answer": "a"}, headers=key
        )
        return answer.status_code, answer.json().get("code", "")

    assert await code_of("in_s1") == (202, "")
    assert await code_of("in_s1") == (409, "input_already_answered")
    assert await code_of("in_s2") == (409, "input_request_expired")
    unknown = "/v1/workflows/wf_" + "0" * 32 + "/input"
    assert await code_of("in_s1", unknown) == (404, "workflow_not_found")
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    assert await code_of("in_s2") == (409, "workflow_ended")


async def test_another_tenant_and_a_key_without_the_start_scope_cannot_answer(
    gateway: httpx.AsyncClient, store: MemoryWorkflowStore, keys: MemoryApiKeyStore
) -> None:
    workflow_id = await planned(store)
    await pause(store, workflow_id, "s1")
    body = {"request_id": "in_s1", "answer": "a"}
    url = f"/v1/workflows/{workflow_id}/input"
    other = bearer(await issue(keys, "other"))
    answer = await gateway.post(url, json=body, headers=other)
    assert (answer.status_code, answer.json()["code"]) == (404, "workflow_not_found")
    reader = bearer(await issue(keys, "default", scopes=[Scope.READ]))
    assert (await gateway.post(url, json=body, headers=reader)).status_code == 403
    record = await store.get_workflow(workflow_id)
    assert record is not None
    assert record.open_inputs
