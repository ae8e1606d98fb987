"""Hostile tool input on the real agent-runner: it stays responsive and keeps its partitions.

A model can be steered, by a page it read say, into a calculator expression
that takes seconds to minutes to compute (``round(1, -10**7)`` builds
``10**10_000_000``) or into fetching 10 MiB of tag soup, which costs seconds
of CPU to turn into text. Computed on the event loop, either stalls the
runner: its health probe stops answering and, past the Kafka session timeout,
the broker takes its partitions away and its steps are delivered again.

Here such steps run on the real services (this module's own processes) while
the test polls the runner's ``/health``. Every poll must be answered quickly;
the runner's consumer must still be the group's only member under the same
member id, assigned partitions once; and every workflow must complete, its
model having received the tools' errors as tool results.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.client import GatewayClient
from tests.support.recovery import (
    assert_each_completed_exactly_once,
    start_many,
    wait_until_all_end,
)
from tests.support.stack import RunningServices, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMAdmin, ScriptedLLMServer
from tributary_shared.core.topology import subscription

pytestmark = pytest.mark.integration

HOSTILE_EXPRESSION = "round(1, -10**7)"
SOUP_BYTES = 10 * 1024 * 1024
# About 0.7 s per MiB to turn into text on a 2-core test machine; fetch_url
# reads the first MiB. The test's conversion limit is far below that, so
# the hard stop (the worker process killed) is what the model gets to see.
SOUP_UNIT = b"<p><b><i><u><s>"
HTML_TO_TEXT_LIMIT_S = 0.2
# The loop answers /health in milliseconds; the calculator or a conversion
# on the loop would hold it for seconds. Generous for a loaded machine.
HEALTH_ANSWERS_WITHIN_S = 1.5
RUNNER_GROUP = subscription("agent-runner").group_id


@dataclass
class SoupSite:
    """A local web server whose one page is 10 MiB of tag soup; counts the fetches."""

    port: int
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/soup.html"


@pytest.fixture(scope="module")
def soup_site() -> Iterator[SoupSite]:
    body = b"<html><head><title>soup</title></head><body>"
    body += SOUP_UNIT * ((SOUP_BYTES - len(body)) // len(SOUP_UNIT))
    site = SoupSite(port=0)

    class Soup(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with site.lock:
                site.fetches += 1
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # fetch_url stops reading after its first MiB and hangs up.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Soup)
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="soup-site", daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def hostile_services(
    exclusive_topics: Stack, llm: ScriptedLLMServer, soup_site: SoupSite
) -> Iterator[RunningServices]:
    running = start_services(
        exclusive_topics,
        llm_base_url=llm.base_url,
        label="hostile",
        extra_env={
            # The soup site is on loopback, which fetch_url refuses unless listed.
            "TRIBUTARY_AGENT_FETCH_URL_ALLOWED_TARGETS": json.dumps(
                [f"127.0.0.1:{soup_site.port}"]
            ),
            "TRIBUTARY_AGENT_HTML_TO_TEXT_TIMEOUT_S": str(HTML_TO_TEXT_LIMIT_S),
        },
    )
    yield running
    running.stop()


@dataclass
class HealthPoller:
    """Asks a service's /health over and over; keeps how long each answer took."""

    url: str
    answers: list[tuple[int, float]] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while True:
                started = time.perf_counter()
                try:
                    status = (await client.get(self.url)).status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((status, time.perf_counter() - started))
                self.answered.set()
                await asyncio.sleep(0.05)

    async def one_more(self, *, within: float = 30) -> None:
        """Wait for an answer to a poll sent from now on: a stall going on is measured too."""
        async with asyncio.timeout(within):
            for _ in range(2):  # the first may answer a poll sent before
                self.answered.clear()
                await self.answered.wait()


