"""Build a minimal instance of a JSON schema, deterministically.

Structured-output calls must get back something that validates against the schema the
caller sent, even as that schema grows new fields. Only required properties are filled,
each with the plainest value of its type (``""``, ``0``, ``False``, ``[]``, ``{}``),
honouring the keywords pydantic and OpenAI strict schemas use: ``$ref``/``$defs``,
``anyOf``/``oneOf``/``allOf``, ``default``, ``const``, ``enum``, nullable type lists,
and simple bounds (``minLength``, ``minimum``, ``minItems``) so that constrained
fields still validate.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# Recursive schemas (a tree node whose required children are nodes) would never end.
_MAX_DEPTH = 32

_FORMAT_EXAMPLES = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "email": "user@example.com",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def schema_instance(schema: Any, root: Mapping[str, Any] | None = None) -> Any:
    """Return a minimal value valid against ``schema``.

    ``root`` is the document that local ``$ref`` pointers (``#/$defs/...``) resolve
    against; it defaults to ``schema`` itself.
    """
    return _fill(schema, schema if root is None else root, 0)


def resolve_ref(schema: Any, root: Any) -> Any:
    """Follow local ``$ref`` pointers until a schema without one is reached."""
    seen: set[str] = set()
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
        ref: str = schema["$ref"]
        if ref in seen or not ref.startswith("#"):
            return {}
        seen.add(ref)
        target: Any = root
        for token in ref[1:].split("/"):
            if not token:
                continue
            key = token.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                return {}
        # Siblings of $ref (allowed since draft 2019-09) refine the target.
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **siblings} if siblings and isinstance(target, Mapping) else target
    return schema


def _is_null_schema(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") == "null"


def _fill(schema: Any, root: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH or not isinstance(schema, Mapping):
        return None
    schema = resolve_ref(schema, root)
    if not isinstance(schema, Mapping):
        return None

    if "default" in schema:
        return copy.deepcopy(schema["default"])
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return copy.deepcopy(enum[0])

    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            # Prefer a real value over null: ``Optional[X]`` is ``anyOf: [X, null]``.
            resolved = [resolve_ref(option, root) for option in options]
            chosen = next((o for o in resolved if not _is_null_schema(o)), None)
            return None if chosen is None else _fill(chosen, root, depth + 1)

    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        parts = [_fill(part, root, depth + 1) for part in all_of]
        if all(isinstance(part, dict) for part in parts):
            merged: dict[str, Any] = {}
            for part in parts:
                merged.update(part)
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            if rest.get("required"):
                merged.update(_fill(rest, root, depth + 1) or {})
            return merged
        return parts[0]

    return _fill_typed(schema, _schema_type(schema), root, depth)


def _schema_type(schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, list):
        non_null = [t for t in declared if t != "null"]
        if non_null:
            return str(non_null[0])
        return "null" if declared else None
    if isinstance(declared, str):
        return declared
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _fill_typed(schema: Mapping[str, Any], kind: str | None, root: Any, depth: int) -> Any:
    if kind == "object":
        return fill_object(schema, root, depth)
    if kind == "array":
        return _fill_array(schema, root, depth)
    if kind == "string":
        return _fill_string(schema)
    if kind in ("integer", "number"):
        return _fill_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None


def fill_object(schema: Mapping[str, Any], root: Any, depth: int = 0) -> dict[str, Any]:
    """Object with every required property filled (optional ones are left out)."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        properties = {}
    required = schema.get("required")
    result: dict[str, Any] = {}
    if isinstance(required, list):
        for name in required:
            if isinstance(name, str):
                result[name] = _fill(properties.get(name, {}), root, depth + 1)
    return result


def _fill_array(schema: Mapping[str, Any], root: Any, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    items: list[Any] = []
    if isinstance(prefix, list):
        items = [_fill(item, root, depth + 1) for item in prefix]
    min_items = schema.get("minItems")
    if isinstance(min_items, int) and len(items) < min_items:
        item_schema = schema.get("items", {})
        items.extend(_fill(item_schema, root, depth + 1) for _ in range(min_items - len(items)))
    return items


def _fill_string(schema: Mapping[str, Any]) -> str:
    value = _FORMAT_EXAMPLES.get(str(schema.get("format", "")), "")
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        value += "x" * (min_length - len(value))
    return value


def _fill_number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    value: int | float = 0
    minimum = schema.get("minimum")
    exclusive_minimum = schema.get("exclusiveMinimum")
    maximum = schema.get("maximum")
    exclusive_maximum = schema.get("exclusiveMaximum")
    if isinstance(minimum, int | float) and value < minimum:
        value = minimum
    if isinstance(exclusive_minimum, int | float) and value <= exclusive_minimum:
        value = exclusive_minimum + 1 if integer else exclusive_minimum + 0.5
    if isinstance(maximum, int | float) and value > maximum:
        value = maximum
    if isinstance(exclusive_maximum, int | float) and value >= exclusive_maximum:
        value = exclusive_maximum - 1 if integer else exclusive_maximum - 0.5
    if integer:
        return int(value)
    return value
