"""Where each event travels and what rides beside it, derived from the contract.

Nothing here restates a per-event fact: an event's home topic comes from
``events.home_topic`` (through ``topology.topic_of``) and the header set from
``publisher.event_headers``, so a new event type or header shows up in the
documents without touching this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tributary_shared.core.events import EventEnvelope, event_catalog
from tributary_shared.core.topics import DEAD_LETTERS, TopicSpec
from tributary_shared.core.topology import topic_of
from tributary_shared.runtime.kafka.publisher import event_headers

__all__ = [
    "DEAD_LETTER_KEY_DESCRIPTION",
    "EVENT_KEY_DESCRIPTION",
    "HeaderSpec",
    "event_header_specs",
    "events_on",
    "is_dead_letter_topic",
    "topic_of",
]

EVENT_KEY_DESCRIPTION = (
    "The workflow id (the envelope's `workflow_id`): one workflow's events stay in order "
    "within a topic."
)
DEAD_LETTER_KEY_DESCRIPTION = (
    "The failed message's own key, unchanged (its workflow id when it was an event); "
    "absent when the original had none."
)


def events_on(topic: TopicSpec) -> tuple[str, ...]:
    """The event types whose home is ``topic``, in catalog order."""
    return tuple(t for t in event_catalog() if topic_of(t) == topic)


def is_dead_letter_topic(topic: TopicSpec) -> bool:
    return topic == DEAD_LETTERS


@dataclass(frozen=True, slots=True)
class HeaderSpec:
    """One Kafka header of an event and the envelope field it copies, if any."""

    name: str
    field: str | None

    @property
    def description(self) -> str:
        if self.field is None:
            return "Set by the publisher."
        text = f"The envelope's `{self.field}`, as a string."
        field_doc = EventEnvelope.model_fields[self.field].description
        return f"{text} {field_doc}" if field_doc else text


def event_header_specs() -> tuple[HeaderSpec, ...]:
    """The headers ``event_headers`` sets, matched to envelope fields by value.

    Every envelope field gets a distinct marker value; a header carrying a
    field's marker copies that field. This keeps the header list in one place
    (the publisher) while the documents still say what each header means.
    """
    fields = EventEnvelope.model_fields
    markers = {f"<{name}>": name for name in fields}
    values: dict[str, Any] = {name: marker for marker, name in markers.items()}
    sample = EventEnvelope.model_construct(**values)
    return tuple(
        HeaderSpec(header, markers.get(value)) for header, value in event_headers(sample).items()
    )
