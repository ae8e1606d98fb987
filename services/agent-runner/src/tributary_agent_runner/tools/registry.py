"""Tools an agent can call: typed async functions with pydantic arguments.

A ``Tool`` pairs an async function with the pydantic model of its arguments.
The registry renders the OpenAI tool schema from that model, validates the
arguments the model produced before anything runs, and enforces a per-tool
timeout. Whether a tool has side effects is recorded so that the runtime can
guard effects against repetition after a crash.

Tools defined elsewhere (MCP servers) describe their arguments with a JSON
schema instead of a pydantic model: such a tool sets ``parameters`` and takes
:class:`JsonArguments`; the schema is what the model is offered and what the
arguments are validated against, with ``jsonschema``, before the tool runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
from jsonschema.validators import (  # type: ignore[import-untyped]
    Draft202012Validator,
    validator_for,
)
from pydantic import BaseModel, RootModel, ValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable

ArgsT = TypeVar("ArgsT", bound=BaseModel)


class ToolError(Exception):
    """A tool could not produce a result; the message is shown to the model."""


class ToolArgumentsInvalid(ToolError):
    """The model's arguments did not validate against the tool's argument model."""


class ToolTimedOut(ToolError):
    """The tool ran past its timeout."""


class UnknownTool(ToolError):
    """The model asked for a tool that is not offered."""


class JsonArguments(RootModel[dict[str, Any]]):
    """The arguments of a tool described by a JSON schema (``Tool.parameters``).

    By the time a tool receives them they have been validated against that
    schema; this model only guarantees they form a JSON object.
    """


# Problems listed in one ToolArgumentsInvalid message, and the length of each:
# enough for the model to fix its call without flooding its context.
_MAX_SCHEMA_PROBLEMS = 5
_MAX_PROBLEM_CHARS = 200


class _SchemaProblem(Protocol):
    @property
    def message(self) -> str: ...

    @property
    def absolute_path(self) -> Iterable[str | int]: ...


class _SchemaValidator(Protocol):
    def iter_errors(self, instance: object) -> Iterable[_SchemaProblem]: ...


def compile_json_schema(schema: Mapping[str, Any]) -> _SchemaValidator:
    """Check ``schema`` and build its validator; raises ValueError if it is not a valid schema.

    The draft follows ``$schema`` (2020-12 when absent, as MCP specifies).
    References resolve only inside the schema itself: ``jsonschema`` would
    otherwise fetch remote ``$ref`` URLs, and a tool's schema comes from
    outside this process.
    """
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON schema: {_clip(exc.message)}") from None
    validator: _SchemaValidator = cls(schema, registry=Registry())
    return validator


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_PROBLEM_CHARS else text[: _MAX_PROBLEM_CHARS - 1] + "…"


def _location(path: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in path) or "<root>"


@dataclass(frozen=True, slots=True)
class Tool(Generic[ArgsT]):
    name: str
    description: str
    args_model: type[ArgsT]
    run: Callable[[ArgsT], Awaitable[str]]
    timeout_s: float = 30.0
    read_only: bool = True
    #: A JSON schema describing the arguments, for tools that come with one
    #: (``args_model`` is then :class:`JsonArguments`). When set it is offered
    #: to the model instead of ``args_model``'s schema and enforced first.
    parameters: Mapping[str, Any] | None = None
    _validator: _SchemaValidator | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.parameters is not None:
            # Compiled once: a bad schema fails when the tool is built, not when it is called.
            object.__setattr__(self, "_validator", compile_json_schema(self.parameters))

    def openai_schema(self) -> dict[str, Any]:
        parameters = (
            dict(self.parameters)
            if self.parameters is not None
            else self.args_model.model_json_schema()
        )
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            },
        }

    def _check_schema(self, raw_json: str) -> None:
        """Validate against ``parameters``; raises ToolArgumentsInvalid naming each problem."""
        assert self._validator is not None
        try:
            value = json.loads(raw_json or "{}")
        except json.JSONDecodeError as exc:
            raise ToolArgumentsInvalid(
                f"invalid arguments for {self.name}: not valid JSON ({exc.msg} at {exc.pos})"
            ) from None
        try:
            problems = sorted(
                (
                    (_location(err.absolute_path), _clip(err.message))
                    for err in self._validator.iter_errors(value)
                ),
            )
        except Unresolvable:
            raise ToolError(
                f"{self.name} cannot be called: its argument schema has a reference "
                "that does not resolve within the schema"
            ) from None
        if problems:
            shown = "; ".join(f"{where}: {msg}" for where, msg in problems[:_MAX_SCHEMA_PROBLEMS])
            more = len(problems) - _MAX_SCHEMA_PROBLEMS
            raise ToolArgumentsInvalid(
                f"invalid arguments for {self.name}: {shown}"
                + (f"; and {more} more" if more > 0 else "")
            )

    def parse_arguments(self, raw_json: str) -> ArgsT:
        if self._validator is not None:
            self._check_schema(raw_json)
        try:
            return self.args_model.model_validate_json(raw_json or "{}")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ToolArgumentsInvalid(f"invalid arguments for {self.name}: {problems}") from exc

    async def invoke(self, raw_json: str) -> str:
        args = self.parse_arguments(raw_json)
        try:
            return await asyncio.wait_for(self.run(args), timeout=self.timeout_s)
        except TimeoutError as exc:
            raise ToolTimedOut(f"{self.name} timed out after {self.timeout_s:g}s") from exc


class ToolRegistry:
    """The tools offered to agents, by name."""

    def __init__(self, tools: Iterable[Tool[Any]] = ()) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        self._schemas: list[dict[str, Any]] | None = None
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool[Any]) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool
        self._schemas = None

    def get(self, name: str) -> Tool[Any]:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(f"unknown tool {name!r}; offered: {sorted(self._tools)}") from None

    def names(self) -> list[str]:
        return sorted(self._tools)

    def openai_schemas(self) -> list[dict[str, Any]]:
        # Rendered once: every agent call offers them, and rendering is costly.
        if self._schemas is None:
            self._schemas = [tool.openai_schema() for tool in self._tools.values()]
        return self._schemas
