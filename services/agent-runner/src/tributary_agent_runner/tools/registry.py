"""Tools an agent can call: typed async functions with pydantic arguments.

A ``Tool`` pairs an async function with the pydantic model of its arguments.
The registry renders the OpenAI tool schema from that model, validates the
arguments the model produced before anything runs, and enforces a per-tool
timeout. Whether a tool has side effects is recorded so that the runtime can
guard effects against repetition after a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

ArgsT = TypeVar("ArgsT", bound=BaseModel)


class ToolError(Exception):
    """A tool could not produce a result; the message is shown to the model."""


class ToolArgumentsInvalid(ToolError):
    """The model's arguments did not validate against the tool's argument model."""


class ToolTimedOut(ToolError):
    """The tool ran past its timeout."""


class UnknownTool(ToolError):
    """The model asked for a tool that is not offered."""


@dataclass(frozen=True, slots=True)
class Tool(Generic[ArgsT]):
    name: str
    description: str
    args_model: type[ArgsT]
    run: Callable[[ArgsT], Awaitable[str]]
    timeout_s: float = 30.0
    read_only: bool = True

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.args_model.model_json_schema(),
            },
        }

    def parse_arguments(self, raw_json: str) -> ArgsT:
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
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool[Any]) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool[Any]:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(f"unknown tool {name!r}; offered: {sorted(self._tools)}") from None

    def names(self) -> list[str]:
        return sorted(self._tools)

    def openai_schemas(self) -> list[dict[str, Any]]:
        return [tool.openai_schema() for tool in self._tools.values()]
