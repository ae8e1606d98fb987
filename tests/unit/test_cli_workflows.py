"""The workflow commands against the real gateway app (over the in-memory twins).

What an operator types (``tributary run|get|list|events|cancel|input|delete``)
goes through the SDK to the gateway's real routes, so the commands are held to
the API as it is: its filters, its refusals and their messages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.gateway_twins import gateway_over_twins
from tests.support.keys import issue
from tributary_cli.app import run_command
from tributary_cli.context import CommandContext
from tributary_client import AsyncTributary
from tributary_gateway.settings import GatewaySettings
from tributary_shared.core import machine
from tributary_shared.core.access import DEFAULT_SCOPES, Scope
from tributary_shared.core.events import WorkflowCancelled
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore


@dataclass
class Operator:
    """Runs commands with a key, as from a shell with TRIBUTARY_API_KEY set."""

    http: httpx.AsyncClient
    key: str
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    async def __call__(self, *argv: str) -> int:
        self.out.clear()
        self.err.clear()
        context = CommandContext(
            say=self.out.append,
            warn=self.err.append,
            environ={"TRIBUTARY_API_KEY": self.key, "TRIBUTARY_URL": "http://gateway"},
            gateway=lambda url, key: AsyncTributary(url, key, http_client=self.http),
            terminal=lambda: None,
            ask=lambda prompt: None,
        )
        return await run_command(list(argv), context=lambda: context)


@pytest.fixture
def store() -> MemoryWorkflowStore:
    return MemoryWorkflowStore()


@pytest.fixture
async def operator(store: MemoryWorkflowStore) -> AsyncIterator[Operator]:
    keys = MemoryApiKeyStore()
    async with gateway_over_twins(
        store=store,
        publisher=MemoryPublisher(),
        keys=keys,
        settings=GatewaySettings(sse_ping_s=0.5),
    ) as http:
        key = await issue(keys, "acme", scopes={*DEFAULT_SCOPES, Scope.DELETE})
        yield Operator(http, key)


async def _started(operator: Operator, task: str, *options: str) -> str:
    assert await operator("run", task, "--no-follow", *options) == 0, operator.err
    [workflow_id] = operator.out
    return workflow_id


async def test_get_list_cancel_and_delete(operator: Operator) -> None:
    first = await _started(operator, "Compare three databases", "--max-steps", "3")
    second = await _started(operator, "Summarise the release", "--metadata", "team=search")

    assert await operator("get", first, "--json") == 0
    workflow = json.loads("\n".join(operator.out))
    assert (workflow["workflow_id"], workflow["status"]) == (first, "pending")
    assert workflow["options"]["max_steps"] == 3
    assert await operator("get", first) == 0
    assert operator.out[:2] == [
        f"Workflow {first}: pending (0 tokens, $0.0000)",
        "Task: Compare three databases",
    ]

    assert await operator("cancel", first, "--reason", "enough") == 0
    assert operator.out == [f"Cancelled workflow {first}: enough"]
    assert await operator("cancel", first) == 2  # it has ended: the gateway's 409, said plainly
    [refusal] = operator.err
    assert refusal.startswith("error: the gateway answered 409:")
    assert "already ended" in refusal

    assert await operator("list", "--json") == 0
    listed = json.loads("\n".join(operator.out))
    assert [(w["workflow_id"], w["status"]) for w in listed] == [
        (second, "pending"),
        (first, "cancelled"),
    ]
    assert await operator("list", "--status", "cancelled", "--json") == 0
    assert [w["workflow_id"] for w in json.loads("\n".join(operator.out))] == [first]
    assert await operator("list", "--status", "pending", "--status", "running") == 0
    [line] = operator.out
    assert line.startswith(f"{second}  pending")
    assert line.endswith("Summarise the release")
    assert await operator("list", "--limit", "1", "--json") == 0
    assert [w["workflow_id"] for w in json.loads("\n".join(operator.out))] == [second]

    assert await operator("delete", second) == 2  # still running: cancel it first
    assert "409" in operator.err[0]
    assert await operator("delete", first) == 0
    assert operator.out == [f"Deleted workflow {first}."]
    assert await operator("get", first) == 2
    assert operator.err == [f"error: the gateway answered 404: workflow '{first}' not found"]


async def test_run_of_a_workflow_cancelled_meanwhile_exits_1(
    operator: Operator, store: MemoryWorkflowStore
) -> None:
    running = asyncio.create_task(operator("run", "a long one", "--plain"))
    for _ in range(2000):  # until the command has started it
        if store.records:
            break
        await asyncio.sleep(0.01)
    [workflow_id] = store.records
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id, reason="stop")))
    assert await asyncio.wait_for(running, timeout=20) == 1
    assert operator.out[-2:] == [
        f"Workflow {workflow_id} cancelled (0 tokens, $0.0000).",
        "Error: stop",
    ]


async def test_events_follows_the_stream_to_its_end(operator: Operator) -> None:
    workflow_id = await _started(operator, "Compare three databases")
    assert await operator("cancel", workflow_id, "--reason", "enough") == 0
    assert await operator("events", workflow_id) == 1  # it was cancelled
    assert [line.split()[1:] for line in operator.out] == [
        ["workflow.requested", "Compare", "three", "databases"],
        ["workflow.cancelled", "enough"],
    ]
    assert await operator("events", "follow", workflow_id, "--calls") == 1
    assert len(operator.out) == 2


async def test_a_refused_request_exits_2_with_the_gateways_explanation(operator: Operator) -> None:
    assert await operator("run", "   ", "--no-follow") == 2
    [refusal] = operator.err
    assert refusal.startswith("error: the gateway answered 422:")
    assert await operator("get", "wf_nothing") == 2
    assert await operator("run", "t", "--api-key", "trb_not_a_key") == 2
    assert operator.err[0].startswith("error: the gateway answered 401:")
    assert "trb_not_a_key" not in operator.err[0]


async def test_input_to_an_unknown_request_exits_2_with_the_gateways_answer(
    operator: Operator,
) -> None:
    workflow_id = await _started(operator, "Compare three databases")
    assert await operator("input", workflow_id, "rq_1", "yes") == 2
    [refusal] = operator.err
    assert refusal.startswith("error: the gateway answered 404:")
