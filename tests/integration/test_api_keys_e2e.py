"""API keys against the real gateway processes, Redis and the ``tributary`` command.

Tenant B gets, for tenant A's workflow, the 404 of an unknown id on every
route; a key revoked (by the command or over HTTP) is refused from the next
request on by every gateway replica; ``make up``'s admin key is issued once
and replaced when it stops working.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices, free_port
from tributary_devstack.admin_key import ensure_admin_key
from tributary_devstack.config import StackConfig
from tributary_devstack.process import ServiceProcess
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMAdmin
from tributary_shared.core.access import parse_key

pytestmark = pytest.mark.integration

UNKNOWN = "wf_" + "0" * 32
TRIBUTARY = Path(sys.executable).parent / "tributary"
"""The command the workspace installs (what ``uv run tributary`` runs)."""


async def tributary(redis_url: str, *argv: str) -> list[str]:
    """Run the ``tributary`` command against the test Redis; its output lines."""
    process = await asyncio.create_subprocess_exec(
        str(TRIBUTARY),
        *argv,
        env={**os.environ, "TRIBUTARY_REDIS_URL": redis_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


async def new_key(stack: Stack, tenant: str, *extra: str) -> str:
    """A key made with ``tributary keys create``: the last line it prints."""
    printed = await tributary(stack.config.redis_url, "keys", "create", "--tenant", tenant, *extra)
    key = printed[-1]
    assert parse_key(key) is not None, key
    return key


def key_id(key: str) -> str:
    presented = parse_key(key)
    assert presented is not None
    return presented.key_id


def tenant(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def second_gateway(services: RunningServices) -> AsyncIterator[str]:
    """Another gateway replica on its own port, over the same Redis and Kafka."""
    proc: ServiceProcess = services.stack.start_service(
        "gateway", port=free_port(), env=services.env, instance="e2e-gateway-2"
    )
    try:
        await asyncio.to_thread(proc.wait_healthy, 60)
        yield f"http://127.0.0.1:{proc.port}"
    finally:
        proc.terminate(grace=10)


async def test_tenant_b_cannot_read_stream_list_or_cancel_tenant_as_workflow(
    services: RunningServices, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    stack = services.stack
    a = GatewayClient(services.gateway_url, await new_key(stack, tenant("a")))
    b = GatewayClient(services.gateway_url, await new_key(stack, tenant("b")))
    try:
        # A's steps hang at the model, so A's workflow is running while B tries.
        llm_admin.add_rule(contains=marker, has_tools=True, responses=[{"hang": True}])
        workflow_id = await a.start(f"Part one {marker}; part two")
        await a.wait_for_status(workflow_id, "running")

        for method, suffix in [("GET", ""), ("GET", "/events"), ("POST", "/cancel")]:
            foreign = await b.http.request(method, f"/v1/workflows/{workflow_id}{suffix}")
            unknown = await b.http.request(method, f"/v1/workflows/{UNKNOWN}{suffix}")
            assert foreign.status_code == unknown.status_code == 404, (method, suffix)
            assert foreign.json()["detail"] == unknown.json()["detail"].replace(
                UNKNOWN, workflow_id
            )
        listed = (await b.http.get("/v1/workflows?limit=100")).json()
        assert workflow_id not in {w["workflow_id"] for w in listed["workflows"]}
        assert (await a.get(workflow_id))["status"] == "running", "B's cancel was refused"
        mine = (await a.http.get("/v1/workflows")).json()["workflows"]
        assert [w["workflow_id"] for w in mine] == [workflow_id]

        assert (await a.http.post(f"/v1/workflows/{workflow_id}/cancel")).status_code == 200
        assert (await a.follow(workflow_id))[-1].type == "workflow.cancelled"
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_revoked_key_is_refused_on_every_replica_from_the_next_request(
    services: RunningServices, second_gateway: str
) -> None:
    stack = services.stack
    redis_url = stack.config.redis_url
    replicas = [services.gateway_url, second_gateway]
    admin = await new_key(stack, tenant("ops"), "--admin", "--label", "e2e admin")
    by_command = await new_key(stack, tenant("c"))
    async with httpx.AsyncClient(timeout=10) as http:
        issued = await http.post(
            f"{replicas[0]}/v1/keys",
            json={"tenant_id": tenant("h"), "scopes": ["read"]},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert issued.status_code == 201, issued.text
        by_http = issued.json()["key"]

        async def answers(key: str) -> list[int]:
            headers = {"Authorization": f"Bearer {key}"}
            return [
                (await http.get(f"{url}/v1/workflows", headers=headers)).status_code
                for url in replicas
            ]

        assert await answers(by_command) == [200, 200]
        assert await answers(by_http) == [200, 200]

        assert await tributary(redis_url, "keys", "revoke", key_id(by_command)) == [
            f"Revoked key {key_id(by_command)}."
        ]
        assert await answers(by_command) == [401, 401]

        revoked = await http.delete(
            f"{replicas[1]}/v1/keys/{key_id(by_http)}",
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert revoked.status_code == 204
        assert await answers(by_http) == [401, 401]
        listed = await tributary(redis_url, "keys", "list")
        assert key_id(admin) in "\n".join(listed)
        assert key_id(by_http) not in "\n".join(listed)
    await tributary(redis_url, "keys", "revoke", key_id(admin))


@pytest.fixture
def local_stack(stack: Stack, tmp_path: Path) -> StackConfig:
    """The devstack's configuration over the test Redis, with a run directory of its own."""
    return StackConfig(run_dir=tmp_path / "run", redis_port=stack.config.redis_port)


async def test_make_ups_admin_key_is_issued_once_and_replaced_when_it_stops_working(
    local_stack: StackConfig, services: RunningServices
) -> None:
    key, issued = await asyncio.to_thread(ensure_admin_key, local_stack)
    assert issued
    assert local_stack.admin_key_file.read_text().strip() == key
    assert stat.S_IMODE(local_stack.admin_key_file.stat().st_mode) == 0o600
    assert await asyncio.to_thread(ensure_admin_key, local_stack) == (key, False)

    async with httpx.AsyncClient(base_url=services.gateway_url, timeout=10) as http:
        headers = {"Authorization": f"Bearer {key}"}
        assert (await http.get("/v1/keys", headers=headers)).status_code == 200
        await http.delete(f"/v1/keys/{key_id(key)}", headers=headers)
        assert (await http.get("/v1/keys", headers=headers)).status_code == 401

    replaced, issued = await asyncio.to_thread(ensure_admin_key, local_stack)
    assert issued
    assert replaced != key
    assert local_stack.admin_key_file.read_text().strip() == replaced
    await tributary(local_stack.redis_url, "keys", "revoke", key_id(replaced))
