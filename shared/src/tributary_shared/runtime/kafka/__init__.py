"""Kafka transport: publishing events and consuming them with bounded parallelism."""

from tributary_shared.runtime.kafka.consumer import (
    ConsumerConfig,
    EventConsumer,
    HandlerTimedOut,
    LaneKey,
)
from tributary_shared.runtime.kafka.deadletter import DeadLetter
from tributary_shared.runtime.kafka.lanes import KeyLanes
from tributary_shared.runtime.kafka.offsets import PartitionOffsets
from tributary_shared.runtime.kafka.publisher import (
    EventPublisher,
    KafkaEventPublisher,
    event_headers,
    make_broker,
)
from tributary_shared.runtime.kafka.security import (
    PLAINTEXT,
    KafkaSecurity,
    kafka_security,
    tls_context,
)
from tributary_shared.runtime.outages import is_outage

__all__ = [
    "PLAINTEXT",
    "ConsumerConfig",
    "DeadLetter",
    "EventConsumer",
    "EventPublisher",
    "HandlerTimedOut",
    "KafkaEventPublisher",
    "KafkaSecurity",
    "KeyLanes",
    "LaneKey",
    "PartitionOffsets",
    "event_headers",
    "is_outage",
    "kafka_security",
    "make_broker",
    "tls_context",
]
