"""A light, read-only view of an incoming chat completion request.

The request body is parsed once into plain Python objects and only the fields the
server needs are extracted (no full pydantic model of OpenAI's request schema): the
server must accept whatever a real client sends, including fields it ignores, and
stay cheap per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class RequestError(ValueError):
    """The request is not a valid chat completion request (answered with HTTP 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def message_text(message: dict[str, Any]) -> str:
    """Text of a message's content, whether a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _tool_names(tools: Any) -> list[str]:
    names: list[str] = []
    if not isinstance(tools, list):
        return names
    for tool in tools:
        if isinstance(tool, dict):
            function = tool.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
    return names


@dataclass(slots=True)
class ChatRequest:
    """The parts of a chat completion request that drive matching and answering."""

    model: str
    messages: list[dict[str, Any]]
    texts: list[str]
    """Text of each message, aligned with ``messages``."""
    tool_names: list[str]
    response_format_type: str | None = None
    schema_name: str | None = None
    schema: dict[str, Any] | None = None
    stream: bool = False
    include_usage: bool = False
    tool_choice_none: bool = False
    """``tool_choice: "none"``: the caller forbids tool calls."""
    _last_user: str | None = field(default=None, repr=False)

    @property
    def has_tools(self) -> bool:
        return bool(self.tool_names)

    @property
    def has_tool_result(self) -> bool:
        return any(message.get("role") == "tool" for message in self.messages)

    @property
    def last_user_text(self) -> str:
        if self._last_user is None:
            self._last_user = next(
                (
                    text
                    for message, text in zip(
                        reversed(self.messages), reversed(self.texts), strict=True
                    )
                    if message.get("role") == "user"
                ),
                "",
            )
        return self._last_user

    @property
    def response_format_label(self) -> str | None:
        """Schema name for JSON-schema formats, else the format type (for recordings)."""
        return self.schema_name or self.response_format_type


def parse_chat_request(body: Any) -> ChatRequest:
    """Extract a :class:`ChatRequest` from a decoded JSON body, or raise RequestError."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array", param="messages")
    if not all(isinstance(message, dict) for message in messages):
        raise RequestError("each message must be an object", param="messages")

    request = ChatRequest(
        model=model,
        messages=messages,
        texts=[message_text(message) for message in messages],
        tool_names=_tool_names(body.get("tools")),
        stream=body.get("stream") is True,
        tool_choice_none=body.get("tool_choice") == "none",
    )
    stream_options = body.get("stream_options")
    if isinstance(stream_options, dict):
        request.include_usage = stream_options.get("include_usage") is True

    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        format_type = response_format.get("type")
        request.response_format_type = format_type if isinstance(format_type, str) else None
        json_schema = response_format.get("json_schema")
        if format_type == "json_schema" and isinstance(json_schema, dict):
            name = json_schema.get("name")
            schema = json_schema.get("schema")
            request.schema_name = name if isinstance(name, str) else None
            request.schema = schema if isinstance(schema, dict) else {}
    return request
