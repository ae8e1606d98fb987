"""Tracing: the trace context goes out in Kafka headers and comes back as the parent of the
consumer's span; model and tool calls get their spans; log lines name step and trace.

Spans are collected by an in-memory exporter on the process's tracer provider (set once
for the test process: OpenTelemetry allows one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from tests.support.gateway_twins import app_over_twins
from tests.support.harness import Harness
from tests.support.keys import bearer, issue
from tests.support.scripted import ScriptedEndpoint, rule
from tributary_agent_runner.tools.registry import Tool
from tributary_gateway.app import trace_requests
from tributary_shared.core import machine
from tributary_shared.core.completions import Completion
from tributary_shared.core.errors import TransientError
from tributary_shared.core.events import (
    AnyEvent,
    TokenUsage,
    WorkflowCancelled,
    WorkflowRequested,
    encode_event,
    home_topic,
)
from tributary_shared.runtime.kafka.consumer import ConsumerConfig, EventConsumer
from tributary_shared.runtime.kafka.publisher import KafkaEventPublisher
from tributary_shared.runtime.logs import JsonFormatter, step_context, workflow_context
from tributary_shared.runtime.settings import TracingSettings
from tributary_shared.runtime.tracing import configure_tracing, traced_llm_call
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


tracer = trace.get_tracer("tests")


class Broker:
    """Takes every publish and acknowledges it at once, keeping what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(
        self, value: bytes, topic: str, *, key: bytes, headers: dict[str, str], no_confirm: bool
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, dict(headers)))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def request(workflow_id: str = "wf_" + "a" * 32) -> WorkflowRequested:
    return WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="Summarise")


def record_of(topic: str, value: bytes, headers: dict[str, str]) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"wf",
        value=value,
        checksum=None,
        serialized_key_size=2,
        serialized_value_size=len(value),
        headers=tuple((name, text.encode()) for name, text in headers.items()),
    )


