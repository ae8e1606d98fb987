"""Publishing events to their home topics, keyed by workflow id.

The producer is idempotent with ``acks=all``: an acknowledged event survives
a broker restart, and the producer's own retries never duplicate it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from faststream.kafka import KafkaBroker

from tributary_shared.core.events import EventEnvelope, encode_event, home_topic


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


def make_broker(bootstrap_servers: str, *, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        request_timeout_ms=15_000,
        logger=None,
    )


class KafkaEventPublisher:
    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        # Send all, then await acknowledgements: one round trip for a batch.
        pending = [
            await self._broker.publish(
                encode_event(event),
                home_topic(event),
                key=event.workflow_id.encode(),
                headers=event_headers(event),
                no_confirm=True,
            )
            for event in events
        ]
        for ack in pending:
            await ack

    async def publish_raw(
        self, topic: str, value: bytes, *, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await self._broker.publish(value, topic, key=key, headers=headers)
