"""The SDK's models cannot drift from the gateway's OpenAPI, and the SDK stands alone."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

import tributary_client
from tests.support.gateway_twins import gateway_over_twins
from tributary_client import (
    Budget,
    Callback,
    CallbackAttempt,
    CallList,
    CallPayloadRef,
    ErrorInfo,
    InputRequest,
    Key,
    KeyCreated,
    KeyList,
    LLMCall,
    LLMCallBody,
    LLMRequest,
    LLMResponse,
    LLMToolCall,
    LLMTry,
    Step,
    StepStatus,
    StreamMode,
    StreamToken,
    TokenDelta,
    TokenUsage,
    ToolCall,
    ToolCallBody,
    Tributary,
    Usage,
    Workflow,
    WorkflowAccepted,
    WorkflowCancelled,
    WorkflowLinks,
    WorkflowOptions,
    WorkflowPage,
    WorkflowStatus,
    WorkflowSummary,
)
from tributary_shared.core.deltas import LLMDelta
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore

PACKAGE = Path(tributary_client.__file__).parent
PROJECT = PACKAGE.parent.parent / "pyproject.toml"

# The gateway's schema -> the SDK model that reads it.
ANSWERS: dict[str, type[BaseModel]] = {
    "WorkflowAccepted": WorkflowAccepted,
    "WorkflowView": Workflow,
    "WorkflowSummary": WorkflowSummary,
    "WorkflowList": WorkflowPage,
    "WorkflowCancelledView": WorkflowCancelled,
    "WorkflowLinks": WorkflowLinks,
    "WorkflowOptions": WorkflowOptions,
    "StepView": Step,
    "UsageView": Usage,
    "BudgetView": Budget,
    "CallbackView": Callback,
    "CallbackAttempt": CallbackAttempt,
    "ErrorInfo": ErrorInfo,
    "TokenUsage": TokenUsage,
    "CallList": CallList,
    "LLMCalled": LLMCall,
    "ToolCalled": ToolCall,
    "LLMCallBody": LLMCallBody,
    "LLMRequestRecord": LLMRequest,
    "LLMResponseRecord": LLMResponse,
    "RecordedToolCall": LLMToolCall,
    "LLMTry": LLMTry,
    "ToolCallBody": ToolCallBody,
    "PayloadRef": CallPayloadRef,
    "StreamTokenIssued": StreamToken,
    "KeyView": Key,
    "KeyCreated": KeyCreated,
    "KeyList": KeyList,
    "InputRequestView": InputRequest,
}
ENUMS: dict[str, Any] = {
    "WorkflowStatus": WorkflowStatus,
    "StepStatus": StepStatus,
    "StreamMode": StreamMode,
}
# Request bodies (checked against what the SDK sends), errors, and enums of free strings.
NOT_MODELLED = {
    "CreateWorkflow",
    "CancelWorkflow",
    "CreateKey",
    "AnswerInput",
    "Problem",
    "InputProblem",
    # input() answers; the request as answered is in the workflow's events.
    "InputAnsweredView",
    "HTTPValidationError",
    "ValidationError",
    "FieldError",
    "Invalid",
    "InvalidAnswer",
    "Scope",
    # /readyz is for probes, not for clients of the API.
    "Readiness",
}
# Fields the SDK adds from elsewhere than the body.
SDK_ONLY = {("WorkflowAccepted", "replayed")}


@pytest.fixture(scope="module")
async def openapi() -> AsyncIterator[dict[str, Any]]:
    store = MemoryWorkflowStore()
    async with gateway_over_twins(
        store=store, publisher=MemoryPublisher(), keys=MemoryApiKeyStore()
    ) as gateway:
        document: dict[str, Any] = (await gateway.get("/openapi.json")).json()
        yield document


def schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = openapi["components"]["schemas"]
    return found


def test_every_schema_of_the_gateway_is_modelled_or_deliberately_not(
    openapi: dict[str, Any],
) -> None:
    unknown = set(schemas(openapi)) - set(ANSWERS) - set(ENUMS) - NOT_MODELLED
    assert unknown == set(), f"new gateway schemas: model them in tributary_client: {unknown}"


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_each_model_reads_every_field_of_its_schema_and_invents_none(
    openapi: dict[str, Any], name: str
) -> None:
    properties = set(schemas(openapi)[name].get("properties", {}))
    fields = set(ANSWERS[name].model_fields) - {f for n, f in SDK_ONLY if n == name}
    assert properties - fields == set(), f"{ANSWERS[name].__name__} lacks fields"
    assert fields - properties == set(), f"{ANSWERS[name].__name__} has fields the API lacks"


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_the_sdks_statuses_are_the_gateways(openapi: dict[str, Any], name: str) -> None:
    assert {member.value for member in ENUMS[name]} == set(schemas(openapi)[name]["enum"])


def test_the_sdks_token_delta_reads_every_field_of_the_live_event_and_invents_none() -> None:
    # Live deltas are not in the OpenAPI document (an SSE stream's events): the SDK's
    # model is held to the event the services send instead.
    assert set(TokenDelta.model_fields) == set(LLMDelta.model_fields)
    sent = LLMDelta(workflow_id="wf_1", role="agent", step_id="s1", call=2, seq=3, text="hi")
    assert TokenDelta.model_validate_json(sent.model_dump_json()).model_dump() == sent.model_dump()


def test_start_and_create_key_send_every_field_the_gateway_reads(
    openapi: dict[str, Any],
) -> None:
    bodies: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(500, json={"detail": "recorded"})

    with Tributary("http://gw", "k", transport=httpx.MockTransport(record)) as client:
        with pytest.raises(tributary_client.ServerError):
            client.start(
                "t",
                max_steps=1,
                token_budget=1,
                cost_budget_usd=1.0,
                deadline_s=1,
                on_budget_exhausted="fail",
                require_plan_approval=True,
                input_timeout_s=60,
                on_input_timeout="fail",
                metadata={"a": 1},
                callback_url="https://hooks.example/cb",
                tenant_id="acme",
            )
        with pytest.raises(tributary_client.ServerError):
            client.create_key("acme", scopes=["read"], label="l")
    start, create_key = bodies
    assert set(start) == set(schemas(openapi)["CreateWorkflow"]["properties"])
    assert set(start["options"]) == set(schemas(openapi)["WorkflowOptions"]["properties"])
    assert set(create_key) == set(schemas(openapi)["CreateKey"]["properties"])


def test_the_package_imports_nothing_of_the_services() -> None:
    for source in PACKAGE.rglob("*.py"):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert not top.startswith("tributary") or top == "tributary_client", (
                    f"{source.name} imports {name}"
                )
    dependencies = tomllib.loads(PROJECT.read_text())["project"]["dependencies"]
    assert not [d for d in dependencies if d.startswith("tributary")]


def test_importing_the_package_loads_no_service_module() -> None:
    probe = (
        "import sys, tributary_client; "
        "print([m for m in sys.modules if m.startswith('tributary') "
        "and not m.startswith('tributary_client')])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
