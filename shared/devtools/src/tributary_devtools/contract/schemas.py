"""JSON schemas of the wire models, hoisted into one de-duplicated set of components.

All models are rendered together (``models_json_schema``) so a nested model used
by several events (``ErrorInfo``, ``TokenUsage``) is defined once and every
reference points at ``#/components/schemas/<name>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

JsonSchema = dict[str, Any]

REF_PREFIX = "#/components/schemas/"


@dataclass(frozen=True, slots=True)
class Components:
    """Schemas by component name, and the component name of each requested model."""

    schemas: dict[str, JsonSchema]
    names: dict[type[BaseModel], str]

    def ref(self, model: type[BaseModel]) -> JsonSchema:
        return {"$ref": REF_PREFIX + self.names[model]}


def component_schemas(models: Sequence[type[BaseModel]]) -> Components:
    """Serialization-mode schemas (what is on the wire) of ``models`` and all they use."""
    key_map, top = models_json_schema(
        [(model, "serialization") for model in models], ref_template=REF_PREFIX + "{model}"
    )
    defs: dict[str, JsonSchema] = top.get("$defs", {})
    names = {model: ref_name(key_map[(model, "serialization")]) for model in models}
    return Components(
        schemas={name: _without_ref_siblings(defs[name]) for name in sorted(defs)},
        names=names,
    )


def ref_name(schema: JsonSchema) -> str:
    """The component name a ``{"$ref": ...}`` points at."""
    ref = str(schema["$ref"])
    if not ref.startswith(REF_PREFIX):
        raise ValueError(f"unexpected reference {ref!r}")
    return ref.removeprefix(REF_PREFIX)


def _without_ref_siblings(node: Any) -> Any:
    """Wrap a ``$ref`` that has sibling keywords in ``allOf``.

    AsyncAPI schemas follow JSON Schema draft 07, where keywords beside ``$ref``
    are ignored; pydantic (2020-12) puts a field's description there.
    """
    if isinstance(node, list):
        return [_without_ref_siblings(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _without_ref_siblings(value) for key, value in node.items()}
    if "$ref" in converted and len(converted) > 1:
        ref = converted.pop("$ref")
        return {"allOf": [{"$ref": ref}], **converted}
    return converted
