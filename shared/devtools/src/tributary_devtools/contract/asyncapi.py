"""An AsyncAPI 3.0 document of the Kafka contract, built from the code.

Channels follow ``ALL_TOPICS``; messages are the event catalog plus the dead
letter; operations come from the topology (``core.topology.ROLES``). Building is
pure (a dict from the code), rendering is deterministic YAML, so the committed
document can be compared byte for byte with a fresh one.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from typing import Any

import yaml
from pydantic import BaseModel

from tributary_devtools.contract.schemas import Components, JsonSchema, component_schemas
from tributary_devtools.contract.topology import (
    DEAD_LETTER_KEY_DESCRIPTION,
    EVENT_KEY_DESCRIPTION,
    event_header_specs,
    events_on,
    is_dead_letter_topic,
)
from tributary_shared.core import events
from tributary_shared.core.events import event_catalog
from tributary_shared.core.topics import ALL_TOPICS, TopicSpec
from tributary_shared.core.topology import ROLES, ServiceRole, dead_letter_senders
from tributary_shared.runtime.kafka.deadletter import DeadLetter
from tributary_shared.runtime.settings import KafkaSettings

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
SERVER_NAME = "local"
CONTENT_TYPE = "application/json"
HEADERS_SCHEMA = "EventHeaders"
DEAD_LETTER_MESSAGE = "DeadLetter"
PACKAGE = "tributary-shared"

Document = dict[str, Any]


def build_asyncapi() -> Document:
    """The whole document as plain data (dicts, lists, strings, numbers)."""
    catalog = event_catalog()
    components = component_schemas([*catalog.values(), DeadLetter])
    schemas = {**components.schemas, HEADERS_SCHEMA: _headers_schema()}
    messages = {
        event_type: _event_message(event_type, model, components)
        for event_type, model in catalog.items()
    }
    messages[DEAD_LETTER_MESSAGE] = _dead_letter_message(components)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Tributary",
            "version": version(PACKAGE),
            "description": inspect.cleandoc(events.__doc__ or ""),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            SERVER_NAME: {
                "host": KafkaSettings.model_fields["kafka_bootstrap_servers"].default,
                "protocol": "kafka",
                "description": "The development broker (the default bootstrap servers).",
            }
        },
        "channels": {topic.name: _channel(topic) for topic in ALL_TOPICS},
        "operations": _operations(),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": messages,
        },
    }


def render_asyncapi() -> str:
    return dump_yaml(build_asyncapi())


def channel_ref(topic: TopicSpec) -> str:
    return f"#/channels/{_escape(topic.name)}"


def channel_message_ref(topic: TopicSpec, message: str) -> str:
    return f"{channel_ref(topic)}/messages/{_escape(message)}"


def messages_on(topic: TopicSpec) -> tuple[str, ...]:
    """The message ids of a channel: its events, or the dead letter."""
    return (DEAD_LETTER_MESSAGE,) if is_dead_letter_topic(topic) else events_on(topic)


def _channel(topic: TopicSpec) -> JsonSchema:
    return {
        "address": topic.name,
        "description": topic.description,
        "messages": {
            message: {"$ref": f"#/components/messages/{_escape(message)}"}
            for message in messages_on(topic)
        },
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _event_message(event_type: str, model: type[BaseModel], components: Components) -> JsonSchema:
    message: JsonSchema = {"name": event_type, "title": model.__name__}
    message.update(_docs(model))
    message.update(
        {
            "contentType": CONTENT_TYPE,
            "headers": {"$ref": f"#/components/schemas/{HEADERS_SCHEMA}"},
            "payload": components.ref(model),
            "bindings": _key_binding(EVENT_KEY_DESCRIPTION),
        }
    )
    return message


def _dead_letter_message(components: Components) -> JsonSchema:
    message: JsonSchema = {"name": DEAD_LETTER_MESSAGE, "title": DeadLetter.__name__}
    message.update(_docs(DeadLetter))
    message.update(
        {
            "contentType": CONTENT_TYPE,
            "payload": components.ref(DeadLetter),
            "bindings": _key_binding(DEAD_LETTER_KEY_DESCRIPTION),
        }
    )
    return message


def _docs(model: type[BaseModel]) -> JsonSchema:
    """Summary and description from the model's own docstring (not an inherited one)."""
    doc = model.__dict__.get("__doc__")
    if not doc:
        return {}
    text = inspect.cleandoc(doc)
    return {"summary": text.splitlines()[0], "description": text}


def _key_binding(description: str) -> JsonSchema:
    return {
        "kafka": {
            "key": {"type": "string", "description": description},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


def _headers_schema() -> JsonSchema:
    specs = event_header_specs()
    return {
        "type": "object",
        "description": "Kafka headers of every event; each copies an envelope field.",
        "properties": {
            spec.name: {"type": "string", "description": spec.description} for spec in specs
        },
        "required": [spec.name for spec in specs],
    }


def _operations() -> JsonSchema:
    """Per service, one receive and one send operation for each channel it uses."""
    operations: JsonSchema = {}
    dead_letterers = set(dead_letter_senders())
    for role in ROLES:
        for topic in ALL_TOPICS:
            received = [m for m in messages_on(topic) if m in role.consumes]
            sent = [m for m in messages_on(topic) if role.may_publish(m)]
            if is_dead_letter_topic(topic) and role in dead_letterers:
                sent.append(DEAD_LETTER_MESSAGE)
            for action, chosen in (("receive", received), ("send", sent)):
                if chosen:
                    operations[f"{role.service}.{action}.{topic.name}"] = _operation(
                        role, action, topic, chosen
                    )
    return operations


def _operation(role: ServiceRole, action: str, topic: TopicSpec, messages: list[str]) -> Any:
    verb = "receives" if action == "receive" else "sends"
    operation: JsonSchema = {
        "action": action,
        "channel": {"$ref": channel_ref(topic)},
        "summary": f"{role.service} {verb} {', '.join(messages)}.",
        "messages": [{"$ref": channel_message_ref(topic, m)} for m in messages],
    }
    if action == "receive" and role.group_id is not None:
        operation["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [role.group_id]},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        }
    return operation


def _escape(token: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings as literal blocks, for readable diffs."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(document: Document) -> str:
    """Deterministic YAML: keys keep the order they were built in."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
