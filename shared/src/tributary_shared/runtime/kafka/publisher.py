"""Publishing events to their home topics, keyed by workflow id.

The producer is idempotent with ``acks=all``: an acknowledged event survives
a broker restart, and the producer's own retries never duplicate it.

While the broker is away, a publish waits: aiokafka gives up on a batch only
when its partition has no known leader, and a stopped broker stays the known
leader, so the producer sends the batch again until the broker returns. That
suits a consumer's handler, which waits an outage out anyway. A caller that
must answer meanwhile (the gateway's HTTP requests) bounds the wait with
``ack_timeout_s``; what it gave up on may still arrive once Kafka is back,
under its own event id, so a copy sent again later is recognised.

A publish made inside a trace carries its context in the W3C ``traceparent``
header (``runtime.tracing``), beside the headers of ``event_headers``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from faststream.kafka import KafkaBroker

from tributary_shared.core.events import EventEnvelope, encode_event, home_topic
from tributary_shared.runtime.kafka.security import PLAINTEXT, KafkaSecurity
from tributary_shared.runtime.tracing import publishing, with_trace_context

__all__ = [
    "ACK_TIMEOUT_S",
    "EventPublisher",
    "KafkaEventPublisher",
    "event_headers",
    "make_broker",
]

ACK_TIMEOUT_S = 15.0
"""Seconds a reachable broker has to answer a produce request; a bounded publish waits as
long for its acknowledgement."""


class EventPublisher(Protocol):
    async def publish(self, events: Iterable[EventEnvelope]) -> None: ...


def event_headers(event: EventEnvelope) -> dict[str, str]:
    return {
        "event_type": event.type,
        "event_id": event.event_id,
        "schema_version": str(event.schema_version),
        "workflow_id": event.workflow_id,
        "tenant_id": event.tenant_id,
    }


def make_broker(
    bootstrap_servers: str, *, client_id: str, security: KafkaSecurity = PLAINTEXT
) -> KafkaBroker:
    """The process's producer; ``security`` comes from ``kafka_security`` (plaintext only
    in tests: a unit test holds every call of the code base to passing it)."""
    return KafkaBroker(
        bootstrap_servers,
        security=security.broker_security(),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        request_timeout_ms=int(ACK_TIMEOUT_S * 1000),
        logger=None,
    )


class KafkaEventPublisher:
    """Publishes events; with ``ack_timeout_s``, raises ``TimeoutError`` (an outage) when
    Kafka has not acknowledged them in time, instead of waiting for as long as it is away."""

    def __init__(self, broker: KafkaBroker, *, ack_timeout_s: float | None = None) -> None:
        self._broker = broker
        self._ack_timeout_s = ack_timeout_s

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        async with asyncio.timeout(self._ack_timeout_s):
            await self._publish(events)

    async def _publish(self, events: Iterable[EventEnvelope]) -> None:
        # Send all, then await acknowledgements: one round trip for a batch.
        pending = []
        for event in events:
            topic = home_topic(event)
            with publishing(topic, event):
                ack = await self._broker.publish(
                    encode_event(event),
                    topic,
                    key=event.workflow_id.encode(),
                    headers=with_trace_context(event_headers(event)),
                    no_confirm=True,
                )
            pending.append(ack)
        for ack in pending:
            await ack

    async def publish_raw(
        self, topic: str, value: bytes, *, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await self._broker.publish(value, topic, key=key, headers=headers)
