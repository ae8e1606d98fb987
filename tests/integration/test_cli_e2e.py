"""``tributary`` as a user runs it, a process against the live stack's gateway.

A tenant of its own (so its listing holds exactly this test's workflows) runs
a workflow to its answer (exit 0), one the scripted model fails with a 401
(exit 1), and one the model holds, which it lists, cancels and deletes.
"""

from __future__ import annotations

import json
import uuid

import pytest
from redis.asyncio import Redis

from tests.support.cli_runs import Finished, cli_env, tributary
from tests.support.keys import issue
from tests.support.stack import RunningServices
from tributary_client import AsyncTributary
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMAdmin
from tributary_shared.core.access import Scope
from tributary_shared.runtime.apikeys import RedisApiKeyStore

pytestmark = pytest.mark.integration

SCOPES = [Scope.START, Scope.READ, Scope.CANCEL, Scope.DELETE]
TIMEOUT_S = 180


async def test_run_get_list_cancel_and_delete_from_the_command_line(
    stack: Stack, services: RunningServices, llm_admin: ScriptedLLMAdmin, marker: str
) -> None:
    redis = Redis.from_url(stack.config.redis_url)
    try:
        key = await issue(RedisApiKeyStore(redis), f"cli-{uuid.uuid4().hex[:8]}", scopes=SCOPES)
    finally:
        await redis.aclose()
    env = cli_env(stack, TRIBUTARY_URL=services.gateway_url, TRIBUTARY_API_KEY=key)

    async def run(*argv: str) -> Finished:
        finished = await tributary(env, *argv, timeout_s=TIMEOUT_S)
        assert key not in finished.stdout + finished.stderr
        return finished

    # To its answer: exit 0, the answer printed last, plain lines (stdout is a pipe).
    done = await run("run", f"What is 12 * 12? {marker}", "--plain")
    assert done.status == 0, done.stdout + done.stderr
    completed_id = done.stdout.split()[2]  # "Started workflow <id> at <url>"
    async with AsyncTributary(services.gateway_url, key) as client:
        workflow = await client.get(completed_id)
    assert (workflow.status, workflow.result is not None) == ("completed", True)
    assert done.stdout.rstrip("\n").endswith(f"Answer:\n{workflow.result}".rstrip("\n"))
    assert "tool.called" in done.stdout
    assert "calculator(" in done.stdout
    assert "\x1b[" not in done.stdout

    # The model refuses its key: the workflow fails, exit 1 with the error.
    llm_admin.add_rule(
        contains=f"{marker}-auth",
        responses=[{"status": 401, "error": {"message": "Invalid key sk-leaked-123456"}}],
    )
    failed = await run("run", f"Auth {marker}-auth", "--plain")
    assert failed.status == 1, failed.stdout + failed.stderr
    assert "Error: llm_auth_failed: the LLM endpoint rejected the API key" in failed.stdout
    assert "sk-leaked" not in failed.stdout

    # Held by the model: listed as running, cancelled, then deleted.
    llm_admin.add_rule(contains=f"hold {marker}", responses=[{"hang": True}])
    started = await run("run", f"Please hold {marker}", "--no-follow", "--metadata", "kind=held")
    assert started.status == 0, started.stderr
    held_id = started.stdout.strip()
    listing = await run("list", "--json")
    assert listing.status == 0, listing.stderr
    listed = {w["workflow_id"]: w["status"] for w in json.loads(listing.stdout)}
    assert listed.keys() == {completed_id, failed.stdout.split()[2], held_id}
    assert listed[completed_id] == "completed"
    ended = await run("list", "--json", "--status", "completed", "--status", "failed")
    assert held_id not in {w["workflow_id"] for w in json.loads(ended.stdout)}

    assert (await run("delete", held_id)).status == 2  # still running: the gateway's 409
    cancelled = await run("cancel", held_id, "--reason", "done with it")
    assert (cancelled.status, cancelled.stdout.strip()) == (
        0,
        f"Cancelled workflow {held_id}: done with it",
    )
    got = await run("get", held_id, "--json")
    assert (got.status, json.loads(got.stdout)["status"]) == (0, "cancelled")
    assert (await run("delete", held_id)).status == 0
    gone = await run("get", held_id)
    assert gone.status == 2
    assert "404" in gone.stderr