async def group_members(bootstrap: str, group_id: str) -> tuple[str, list[str]]:
    """The consumer group's state (``Stable``, ``PreparingRebalance``, ...) and member ids."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses: list[Any] = await admin.describe_consumer_groups([group_id])
    finally:
        await admin.close()
    _error, _group, state, _protocol_type, _protocol, members = responses[0].groups[0][:6]
    return str(state), [str(member[0]) for member in members]


async def the_one_stable_member(bootstrap: str, *, within: float = 60) -> str:
    """Wait until the runner is the group's only member and the group is stable."""
    deadline = time.monotonic() + within
    while True:
        state, members = await group_members(bootstrap, RUNNER_GROUP)
        if state == "Stable" and len(members) == 1:
            return members[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"group {RUNNER_GROUP} not settled: {state} {members}")
        await asyncio.sleep(0.5)


def assignments_since_start(log: str) -> int:
    """How often the process that wrote the log's last run was assigned partitions."""
    last_run = log.rsplit("===== ", 1)[-1]
    return last_run.count("partitions assigned")


def tool_results(admin: ScriptedLLMAdmin, tag: str) -> list[str]:
    """What the model was given as tool results in the calls that mention ``tag``."""
    return [
        str(message.get("content"))
        for request in admin.requests(contains=tag)
        for message in request.messages
        if message.get("role") == "tool"
    ]


def call_tool(name: str, arguments: dict[str, str]) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


async def test_hostile_tool_input_neither_stalls_the_runner_nor_costs_it_its_partitions(
    hostile_services: RunningServices,
    llm_admin: ScriptedLLMAdmin,
    soup_site: SoupSite,
    marker: str,
    api_key: str,
) -> None:
    bootstrap = f"127.0.0.1:{hostile_services.stack.config.kafka_port}"
    runner = hostile_services.process("agent-runner")
    member = await the_one_stable_member(bootstrap)
    for tag, call in (
        (f"{marker}-calc", call_tool("calculator", {"expression": HOSTILE_EXPRESSION})),
        (f"{marker}-soup", call_tool("fetch_url", {"url": soup_site.url})),
    ):
        # The agent's first call asks for the tool; after the result it answers by itself.
        llm_admin.add_rule(contains=tag, has_tools=True, has_tool_result=False, responses=[call])

    poller = HealthPoller(f"{runner.url}/health")
    polling = asyncio.create_task(poller.run())
    client = GatewayClient(hostile_services.gateway_url, api_key)
    try:
        hostile = {
            f"{marker}-{kind}-{i}": await client.start(f"Work on this {marker}-{kind}-{i}")
            for kind in ("calc", "soup")
            for i in range(2)
        }
        ordinary = await start_many(client, 2, marker)  # other steps of the same replica
        states = await wait_until_all_end(client, [*hostile.values(), *ordinary], within=120)
        await assert_each_completed_exactly_once(client, ordinary)
        await poller.one_more()
    finally:
        polling.cancel()
        await client.aclose()

    slow = [answer for answer in poller.answers if answer[1] > HEALTH_ANSWERS_WITHIN_S]
    assert len(poller.answers) >= 3
    assert slow == []
    assert {status for status, _ in poller.answers} == {200}

    assert await group_members(bootstrap, RUNNER_GROUP) == ("Stable", [member])
    assert assignments_since_start(runner.log_path.read_text()) == 1

    for tag, workflow_id in hostile.items():
        state = states[workflow_id]
        assert state["status"] == "completed", (tag, state.get("error"))
        steps: list[dict[str, Any]] = state["steps"]  # type: ignore[assignment]
        assert [(s["status"], s["attempt"]) for s in steps] == [("completed", 1)]  # never re-run
    for i in range(2):
        [calc] = tool_results(llm_admin, f"{marker}-calc-{i}")
        assert "round() takes at most 300 digits" in calc
        [soup] = tool_results(llm_admin, f"{marker}-soup-{i}")
        assert f"could not be turned into text within {HTML_TO_TEXT_LIMIT_S:g}s" in soup
    assert soup_site.fetches == 2
