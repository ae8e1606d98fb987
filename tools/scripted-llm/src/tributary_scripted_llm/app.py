"""The ASGI application: OpenAI-compatible endpoints plus the ``/_admin`` API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse

from .auto import auto_reply
from .chat_request import ChatRequest, RequestError, message_text, parse_chat_request
from .models import (
    ConfigUpdate,
    ErrorSpec,
    RecordedRequest,
    Rule,
    RuleStatus,
    ScriptedResponse,
    ServerConfig,
)
from .ratelimit import RATE_LIMITED_RULE_ID
from .render import (
    COMPLETION_ID_PREFIX,
    completion_body,
    dumps,
    error_body,
    stream_events,
    usage_for,
)
from .reply import Reply, ToolCall
from .state import ServerState
from .unanswered import CLOSE_CONNECTION, ConnectionClosedUnanswered

_RECORDS = TypeAdapter(list[RecordedRequest])
_RULES = TypeAdapter(list[RuleStatus])
JSON = "application/json"


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Pre-encoded bytes: skips FastAPI's generic (and slower) jsonable_encoder path.
    return Response(dumps(value), status_code=status, headers=headers, media_type=JSON)


def error_response(
    status: int, spec: ErrorSpec | None = None, headers: dict[str, str] | None = None
) -> Response:
    return json_response(error_body(status, spec), status, headers)


def scripted_reply(response: ScriptedResponse, request: ChatRequest) -> Reply:
    """The reply a scripted response describes; the automatic answer to ``request``
    stands in for the message when the response only sets delays, usage or finish reason."""
    if not response.defines_message:
        reply = auto_reply(request)
    else:
        content = json.dumps(response.json_body) if response.has_json else response.content
        calls = [
            ToolCall(
                name=call.name,
                arguments=call.arguments
                if isinstance(call.arguments, str)
                else json.dumps(call.arguments),
                id=call.id,
            )
            for call in response.tool_calls or []
        ]
        reply = Reply(content=content, tool_calls=calls, refusal=response.refusal)
    if response.finish_reason is not None:
        reply.finish_reason = response.finish_reason
    return reply


class StreamBroken(Exception):
    """Raised by a streamed answer scripted to break (``stream_break_after``): the server
    drops the connection mid-body. ``sent`` is what the client received before it."""

    def __init__(self, sent: bytes) -> None:
        super().__init__("the scripted stream broke off as asked")
        self.sent = sent


async def _aiter(
    chunks: Iterator[bytes], *, break_after: int | None = None, chunk_delay_s: float = 0.0
) -> AsyncIterator[bytes]:
    # An async generator keeps Starlette from iterating in a worker thread.
    sent: list[bytes] = []
    for chunk in chunks:
        if break_after is not None and len(sent) >= break_after:
            raise StreamBroken(b"".join(sent))
        if sent and chunk_delay_s > 0:
            await asyncio.sleep(chunk_delay_s)
        sent.append(chunk)
        yield chunk


def create_app(config: ServerConfig | None = None, rules: Iterable[Rule] = ()) -> FastAPI:
    """Build the application; its :class:`ServerState` is at ``app.state.scripted``."""
    state = ServerState(config, rules)
    app = FastAPI(title="Tributary scripted LLM", docs_url=None, redoc_url=None)
    app.state.scripted = state

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        details = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return error_response(400, ErrorSpec(message=f"Invalid request: {details}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, ErrorSpec(message=str(exc.detail), code=None))

    async def chat_completions(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error_response(
                400, ErrorSpec(message="We could not parse the JSON body of your request.")
            )
        try:
            chat = parse_chat_request(body)
        except RequestError as exc:
            return error_response(400, ErrorSpec(message=str(exc), param=exc.param))

        seq = state.next_seq()
        limited = state.rate_limit.take() if state.rate_limit is not None else None
        if limited is not None and not limited.allowed:
            state.record(seq, chat, RATE_LIMITED_RULE_ID)
            refused = ErrorSpec(
                message="Rate limit reached for requests.",
                type="requests",
                code="rate_limit_exceeded",
            )
            return error_response(429, refused, limited.headers)
        found = state.rules.next_response(chat)
        rule_id, scripted = found if found is not None else (None, None)
        state.record(seq, chat, rule_id)

        delay_ms = state.config.latency_ms + (scripted.delay_ms if scripted else 0)
        if scripted is not None and scripted.close_without_answer:
            close = request.scope.get(CLOSE_CONNECTION)
            if close is None:
                raise ConnectionClosedUnanswered()
            close()
            # Until uvicorn has seen the connection go: a response now would be dropped
            # unsent, and returning none before would make it log one missing.
            await state.wait(request, None)
            return Response(status_code=204)
        if scripted is not None and scripted.hang:
            await state.wait(request, None)
            return error_response(503, ErrorSpec(message="Hanging request released."))
        if delay_ms > 0 and not await state.wait(request, delay_ms / 1000):
            released = ErrorSpec(message="Request released before its delay ended.")
            return error_response(503, released)

        headers = dict(limited.headers) if limited is not None else {}
        headers.update(scripted.headers if scripted else {})
        completion_id = f"{COMPLETION_ID_PREFIX}{seq}"
        headers.setdefault("x-request-id", completion_id)
        if scripted is not None and scripted.status is not None and scripted.is_error:
            return error_response(scripted.status, scripted.error, headers)

        reply = auto_reply(chat) if scripted is None else scripted_reply(scripted, chat)
        usage = usage_for(chat, reply, scripted.usage if scripted else None)
        created = int(time.time())
        if chat.stream:
            events = stream_events(
                completion_id=completion_id,
                created=created,
                model=chat.model,
                reply=reply,
                usage=usage,
                include_usage=chat.include_usage,
            )
            break_after = scripted.stream_break_after if scripted is not None else None
            chunk_delay_ms = scripted.stream_chunk_delay_ms if scripted is not None else 0
            return StreamingResponse(
                _aiter(events, break_after=break_after, chunk_delay_s=chunk_delay_ms / 1000),
                media_type="text/event-stream",
                headers=headers,
            )
        body_out = completion_body(
            completion_id=completion_id, created=created, model=chat.model, reply=reply, usage=usage
        )
        status = scripted.status if scripted is not None and scripted.status else 200
        return json_response(body_out, status, headers)

    # Some clients are configured with the server root rather than ``/v1`` as base URL.
    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_api_route("/chat/completions", chat_completions, methods=["POST"])

    def model_object(model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 0, "owned_by": "tributary"}

    @app.get("/v1/models")
    async def list_models() -> Response:
        data = [model_object(model_id) for model_id in state.config.models]
        return json_response({"object": "list", "data": data})

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> Response:
        # Every model name is served, so every model "exists".
        return json_response(model_object(model_id))

    @app.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @app.post("/_admin/rules")
    async def add_rule(rule: Rule) -> Response:
        try:
            rule_id = state.rules.add(rule)
        except ValueError as exc:
            return error_response(409, ErrorSpec(message=str(exc)))
        return json_response({"id": rule_id})

    @app.get("/_admin/rules")
    async def list_rules() -> Response:
        return Response(_RULES.dump_json(state.rules.status()), media_type=JSON)

    @app.delete("/_admin/rules")
    async def clear_rules() -> Response:
        deleted = len(state.rules)
        state.rules.clear()
        return json_response({"deleted": deleted})

    @app.delete("/_admin/rules/{rule_id}")
    async def delete_rule(rule_id: str) -> Response:
        if not state.rules.remove(rule_id):
            return error_response(404, ErrorSpec(message=f"No rule {rule_id!r}.", code=None))
        return json_response({"deleted": 1})

    @app.get("/_admin/requests")
    async def list_requests(contains: str | None = None, rule_id: str | None = None) -> Response:
        records = [
            record
            for record in state.recorded
            if (rule_id is None or record.rule_id == rule_id)
            and (contains is None or _mentions(record, contains))
        ]
        return Response(_RECORDS.dump_json(records), media_type=JSON)

    @app.delete("/_admin/requests")
    async def clear_requests() -> Response:
        deleted = len(state.recorded)
        state.recorded.clear()
        return json_response({"deleted": deleted})

    @app.get("/_admin/config")
    async def get_config() -> Response:
        return Response(state.config.model_dump_json(), media_type=JSON)

    @app.post("/_admin/config")
    async def set_config(update: ConfigUpdate) -> Response:
        return Response(state.update_config(update).model_dump_json(), media_type=JSON)

    @app.get("/_admin/rate-limit")
    async def rate_limit() -> Response:
        return Response(state.rate_limit_stats().model_dump_json(), media_type=JSON)

    @app.post("/_admin/reset")
    async def reset() -> Response:
        state.reset()
        return json_response({"status": "ok"})

    return app


def _mentions(record: RecordedRequest, needle: str) -> bool:
    """Whether any message of a recorded request contains ``needle`` (as in rule matching)."""
    return any(needle in message_text(message) for message in record.messages)
