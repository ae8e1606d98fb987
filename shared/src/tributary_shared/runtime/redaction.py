"""Ports that redact what they write: nothing secret reaches Redis or Kafka.

The workflow store, the publisher and the effect ledger are wrapped so that
every event, transition and recorded tool result they write has its free text
redacted first (``core.redaction``): a step result quoting a page's
``password=...``, an error message naming ``redis://user:pass@host``, a task
pasted with an API key in it. Because redacting is idempotent, an event
written to a workflow's log and the same event published stay equal, which
the workers' checks against the store (``core.provenance``) rely on.

Reads pass through: what was written is already redacted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from tributary_shared.core.events import EventEnvelope, WorkflowRequested
from tributary_shared.core.machine import Transition
from tributary_shared.core.ports import (
    EffectIntent,
    EffectLedger,
    EventPublisher,
    Ports,
    WorkflowStore,
)
from tributary_shared.core.records import Applied
from tributary_shared.core.redaction import Redactor, redact_event, redact_transition

__all__ = ["RedactingPublisher", "RedactingStore", "redacting"]


def redacting(ports: Ports, redactor: Redactor) -> Ports:
    """``ports`` whose store, publisher and effect ledger redact what they write."""
    return dataclasses.replace(
        ports,
        store=RedactingStore(ports.store, redactor),
        publisher=RedactingPublisher(ports.publisher, redactor),
        effects=_RedactingEffects(ports.effects, redactor),
    )


class RedactingPublisher:
    def __init__(self, inner: EventPublisher, redactor: Redactor) -> None:
        self._inner = inner
        self._redact = redactor

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        await self._inner.publish([redact_event(event, self._redact) for event in events])


class RedactingStore:
    def __init__(self, inner: WorkflowStore, redactor: Redactor) -> None:
        self._inner = inner
        self._redact = redactor

    async def create_workflow(
        self,
        event: WorkflowRequested,
        *,
        deadline_at: float,
        idempotency_key_value: str | None = None,
    ) -> str | None:
        return await self._inner.create_workflow(
            redact_event(event, self._redact),
            deadline_at=deadline_at,
            idempotency_key_value=idempotency_key_value,
        )

    async def apply(self, transition: Transition) -> Applied:
        return await self._inner.apply(redact_transition(transition, self._redact))

    async def write_notices(self, workflow_id: str, events: Sequence[EventEnvelope]) -> bool:
        return await self._inner.write_notices(
            workflow_id, [redact_event(event, self._redact) for event in events]
        )

    def __getattr__(self, name: str) -> Any:
        # Reads and the outbox's bookkeeping (ids only) pass through as they are:
        # what was written is redacted already. So do methods the port gains later.
        return getattr(self._inner, name)


class _RedactingEffects:
    def __init__(self, inner: EffectLedger, redactor: Redactor) -> None:
        self._inner = inner
        self._redact = redactor

    async def intend(self, *, workflow_id: str, step_id: str, fingerprint: str) -> EffectIntent:
        return await self._inner.intend(
            workflow_id=workflow_id, step_id=step_id, fingerprint=fingerprint
        )

    async def record(
        self, *, workflow_id: str, step_id: str, fingerprint: str, output: str
    ) -> None:
        await self._inner.record(
            workflow_id=workflow_id,
            step_id=step_id,
            fingerprint=fingerprint,
            output=self._redact(output),
        )
