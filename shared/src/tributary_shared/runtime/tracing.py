"""OpenTelemetry tracing: one workflow is one trace, from the HTTP request to the answer.

Off unless an exporter is configured (``TracingSettings``, the standard ``OTEL_*``
variables): then no tracer provider is installed, the API's tracer is a no-op,
and the helpers below cost a context look-up each.

How the trace travels: a publish made while a span is current (the gateway's
request span, a worker's ``process`` span) gets a ``send`` span and the W3C
``traceparent`` of it in the Kafka headers (``with_trace_context``); the consumer
runtime starts each record's ``process`` span as a child of what the headers
carry (``processing``), and the handler's LLM calls (``traced_llm_call``), tool
calls (``tool_call_span``) and publishes happen inside it. A publish with no
current span (the outbox sweep sending what a crash left unsent) starts no trace
of its own. A service whose tracing is off passes the context on all the same:
the API's non-recording span keeps the trace id it was given.

Why by hand rather than FastStream's or aiokafka's instrumentation: the consumer
runtime is aiokafka of its own (``kafka.consumer``), whose handlers run in tasks
of their own after ``getmany`` returns, where neither would make the record's
span current; the propagation API does, for publish and consume alike.

Span attributes follow the OpenTelemetry semantic conventions: ``messaging.*``
for Kafka, ``gen_ai.*`` for model and tool calls; what those do not cover is
under ``tributary.*``. No message text, prompt or tool output is recorded:
errors are named by their class and code only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Iterator, MutableMapping, Sequence
from typing import TYPE_CHECKING, Literal

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tributary_shared.core.completions import Completion
from tributary_shared.core.errors import ErrorClass, TributaryError
from tributary_shared.core.events import EventEnvelope
from tributary_shared.runtime.settings import TracingSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "TRACER_NAME",
    "configure_tracing",
    "current_trace_ids",
    "mark_failed",
    "processing",
    "publishing",
    "tool_call_span",
    "traced_llm_call",
    "with_trace_context",
]

TRACER_NAME = "tributary"
# A proxy: it follows whichever provider ``configure_tracing`` installs later.
_tracer = trace.get_tracer(TRACER_NAME)

KafkaHeaders = Sequence[tuple[str, bytes]]


def configure_tracing(service: str, settings: TracingSettings, *, instance: str = "") -> bool:
    """Install the process's tracer provider when an exporter is configured; True if so.

    Called once by each service's entry point. The sampler (``OTEL_TRACES_SAMPLER``),
    the batching (``OTEL_BSP_*``), the exporter's headers and timeout and extra resource
    attributes (``OTEL_RESOURCE_ATTRIBUTES``) are read by the SDK itself. Spans still
    queued are exported when the process exits.
    """
    exporter = settings.exporter()
    if exporter is None:
        return False
    # Imported here: a process with tracing off never loads the SDK.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {"service.name": settings.otel_service_name or service}
    if instance:
        attributes["service.instance.id"] = instance
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(_exporter(exporter, settings)))
    trace.set_tracer_provider(provider)
    return True


def _exporter(kind: Literal["otlp", "console"], settings: TracingSettings) -> SpanExporter:
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )

    return OTLPSpanExporter(endpoint=settings.otlp_traces_url())


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids in hex (as tracing backends show them), or None."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# -- Kafka ------------------------------------------------------------------------------


@contextlib.contextmanager
def publishing(topic: str, event: EventEnvelope) -> Iterator[None]:
    """The ``send`` span of one event, when a trace is under way (else nothing)."""
    if not trace.get_current_span().get_span_context().is_valid:
        yield
        return
    with _tracer.start_as_current_span(
        f"send {topic}",
        kind=SpanKind.PRODUCER,
        attributes=_messaging(topic, event, operation="send"),
    ):
        yield


def with_trace_context(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus the current trace context (``traceparent``; nothing without one)."""
    propagate.inject(headers)
    return headers


@contextlib.contextmanager
def processing(
    topic: str,
    event: EventEnvelope,
    headers: KafkaHeaders | None,
    *,
    group: str,
    partition: int,
    offset: int,
) -> Iterator[Span]:
    """The ``process`` span of one consumed record, a child of the span that published it
    (what its headers carry); every retry of its handler runs inside it."""
    carrier: MutableMapping[str, str] = {
        key: value.decode("latin-1") for key, value in headers or () if value is not None
    }
    with _tracer.start_as_current_span(
        f"process {topic}",
        context=propagate.extract(carrier),
        kind=SpanKind.CONSUMER,
        attributes={
            **_messaging(topic, event, operation="process"),
            "messaging.consumer.group.name": group,
            "messaging.destination.partition.id": str(partition),
            "messaging.kafka.offset": offset,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def _messaging(topic: str, event: EventEnvelope, *, operation: str) -> dict[str, str]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.name": operation,
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
        "messaging.message.id": event.event_id,
        "messaging.kafka.message.key": event.workflow_id,
        "tributary.workflow.id": event.workflow_id,
        "tributary.event.type": event.type,
    }


# -- model and tool calls ---------------------------------------------------------------


def mark_failed(span: Span | None = None, *, error_type: str, error_class: str) -> None:
    """Mark ``span`` (default: the current one) failed by the error's code and class
    (never its message, which may quote a prompt or a tool's output)."""
    span = span or trace.get_current_span()
    span.set_attributes({"error.type": error_type, "tributary.error.class": str(error_class)})
    span.set_status(Status(StatusCode.ERROR, error_type))


def _mark_raised(span: Span, error: Exception) -> None:
    if isinstance(error, TributaryError):
        mark_failed(span, error_type=error.code, error_class=error.error_class.value)
    else:
        mark_failed(
            span, error_type=type(error).__qualname__, error_class=ErrorClass.INTERNAL.value
        )


async def traced_llm_call(
    call: Awaitable[Completion], *, role: str, model: str, deployment: str
) -> Completion:
    """Await one request to a model inside its ``chat`` span (GenAI conventions)."""
    with _tracer.start_as_current_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            # The API spoken: any OpenAI-compatible endpoint.
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "tributary.llm.role": role,
            "tributary.llm.deployment": deployment,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            completion = await call
        except Exception as error:
            _mark_raised(span, error)
            raise
        span.set_attributes(
            {
                "gen_ai.response.model": completion.model,
                "gen_ai.response.finish_reasons": [completion.finish_reason],
                "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
                "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
            }
        )
        return completion


@contextlib.contextmanager
def tool_call_span(name: str, *, call_id: str) -> Iterator[Span]:
    """The ``execute_tool`` span of one tool call (GenAI conventions); a failure the
    caller handles is marked with ``mark_failed``, one that escapes is marked here."""
    with _tracer.start_as_current_span(
        f"execute_tool {name}",
        kind=SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as error:
            _mark_raised(span, error)
            raise