def traceparent(headers: dict[str, str]) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C ``traceparent`` header."""
    version, trace_id, span_id, _flags = headers["traceparent"].split("-")
    assert version == "00"
    return trace_id, span_id


def ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def parent_id(span: ReadableSpan) -> str | None:
    return format(span.parent.span_id, "016x") if span.parent is not None else None


def named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name.startswith(prefix)]


async def test_a_publish_in_a_trace_carries_it_in_the_headers(
    spans: InMemorySpanExporter,
) -> None:
    broker = Broker()
    event = request()
    with tracer.start_as_current_span("request") as outer:
        await KafkaEventPublisher(cast(KafkaBroker, broker)).publish([event])
    [(topic, _value, headers)] = broker.sent
    [send] = named(spans, "send ")
    assert send.name == f"send {topic}"
    assert send.kind is trace.SpanKind.PRODUCER
    assert parent_id(send) == format(outer.get_span_context().span_id, "016x")
    # The header names the send span: the consumer's span becomes its child.
    assert traceparent(headers) == ids(send)
    assert send.attributes is not None
    assert send.attributes["messaging.message.id"] == event.event_id
    assert send.attributes["tributary.workflow.id"] == event.workflow_id
    assert headers["event_id"] == event.event_id  # the event's own headers are all there


async def test_a_publish_outside_any_trace_starts_none(spans: InMemorySpanExporter) -> None:
    broker = Broker()
    await KafkaEventPublisher(cast(KafkaBroker, broker)).publish([request()])
    [(_topic, _value, headers)] = broker.sent
    assert "traceparent" not in headers
    assert spans.get_finished_spans() == ()


async def test_what_a_handler_publishes_continues_the_trace_of_what_it_consumed(
    spans: InMemorySpanExporter,
) -> None:
    broker = Broker()
    publisher = KafkaEventPublisher(cast(KafkaBroker, broker))
    with tracer.start_as_current_span("request"):
        await publisher.publish([request()])
    [(topic, value, headers)] = broker.sent

    async def handler(event: AnyEvent) -> None:
        logging.getLogger("tests.handler").info("handling")
        await publisher.publish([request(event.workflow_id)])

    consumer = EventConsumer(
        ConsumerConfig(
            group_id="planner", topics=(topic,), bootstrap_servers="127.0.0.1:1", client_id="t"
        ),
        handler=handler,
        publish_raw=_refuse_raw,
    )
    await consumer._process(TopicPartition(topic, 0), record_of(topic, value, headers))

    [first_send, second_send] = named(spans, "send ")
    [process] = named(spans, "process ")
    assert process.name == f"process {topic}"
    assert process.kind is trace.SpanKind.CONSUMER
    assert ids(process)[0] == ids(first_send)[0], "the consumer started a trace of its own"
    assert parent_id(process) == ids(first_send)[1]
    assert parent_id(second_send) == ids(process)[1]
    _topic, _value, next_headers = broker.sent[1]
    assert traceparent(next_headers) == ids(second_send)
    assert process.attributes is not None
    assert process.attributes["messaging.consumer.group.name"] == "planner"
    assert process.attributes["messaging.kafka.offset"] == 7


async def _refuse_raw(topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> None:
    raise AssertionError("nothing is dead-lettered here")


async def test_a_dead_lettered_record_marks_its_span_failed(spans: InMemorySpanExporter) -> None:
    event = request()
    topic = home_topic(event)

    async def failing(_event: AnyEvent) -> None:
        raise RuntimeError("broken")

    async def publish_raw(*_args: Any) -> None:
        return None

    consumer = EventConsumer(
        ConsumerConfig(
            group_id="planner",
            topics=(topic,),
            bootstrap_servers="127.0.0.1:1",
            client_id="t",
            attempts=1,
        ),
        handler=failing,
        publish_raw=publish_raw,
    )
    await consumer._process(TopicPartition(topic, 0), record_of(topic, encode_event(event), {}))
    [process] = named(spans, "process ")
    assert process.status.status_code is trace.StatusCode.ERROR
    assert process.attributes is not None
    assert process.attributes["error.type"] == "handler_failed"
    assert process.attributes["tributary.error.class"] == "internal"


# -- model and tool calls ---------------------------------------------------------------------


async def test_a_model_call_span_carries_model_and_tokens(spans: InMemorySpanExporter) -> None:
    async def answer() -> Completion:
        return Completion(
            content="hi",
            tool_calls=(),
            finish_reason="stop",
            model="gpt-x-2026",
            usage=TokenUsage(prompt_tokens=12, completion_tokens=5),
        )

    await traced_llm_call(answer(), role="agent", model="gpt-x", deployment="primary")
    [chat] = named(spans, "chat ")
    assert chat.name == "chat gpt-x"
    assert chat.kind is trace.SpanKind.CLIENT
    assert dict(chat.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-x",
        "gen_ai.response.model": "gpt-x-2026",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "tributary.llm.role": "agent",
        "tributary.llm.deployment": "primary",
    }


async def test_a_failed_model_call_span_names_the_error_not_its_message(
    spans: InMemorySpanExporter,
) -> None:
    async def rate_limited() -> Completion:
        raise TransientError("slow down, key sk-secret", code="llm_rate_limited")

    with pytest.raises(TransientError):
        await traced_llm_call(rate_limited(), role="agent", model="gpt-x", deployment="primary")
    [chat] = named(spans, "chat ")
    assert chat.status.status_code is trace.StatusCode.ERROR
    assert chat.attributes is not None
    assert chat.attributes["error.type"] == "llm_rate_limited"
    assert chat.attributes["tributary.error.class"] == "transient"
    assert "sk-secret" not in str(chat.to_json())


class LookupArgs(BaseModel):
    query: str


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    yield scripted
    await scripted.aclose()


async def test_a_workflow_gets_model_and_tool_spans_and_step_log_lines(
    spans: InMemorySpanExporter, endpoint: ScriptedEndpoint
) -> None:
    """The real handlers, in-process: each model request gets a chat span with its tokens,
    each tool call an execute_tool span, and the agent-runner's lines name their step."""
    lookups: list[str] = []

    async def lookup(args: LookupArgs) -> str:
        logging.getLogger("tests.lookup").warning("looking up %s", args.query)
        lookups.append(args.query)
        return "found it"

    tool = Tool(name="lookup", description="Look up.", args_model=LookupArgs, run=lookup)
    endpoint.add_rule(
        rule(
            {"tool_calls": [{"name": "lookup", "arguments": {"query": "q"}}]},
            has_tools=True,
            has_tool_result=False,
        )
    )
    lines = _JsonLines()
    root = logging.getLogger()
    root.addHandler(lines)
    try:
        async with Harness(endpoint, tools=[tool]).running() as harness:
            with tracer.start_as_current_span("workflow") as outer:
                await harness.submit("collect alpha; collect beta")
                await harness.run()
    finally:
        root.removeHandler(lines)

    trace_id = format(outer.get_span_context().trace_id, "032x")
    chats = named(spans, "chat ")
    assert len(chats) == len(endpoint.requests)  # one span per request the model received
    for chat in chats:
        assert chat.attributes is not None
        assert chat.attributes["gen_ai.request.model"]
        assert cast(int, chat.attributes["gen_ai.usage.input_tokens"]) > 0
        assert ids(chat)[0] == trace_id
    tool_spans = named(spans, "execute_tool ")
    assert len(tool_spans) == len(lookups) > 0  # one per call the tool really ran
    for span in tool_spans:
        assert span.name == "execute_tool lookup"
        assert span.attributes is not None
        assert span.attributes["gen_ai.tool.name"] == "lookup"
        assert span.attributes["gen_ai.tool.call.id"]
        assert span.status.status_code is not trace.StatusCode.ERROR
    from_the_tool = [line for line in lines.entries if line["logger"] == "tests.lookup"]
    assert len(from_the_tool) == len(lookups)
    for line in from_the_tool:
        assert line["step_id"]  # (the workflow id is the consumer runtime's to set)
        assert line["trace_id"] == trace_id


