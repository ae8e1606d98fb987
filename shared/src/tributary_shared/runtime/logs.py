"""Structured JSON logs; every line about a workflow carries its workflow id.

The workflow id travels in a context variable set by the consumer runtime and
the gateway, so code deep in a call stack logs it without passing it around.
Secrets never reach a log line: ``redact`` masks bearer tokens and API keys in
messages as a last line of defence.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

workflow_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "workflow_id", default=None
)

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|authorization|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{8,}"),
)


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "[REDACTED]", text)
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, instance: str) -> None:
        super().__init__()
        self._service = service
        self._instance = instance

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if self._instance:
            entry["instance"] = self._instance
        workflow_id = getattr(record, "workflow_id", None) or workflow_id_var.get()
        if workflow_id:
            entry["workflow_id"] = workflow_id
        for key in ("step_id", "event_type", "event_id", "error_code", "topic"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(service: str, *, level: str = "INFO", instance: str = "") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service, instance))
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
