"""One field of a settings class as a row of the page: names, default, type, description.

Everything comes from the field itself. The description is the field's
``Field(description=...)``; a field without one stops the generator, so a new
setting cannot reach the page (or a release) undocumented.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AliasChoices, AliasPath, BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

__all__ = [
    "MissingDescriptionError",
    "Setting",
    "code",
    "env_names",
    "keys_of",
    "settings_of",
    "type_text",
]

_SECRET_TYPES = (SecretStr, SecretBytes)
_SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|PASSWORD|SECRET)$")
_EMPTY_FACTORIES: dict[object, str] = {list: "[]", dict: "{}"}


class MissingDescriptionError(ValueError):
    """A settings field has no ``Field(description=...)``."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the page: a field of a settings class (or of a JSON entry model)."""

    names: tuple[str, ...]
    """Environment variables (or JSON keys); the first is the main one."""
    default: str
    kind: str
    description: str
    secret: bool
    models: tuple[type[BaseModel], ...]
    """Models the JSON value is made of, described below the table."""


def settings_of(cls: type[BaseSettings]) -> list[Setting]:
    """One row per field of a settings class, in the order of the fields."""
    return [
        _setting(cls, name, field, env_names(cls, name, field))
        for name, field in cls.model_fields.items()
    ]


def keys_of(model: type[BaseModel]) -> list[Setting]:
    """One row per key of a JSON entry (a model inside a setting's value)."""
    return [
        _setting(model, name, field, (field.alias or name,))
        for name, field in model.model_fields.items()
    ]


def env_names(cls: type[BaseSettings], name: str, field: FieldInfo) -> tuple[str, ...]:
    """The variables a field is read from, in the order pydantic-settings tries them."""
    alias = field.validation_alias or field.alias
    choices: list[str | AliasPath] = []
    if isinstance(alias, AliasChoices):
        choices = [c for c in alias.choices if isinstance(c, str | AliasPath)]
    elif isinstance(alias, str | AliasPath):
        choices = [alias]
    prefix = str(cls.model_config.get("env_prefix") or "")
    names = [c if isinstance(c, str) else str(c.path[0]) for c in choices] or [prefix + name]
    if not cls.model_config.get("case_sensitive", False):
        names = [n.upper() for n in names]
    return tuple(dict.fromkeys(names))


def _setting(cls: type[BaseModel], name: str, field: FieldInfo, names: tuple[str, ...]) -> Setting:
    description = " ".join((field.description or "").split())
    if not description:
        raise MissingDescriptionError(
            f"{cls.__module__}.{cls.__qualname__}.{name} has no description: give it "
            "Field(description=...) saying what it does, its unit and when to change it"
        )
    secret = _is_secret(field, names)
    models = tuple(dict.fromkeys(t for t in _walk_types(field.annotation) if _is_model(t)))
    kind = ", ".join([type_text(field.annotation), *_constraints(field)])
    return Setting(
        names=names,
        default=_default_text(field, secret=secret),
        kind=kind + (" (keys below)" if models else ""),
        description=description,
        secret=secret,
        models=models,
    )


# --- types ---------------------------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _walk_types(tp: Any) -> Iterator[Any]:
    tp = _unwrap(tp)
    yield tp
    for arg in get_args(tp):
        if not isinstance(arg, str | int | float | bool | FieldInfo) and arg is not None:
            yield from _walk_types(arg)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel) and not issubclass(tp, BaseSettings)


def _is_secret(field: FieldInfo, names: Sequence[str]) -> bool:
    """A secret type anywhere in the annotation, or a name that says key/token/password."""
    if any(t in _SECRET_TYPES for t in _walk_types(field.annotation)):
        return True
    return any(_SECRET_NAME.search(name.upper()) for name in names)


def type_text(tp: Any) -> str:
    """A readable type: ``int``, ``one of `a`, `b` ``, ``JSON object: str → ...``."""
    tp = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType):
        options = [_unwrap(a) for a in get_args(tp) if a is not type(None)]
        return " or ".join(type_text(option) for option in options)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        values = ", ".join(code(_value_text(v)) for v in args)
        return f"one of {values}" if len(args) > 1 else values
    if origin is list:
        return "JSON array" + (f" of {type_text(args[0])}" if args else "")
    if origin is dict:
        return "JSON object" + (f": {type_text(args[0])} → {type_text(args[1])}" if args else "")
    if tp in _SECRET_TYPES:
        return "str (secret)"
    if _is_model(tp):
        return f"`{tp.__name__}` object"
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return "path"
    if tp in (bool, int, float, str):
        return str(tp.__name__)
    return str(tp).replace("typing.", "")


def _constraints(field: FieldInfo) -> list[str]:
    """``>= 1``, ``<= 65535``, ``non-empty``, ...: what the field's validation enforces."""
    templates = {"gt": "> {}", "ge": ">= {}", "lt": "< {}", "le": "<= {}"}
    parts: list[str] = []
    for item in field.metadata:
        for attr, template in templates.items():
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(template.format(_value_text(value)))
        min_length = getattr(item, "min_length", None)
        if min_length is not None:
            parts.append("non-empty" if min_length == 1 else f"length >= {min_length}")
        pattern = getattr(item, "pattern", None)
        if pattern is not None:
            parts.append(f"matches {code(str(pattern))}")
    return parts


# --- values --------------------------------------------------------------------------


def _default_text(field: FieldInfo, *, secret: bool) -> str:
    """The default as the page shows it; a secret's value never appears."""
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        empty = _EMPTY_FACTORIES.get(field.default_factory)
        # Anything else is computed where the process runs (a path, say): no fixed value.
        return code(empty) if empty is not None else "computed at start"
    if field.default is None:
        return "unset"
    if secret:
        return "hidden"
    return code(_value_text(field.default))


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, PurePath):
        return value.as_posix()
    return json.dumps(value, sort_keys=True, default=str)


def code(text: str) -> str:
    """Markdown inline code, fenced with two backticks when the text holds one."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"
