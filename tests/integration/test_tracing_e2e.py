"""One workflow is one trace, across the real processes: the gateway's request, the planner,
the agent-runner (its model and tool calls) and the synthesizer.

The module's own gateway and workers export OTLP/HTTP to a receiver the test runs
(the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``); the spans are decoded with the
OpenTelemetry protobuf definitions, as a collector would.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.client import GatewayClient
from tests.support.stack import RunningServices, free_port, start_services
from tributary_devstack.stack import Stack
from tributary_scripted_llm import ScriptedLLMServer

pytestmark = pytest.mark.integration

SERVICES = ("gateway", "planner", "agent-runner", "synthesizer")


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]


class Receiver:
    """An OTLP/HTTP trace receiver: keeps every span posted to ``/v1/traces``."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                receiver.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received = ReceivedSpan(
                        service=str(resource["service.name"]),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=Span.SpanKind.Name(span.kind),
                        attributes=_attributes(span.attributes),
                    )
                    with self._lock:
                        self.spans.append(received)

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def traces_of(self, workflow_id: str) -> set[str]:
        with self._lock:
            return {
                s.trace_id
                for s in self.spans
                if s.attributes.get("tributary.workflow.id") == workflow_id
            }


def _attributes(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    return {item.key: _plain(item.value) for item in attributes}


def _plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(inner) for inner in value.array_value.values]
    return getattr(value, kind) if kind is not None else None


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    received = Receiver()
    thread = threading.Thread(target=received.server.serve_forever, daemon=True)
    thread.start()
    yield received
    received.server.shutdown()
    received.server.server_close()


@pytest.fixture(scope="module")
def traced_services(
    exclusive_topics: Stack, llm: ScriptedLLMServer, receiver: Receiver
) -> Iterator[RunningServices]:
    running = start_services(
        exclusive_topics,
        llm_base_url=llm.base_url,
        label="traced",
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fraction of a second
        },
    )
    yield running
    running.stop()


@pytest.fixture
async def client(traced_services: RunningServices, api_key: str) -> AsyncIterator[GatewayClient]:
    gateway = GatewayClient(traced_services.gateway_url, api_key)
    yield gateway
    await gateway.aclose()


async def spans_of_one_trace(
    receiver: Receiver, workflow_id: str, *, within: float = 60
) -> list[ReceivedSpan]:
    """The spans of the workflow's trace, once every service, a model call and a tool call
    have reported; fails if the spans naming the workflow are in more than one trace."""
    deadline = time.monotonic() + within
    while True:
        traces = receiver.traces_of(workflow_id)
        if len(traces) == 1:
            spans = receiver.of_trace(next(iter(traces)))
            names = {s.name.split(" ")[0] for s in spans}
            ids = {s.span_id for s in spans}
            # Complete once no span waits for its parent (exports arrive in batches).
            whole = all(not s.parent_id or s.parent_id in ids for s in spans)
            services = {s.service for s in spans}
            if whole and services >= set(SERVICES) and {"chat", "execute_tool"} <= names:
                return spans
        assert time.monotonic() < deadline, (
            f"the workflow's spans are in {len(traces)} traces: "
            f"{sorted((s.service, s.name) for t in traces for s in receiver.of_trace(t))}"
        )
        await asyncio.sleep(0.2)


async def test_a_workflow_is_one_trace_from_the_request_to_the_answer(
    client: GatewayClient, receiver: Receiver, traced_services: RunningServices
) -> None:
    workflow_id, _events, final = await client.run("work out 17 * 23; then 6 + 7")
    assert final["status"] == "completed"

    spans = await spans_of_one_trace(receiver, workflow_id)
    by_id = {span.span_id: span for span in spans}
    # The root is the gateway's request span; every other span hangs under it.
    [root] = [span for span in spans if not span.parent_id]
    assert root.service == "gateway"
    assert root.kind == "SPAN_KIND_SERVER"
    # Each worker's process span is the child of the send span that published its event.
    for span in spans:
        if span.kind == "SPAN_KIND_CONSUMER":
            parent = by_id[span.parent_id]
            assert parent.kind == "SPAN_KIND_PRODUCER", span
            assert (
                parent.attributes["messaging.message.id"] == span.attributes["messaging.message.id"]
            )

    chats = [span for span in spans if span.name.startswith("chat ")]
    assert {span.service for span in chats} == {"planner", "agent-runner", "synthesizer"}
    for chat in chats:
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"]
        assert chat.attributes["gen_ai.response.model"]
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0
        assert chat.attributes["gen_ai.usage.output_tokens"] >= 0
    tools = [span for span in spans if span.name.startswith("execute_tool ")]
    assert {span.attributes["gen_ai.tool.name"] for span in tools} == {"calculator"}
    for tool in tools:
        assert tool.service == "agent-runner"
        assert tool.attributes["gen_ai.tool.call.id"]
        assert "error.type" not in tool.attributes

    # The agent-runner's log lines about the workflow carry its trace id and their step.
    trace_id = root.trace_id
    log_path = traced_services.process("agent-runner").record.log_path
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    about = [line for line in lines if line.get("workflow_id") == workflow_id]
    assert about, "the agent-runner logged nothing about the workflow"
    assert all(line.get("trace_id") == trace_id for line in about)
    assert any(line.get("step_id") for line in about)
