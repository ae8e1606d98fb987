"""The idempotency key of the side-effecting tool call being made.

The agent loop sets it around each call to a tool with side effects. It is
derived from the workflow, the step and the call (tool and canonical
arguments), so it is the same in every attempt of the step: a far side that
deduplicates on it acts once even when a runner died during the call and the
step's next attempt makes it again. Tools that can pass it on (MCP tools, in
the request's ``_meta``) read it with ``current_call_key``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["MCP_META_KEY", "call_key", "calling_with", "current_call_key"]

MCP_META_KEY = "io.tributary/idempotency-key"
"""Where MCP tool calls carry the key (a namespaced ``_meta`` field)."""

_NAMESPACE = uuid.UUID("0b5f7a42-9a55-4c61-8f37-6c1f0d1b6e2a")
_CURRENT: ContextVar[str | None] = ContextVar("tributary_tool_call_key", default=None)


def call_key(scope: str, fingerprint: str) -> str:
    """The key of one logical call within ``scope`` (the workflow and step)."""
    return uuid.uuid5(_NAMESPACE, f"{scope}/{fingerprint}").hex


def current_call_key() -> str | None:
    return _CURRENT.get()


@contextlib.contextmanager
def calling_with(key: str) -> Iterator[None]:
    token = _CURRENT.set(key)
    try:
        yield
    finally:
        _CURRENT.reset(token)
