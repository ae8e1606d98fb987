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

Every tool has a timeout, and it holds even against a tool that ignores its
cancellation: the call runs as its own task, and when the time is up the step
is given a :class:`ToolTimedOut` at once while the task is cancelled and left
to end in the background. The registry can override any tool's timeout by
name (``timeouts``; the agent-runner's ``TRIBUTARY_AGENT_TOOL_TIMEOUTS``).
A timeout holds the step, not the CPU: work that would block the event loop
runs in a worker process (:mod:`.cpu_pool`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
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

__all__ = [
    "JsonArguments",
    "Tool",
    "ToolArgumentsInvalid",
    "ToolError",
    "ToolRegistry",
    "ToolTimedOut",
    "UnknownTool",
    "compile_json_schema",
]

log = logging.getLogger(__name__)

ArgsT = TypeVar("ArgsT", bound=BaseModel)

# Tool calls that timed out but have not ended yet: held so that they are not
# garbage-collected mid-run and so that their outcome is collected.
_ABANDONED: set[asyncio.Task[str]] = set()


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
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"tool {self.name!r} needs a positive, finite timeout_s")
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

    def with_timeout(self, timeout_s: float) -> Tool[ArgsT]:
        """The same tool with another timeout."""
        return dataclasses.replace(self, timeout_s=timeout_s)

    async def invoke(self, raw_json: str) -> str:
        """Validate the arguments and run the tool; at most ``timeout_s`` seconds, always.

        ``asyncio.wait_for`` would wait for the cancelled call to finish, so a
        tool that swallows its cancellation would hold the step for ever; the
        call is therefore waited for, not awaited, and left behind on timeout.
        """
        args = self.parse_arguments(raw_json)
        call = asyncio.ensure_future(self.run(args))
        try:
            done, _ = await asyncio.wait({call}, timeout=self.timeout_s)
        except asyncio.CancelledError:
            _abandon(call)  # the step was cancelled
            raise
        if call in done:
            return call.result()
        _abandon(call)
        raise ToolTimedOut(f"{self.name} timed out after {self.timeout_s:g}s")


def _abandon(call: asyncio.Future[str]) -> None:
    """Cancel a call nobody waits for any more, and keep it until it has ended."""
    call.cancel()
    if call.done() or not isinstance(call, asyncio.Task):
        return
    _ABANDONED.add(call)
    call.add_done_callback(_collect)


def _collect(call: asyncio.Task[str]) -> None:
    _ABANDONED.discard(call)
    if not call.cancelled() and call.exception() is not None:
        log.warning("a tool call that was given up raised later: %r", call.exception())


class ToolRegistry:
    """The tools offered to agents, by name.

    ``timeouts`` maps tool names to seconds; a tool named there runs under that
    timeout instead of its own, including tools registered later (MCP tools).
    """

    def __init__(
        self, tools: Iterable[Tool[Any]] = (), *, timeouts: Mapping[str, float] | None = None
    ) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        self._schemas: list[dict[str, Any]] | None = None
        self._timeouts = dict(timeouts or {})
        for name, seconds in self._timeouts.items():
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"the timeout of tool {name!r} must be positive and finite")
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool[Any]) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        if tool.name in self._timeouts:
            tool = tool.with_timeout(self._timeouts[tool.name])
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
