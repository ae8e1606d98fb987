"""A workflow's ``callback_url`` through the gateway, over the in-memory twins.

A URL of the wrong form gets ``422`` and starts nothing; so does any callback when no
secret could sign it. A tenant's default URL is used when the request names none.
The workflow's state shows the URL and every try, and never the signing secret.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from tests.unit.test_gateway_limits import client_of, gateway_state, start
from tributary_shared.core.callbacks import CallbackAttempt
from tributary_shared.runtime.callbacks.settings import CallbackSettings
from tributary_shared.twins import MemoryCallbackStore, MemoryWorkflowStore

SECRET = "do-not-show-this-secret"
URL = "https://hooks.example/tributary"


def configured(**settings: Any) -> CallbackSettings:
    return CallbackSettings.model_validate({"secret": SecretStr(SECRET), **settings})


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example/cb", "https://"),
        ("ftp://hooks.example/cb", "https://"),
        ("https://user:pw@hooks.example/cb", "user name or password"),
        ("https:///cb", "no host"),
        ("https://hooks.example/" + "x" * 2100, "2048"),
    ],
)
async def test_a_callback_url_of_the_wrong_form_answers_422(
    url: str, reason: str, store: MemoryWorkflowStore
) -> None:
    state = gateway_state(store, quotas={"callback_settings": configured()})
    async with client_of(state) as client:
        answer = await client.post("/v1/workflows", json=start({"callback_url": url}))
    assert answer.status_code == 422
    assert reason in answer.text
    assert store.records == {}


async def test_http_is_accepted_where_it_is_allowed(store: MemoryWorkflowStore) -> None:
    state = gateway_state(store, quotas={"callback_settings": configured(allow_http=True)})
    async with client_of(state) as client:
        answer = await client.post(
            "/v1/workflows", json=start({"callback_url": "http://127.0.0.1:8099/cb"})
        )
    assert answer.status_code == 202


async def test_without_a_signing_secret_a_callback_answers_422(
    store: MemoryWorkflowStore,
) -> None:
    state = gateway_state(store, quotas={"callback_settings": CallbackSettings()})
    async with client_of(state) as client:
        refused = await client.post("/v1/workflows", json=start({"callback_url": URL}))
        plain = await client.post("/v1/workflows", json=start({}))
    assert refused.status_code == 422
    assert "no signing secret" in refused.json()["detail"]
    assert plain.status_code == 202  # a workflow without a callback needs none


async def test_the_tenants_default_url_is_used_when_the_request_names_none(
    store: MemoryWorkflowStore,
) -> None:
    settings = CallbackSettings.model_validate(
        {"tenants": {"default": {"url": URL, "secret": SECRET}}}
    )
    state = gateway_state(store, quotas={"callback_settings": settings})
    async with client_of(state) as client:
        defaulted = await client.post("/v1/workflows", json=start({}))
        own = await client.post(
            "/v1/workflows", json=start({"callback_url": "https://own.example/cb"})
        )
    assert (defaulted.status_code, own.status_code) == (202, 202)
    urls = {record.workflow_id: record.options.callback_url for record in store.records.values()}
    assert urls[defaulted.json()["workflow_id"]] == URL
    assert urls[own.json()["workflow_id"]] == "https://own.example/cb"


async def test_the_state_shows_the_callback_and_its_tries_and_never_the_secret(
    store: MemoryWorkflowStore,
) -> None:
    callbacks = MemoryCallbackStore()
    state = gateway_state(store, quotas={"callback_settings": configured(), "callbacks": callbacks})
    async with client_of(state) as client:
        created = await client.post("/v1/workflows", json=start({"callback_url": URL}))
        workflow_id = created.json()["workflow_id"]
        pending = await client.get(f"/v1/workflows/{workflow_id}")
        at = datetime(2026, 1, 1, tzinfo=UTC)
        await callbacks.record_attempt(
            workflow_id, CallbackAttempt(at=at, status=500, duration_ms=12), state="pending"
        )
        await callbacks.record_attempt(
            workflow_id, CallbackAttempt(at=at, status=200, duration_ms=9), state="delivered"
        )
        delivered = await client.get(f"/v1/workflows/{workflow_id}")
    assert pending.json()["callback"] == {"url": URL, "state": "pending", "attempts": []}
    shown = delivered.json()
    assert shown["options"]["callback_url"] == URL
    assert shown["callback"]["state"] == "delivered"
    assert [(a["status"], a["duration_ms"]) for a in shown["callback"]["attempts"]] == [
        (500, 12),
        (200, 9),
    ]
    for answer in (created, pending, delivered):
        assert SECRET not in answer.text


async def test_a_workflow_without_a_callback_shows_none(store: MemoryWorkflowStore) -> None:
    state = gateway_state(store, quotas={"callbacks": MemoryCallbackStore()})
    async with client_of(state) as client:
        created = await client.post("/v1/workflows", json=start({}))
        shown = await client.get(f"/v1/workflows/{created.json()['workflow_id']}")
    assert shown.json()["callback"] is None