class _JsonLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("agent-runner", "agent-runner-0"))
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(self.format(record)))


async def test_a_failed_tool_call_marks_its_span(
    spans: InMemorySpanExporter, endpoint: ScriptedEndpoint
) -> None:
    async def broken(args: LookupArgs) -> str:
        raise RuntimeError("down")

    tool = Tool(name="lookup", description="Look up.", args_model=LookupArgs, run=broken)
    endpoint.add_rule(
        rule(
            {"tool_calls": [{"name": "lookup", "arguments": {"query": "q"}}]},
            has_tools=True,
            has_tool_result=False,
        )
    )
    async with Harness(endpoint, tools=[tool]).running() as harness:
        await harness.submit("collect alpha")
        await harness.run()
    tool_spans = named(spans, "execute_tool ")
    assert tool_spans
    for span in tool_spans:
        assert span.status.status_code is trace.StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "tool_failed"
        assert span.attributes["tributary.error.class"] == "tool"


# -- logs ---------------------------------------------------------------------------------


def format_line(message: str) -> dict[str, Any]:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, message, (), None)
    return cast(dict[str, Any], json.loads(JsonFormatter("agent-runner", "ar-0").format(record)))


def test_a_log_line_names_its_workflow_step_and_trace(spans: InMemorySpanExporter) -> None:
    with (
        workflow_context("wf_1"),
        step_context("step-2"),
        tracer.start_as_current_span("work") as span,
    ):
        line = format_line("working")
    context = span.get_span_context()
    assert line["workflow_id"] == "wf_1"
    assert line["step_id"] == "step-2"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert line["service"] == "agent-runner"


def test_a_log_line_outside_a_step_and_a_trace_names_neither() -> None:
    with workflow_context("wf_1"):
        line = format_line("working")
    assert line["workflow_id"] == "wf_1"
    assert "step_id" not in line
    assert "trace_id" not in line


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "exporter", "url"),
    [
        ({}, None, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "otlp", "http://c:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/spans",
            },
            "otlp",
            "http://t:4318/spans",
        ),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console", None),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp", None),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, None, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, None, None),
    ],
)
def test_tracing_is_on_only_with_an_exporter(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], exporter: str | None, url: str | None
) -> None:
    for name in TracingSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = TracingSettings()
    assert settings.exporter() == exporter
    if exporter == "otlp":
        assert settings.otlp_traces_url() == url


def test_without_an_exporter_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TracingSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    before = trace.get_tracer_provider()
    assert configure_tracing("planner", TracingSettings()) is False
    assert trace.get_tracer_provider() is before


def test_a_grpc_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ValueError, match="http/protobuf"):
        TracingSettings()


async def test_a_request_span_records_its_url_with_the_stream_token_masked(
    spans: InMemorySpanExporter,
) -> None:
    store, keys = MemoryWorkflowStore(), MemoryApiKeyStore()
    workflow_id = f"wf_{uuid.uuid4().hex}"
    await store.create_workflow(
        WorkflowRequested(workflow_id=workflow_id, tenant_id="acme", task="t"),
        deadline_at=time.time() + 600,
    )
    await store.apply(machine.cancel(WorkflowCancelled(workflow_id=workflow_id)))
    key = await issue(keys, "acme")
    async with app_over_twins(store=store, publisher=MemoryPublisher(), keys=keys) as app:
        trace_requests(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            issued = await client.post(
                f"/v1/workflows/{workflow_id}/stream-token", headers=bearer(key)
            )
            token = issued.json()["token"]
            streamed = await client.get(issued.json()["stream_url"])

    assert streamed.status_code == 200
    recorded = [
        str(value)
        for span in spans.get_finished_spans()
        for value in (span.attributes or {}).values()
    ]
    assert any(f"/v1/workflows/{workflow_id}/events?token=" in value for value in recorded)
    assert not [value for value in recorded if token in value]
