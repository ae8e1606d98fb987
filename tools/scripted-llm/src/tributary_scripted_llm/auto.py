"""The automatic, deterministic answers given when no rule matches.

They are chosen so that a whole workflow runs offline with predictable output: the
planner gets one step per ';'-separated task part, agents call the ``calculator`` or
``fetch_url`` tool when the step asks for it and then report the tool's result, and
plain calls (e.g. synthesis) quote their input so the final answer visibly contains
the step results. Text the services mark as untrusted data
(``<untrusted_data source="...">...</untrusted_data>``) is quoted as a model reads it:
its content, without the markers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .chat_request import ChatRequest, message_text
from .plan import PLAN_SCHEMA_NAME, build_plan
from .reply import Reply, ToolCall
from .schema_fill import schema_instance

CALCULATOR_TOOL = "calculator"
FETCH_URL_TOOL = "fetch_url"
QUOTE_CHARS = 500
"""How much of the last user message a plain answer quotes."""
TOOL_RESULT_CHARS = 2000
"""How much of each tool result the follow-up answer repeats."""

# A run of arithmetic characters starting at a digit, '(' or a unary minus.
_EXPR_CANDIDATE = re.compile(r"(?:(?<![\w)])-)?[\d(][\d\s+\-*/().]*")
# A binary operator between two operands: what makes a run an expression, not a number.
_BINARY_OP = re.compile(r"[\d.)]\s*[-+*/]\s*[-\d(.]")
_URL = re.compile(r"https?://[^\s<>\"'`\])]+")
_DATA_MARKERS = re.compile(r"</?untrusted_data(?:\s[^>]{0,200})?>")


def find_expression(text: str) -> str | None:
    """First arithmetic expression in ``text`` (digits, + - * / ( ) . and spaces,
    with at least one binary operator), or None."""
    for found in _EXPR_CANDIDATE.finditer(text):
        candidate = found.group().rstrip()
        # A sentence may end right after the expression: "What is 2 + 3?" / "... 4."
        while candidate and not (candidate[-1].isdigit() or candidate[-1] == ")"):
            candidate = candidate[:-1].rstrip()
        candidate = _balance_parentheses(candidate)
        if _BINARY_OP.search(candidate):
            return candidate
    return None


def _balance_parentheses(candidate: str) -> str:
    # "(see 2 + 3)" yields "2 + 3)": drop the parentheses that belong to the prose.
    while candidate.endswith(")") and candidate.count(")") > candidate.count("("):
        candidate = candidate[:-1].rstrip()
    while candidate.startswith("(") and candidate.count("(") > candidate.count(")"):
        candidate = candidate[1:].lstrip()
    return candidate


def find_url(text: str) -> str | None:
    """First http(s) URL in ``text``, without trailing sentence punctuation."""
    found = _URL.search(text)
    return found.group().rstrip(".,;:!?") if found else None


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text`` on one line without data markers, cut to ``limit`` characters."""
    flat = " ".join(_DATA_MARKERS.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def plain_answer(request: ChatRequest) -> str:
    text = request.last_user_text or (request.texts[-1] if request.texts else "")
    return f"Answer: {quote(text)}"


def tool_result_answer(request: ChatRequest) -> str:
    """Text repeating the results of the latest round of tool calls."""
    messages = request.messages
    last_call_index = -1
    names: dict[str, str] = {}
    for index in range(len(messages) - 1, -1, -1):
        calls = messages[index].get("tool_calls")
        if messages[index].get("role") == "assistant" and isinstance(calls, list) and calls:
            last_call_index = index
            names = _tool_call_names(calls)
            break
    results = [
        message for message in messages[last_call_index + 1 :] if message.get("role") == "tool"
    ] or [message for message in messages if message.get("role") == "tool"]
    lines = []
    for message in results:
        name = names.get(str(message.get("tool_call_id")), "tool")
        lines.append(f"Based on {name}: {quote(message_text(message), TOOL_RESULT_CHARS)}")
    return "\n".join(lines)


def _tool_call_names(calls: list[Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names[str(call.get("id"))] = function["name"]
    return names


def _auto_tool_call(request: ChatRequest) -> ToolCall | None:
    text = request.last_user_text
    if CALCULATOR_TOOL in request.tool_names:
        expression = find_expression(text)
        if expression is not None:
            return ToolCall(CALCULATOR_TOOL, json.dumps({"expression": expression}))
    if FETCH_URL_TOOL in request.tool_names:
        url = find_url(text)
        if url is not None:
            return ToolCall(FETCH_URL_TOOL, json.dumps({"url": url}))
    return None


def auto_reply(request: ChatRequest) -> Reply:
    """The deterministic answer to ``request`` when no rule applies."""
    if request.has_tools and not request.has_tool_result and not request.tool_choice_none:
        call = _auto_tool_call(request)
        if call is not None:
            return Reply(tool_calls=[call])
    if request.schema is not None:
        if request.schema_name == PLAN_SCHEMA_NAME:
            value: Any = build_plan(request.schema, request.last_user_text)
        else:
            value = schema_instance(request.schema)
        return Reply(content=json.dumps(value))
    answer = tool_result_answer(request) if request.has_tool_result else plain_answer(request)
    if request.response_format_type == "json_object":
        return Reply(content=json.dumps({"answer": answer}))
    return Reply(content=answer)
