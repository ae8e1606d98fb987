"""Structured JSON logs; every line about a workflow carries its workflow id.

The workflow id travels in a context variable set by the consumer runtime and
the gateway, so code deep in a call stack logs it without passing it around;
the step id likewise while the agent-runner runs a step (``step_context``).
With tracing on (``runtime.tracing``), a line written inside a span carries its
``trace_id`` and ``span_id``, to find the line's trace and the trace's lines.
Secrets never reach a log line: each message and traceback is redacted
(``core.redaction``: credentials, ``password=``-style values, passwords in
URLs, keys by their configured prefixes) as it is formatted.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from tributary_shared.core.redaction import DEFAULT_REDACTOR
from tributary_shared.runtime.tracing import current_trace_ids

__all__ = [
    "JsonFormatter",
    "configure_logging",
    "step_context",
    "step_id_var",
    "workflow_context",
    "workflow_id_var",
]

workflow_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "workflow_id", default=None
)
step_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("step_id", default=None)
"""The step an agent-runner task works on; set for the task that runs the step."""


class JsonFormatter(logging.Formatter):
    def __init__(
        self, service: str, instance: str, *, redact: Callable[[str], str] = DEFAULT_REDACTOR
    ) -> None:
        super().__init__()
        self._service = service
        self._instance = instance
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
        }
        if self._instance:
            entry["instance"] = self._instance
        workflow_id = getattr(record, "workflow_id", None) or workflow_id_var.get()
        if workflow_id:
            entry["workflow_id"] = workflow_id
        step_id = getattr(record, "step_id", None) or step_id_var.get()
        if step_id:
            entry["step_id"] = step_id
        trace_ids = current_trace_ids()
        if trace_ids is not None:
            entry["trace_id"], entry["span_id"] = trace_ids
        for key in ("event_type", "event_id", "error_code", "topic"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self._redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(
    service: str,
    *,
    level: str = "INFO",
    instance: str = "",
    redact: Callable[[str], str] = DEFAULT_REDACTOR,
) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service, instance, redact=redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter at INFO drowns the workflow lines that matter.
    for noisy in ("aiokafka", "httpx", "httpx2", "openai", "uvicorn.access", "faststream"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@contextmanager
def workflow_context(workflow_id: str) -> Iterator[None]:
    token = workflow_id_var.set(workflow_id)
    try:
        yield
    finally:
        workflow_id_var.reset(token)


@contextmanager
def step_context(step_id: str) -> Iterator[None]:
    """Names the step in every log line of the code run inside, and of the tasks it
    starts (they copy the context)."""
    token = step_id_var.set(step_id)
    try:
        yield
    finally:
        step_id_var.reset(token)
