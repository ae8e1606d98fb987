"""A request the server closed its connection on before answering is sent again at once,
and is no outage.

That is what a client sees when it sends on a pooled keep-alive connection just as the
server closes it for being idle (docs/performance.md, finding 9). The pure decision
(``closed_before_answering``) is checked on the exceptions httpx and the SDK really
raise, from sockets that misbehave each their own way; the client's handling through
the real SDK against the scripted LLM (``close_without_answer``), in-process and over
a real socket, with what reached the endpoint counted there and what reached the
deployment's gate counted at the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import httpx2
import openai
import pytest
from openai import AsyncOpenAI
from prometheus_client import REGISTRY
from pydantic import SecretStr

from tests.support.harness import Harness
from tests.support.scripted import ScriptedEndpoint, rule
from tributary_scripted_llm import Rule, ScriptedLLMServer
from tributary_shared.core.admission import (
    BreakerState,
    CallOutcome,
    GatePolicy,
    Pumped,
    RateLimitObservation,
)
from tributary_shared.core.completions import CallContext, Message
from tributary_shared.core.errors import TransientError
from tributary_shared.core.events import LLMCalled, LLMTry
from tributary_shared.core.recording import resolve
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.llm import LLMClient
from tributary_shared.runtime.llm.admission import Admission
from tributary_shared.runtime.llm.errors import (
    CONNECTION_DROPPED,
    classify_sdk_error,
    closed_before_answering,
)
from tributary_shared.runtime.settings import AdmissionSettings, LLMSettings
from tributary_shared.twins import MemoryDeploymentGate

MODEL = "model-a"
MESSAGES: Sequence[Message] = ({"role": "user", "content": "hi"},)
DROP = {"close_without_answer": True}
# One try for the whole call, no patience: a drop that spent a try of the call's plan
# would end the call.
ONE_TRY: dict[str, object] = {
    "TRIBUTARY_AGENT_MODEL": MODEL,
    "TRIBUTARY_LLM_MAX_ATTEMPTS": 1,
    "TRIBUTARY_LLM_PATIENCE_S": 0,
}


# --- the decision, on what httpx and the SDK raise ----------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    await reader.readexactly(length)


async def _closes_unanswered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)  # then closed without a word


async def _cuts_the_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"
    )
    await writer.drain()


async def _resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    sock = writer.get_extra_info("socket")
    # Linger 0: closing sends a reset instead of an orderly end.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await reader.read()  # until the client gives up and closes


async def _sdk_error_from(handler: Handler | None, *, timeout_s: float = 5.0) -> openai.OpenAIError:
    """What the SDK raises for a chat completion sent to a server that ``handler`` plays
    (None: nothing listens on the port)."""
    served: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert handler is not None
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(asyncio.create_task(serve(reader, writer)))

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    if handler is None:
        server.close()
        await server.wait_closed()
    client = AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0, timeout=timeout_s
    )
    try:
        await client.chat.completions.create(model="m", messages=list(MESSAGES))  # type: ignore[arg-type]
    except openai.OpenAIError as exc:
        return exc
    finally:
        await client.close()
        server.close()
        await asyncio.wait_for(asyncio.gather(*served), timeout=5)
    raise AssertionError("the request was answered")


async def test_a_connection_closed_before_any_answer_is_recognised() -> None:
    error = await _sdk_error_from(_closes_unanswered)
    assert isinstance(error, openai.APIConnectionError)
    assert closed_before_answering(error)
    # Left to the taxonomy alone, it still reads as the endpoint away.
    assert classify_sdk_error(error, model="m").code == "llm_unavailable"


@pytest.mark.parametrize(
    ("server", "why"),
    [
        (None, "refused"),
        (_resets, "reset"),
        (_cuts_the_answer, "answer cut off midway"),
    ],
)
async def test_other_connection_failures_are_not_a_drop_before_answering(
    server: Handler | None, why: str
) -> None:
    error = await _sdk_error_from(server)
    assert isinstance(error, openai.APIConnectionError), why
    assert not closed_before_answering(error), why


async def test_a_timeout_is_not_a_drop_before_answering() -> None:
    error = await _sdk_error_from(_never_answers, timeout_s=0.2)
    assert isinstance(error, openai.APITimeoutError)
    assert not closed_before_answering(error)


def _wrapped_by_the_sdk(cause: Exception) -> openai.APIConnectionError:
    """``cause`` raised inside the SDK's send, as it wraps it (``raise ... from err``)."""
    request = httpx2.Request("POST", "https://llm.invalid/v1/chat/completions")
    try:
        try:
            raise cause
        except httpx2.HTTPError as err:
            raise openai.APIConnectionError(request=request) from err
    except openai.APIConnectionError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    ("cause", "dropped"),
    [
        (httpx2.RemoteProtocolError("Server disconnected without sending a response."), True),
        (httpx2.ConnectError("[Errno -2] Name or service not known"), False),
        (httpx2.ConnectError("[Errno 111] Connection refused"), False),
        (httpx2.ReadError("[Errno 104] Connection reset by peer"), False),
        (httpx2.RemoteProtocolError("Server disconnected"), False),  # HTTP/2, any stream
        (
            httpx2.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            ),
            False,
        ),
        (httpx2.ReadTimeout("timed out"), False),
    ],
)
def test_only_httpx_s_unanswered_disconnect_is_a_drop(cause: Exception, dropped: bool) -> None:
    assert closed_before_answering(_wrapped_by_the_sdk(cause)) is dropped
    assert not closed_before_answering(cause.__class__("the same words elsewhere: no"))


def test_the_words_alone_on_another_error_are_not_a_drop() -> None:
    assert not closed_before_answering(
        ValueError("Server disconnected without sending a response.")
    )


# --- the client: sent again at once, uncounted ---------------------------------------------


class RecordingGate(MemoryDeploymentGate):
    """The gate's twin, keeping the outcome of every call reported to it."""

    def __init__(self) -> None:
        super().__init__()
        self.reported: list[CallOutcome] = []
        self.heard = asyncio.Event()

    async def report(
        self,
        deployment: str,
        *,
        replica: str,
        ticket_id: str,
        outcome: CallOutcome,
        observation: RateLimitObservation,
        policy: GatePolicy,
    ) -> Pumped:
        self.reported.append(outcome)
        self.heard.set()
        return await super().report(
            deployment,
            replica=replica,
            ticket_id=ticket_id,
            outcome=outcome,
            observation=observation,
            policy=policy,
        )


async def reported(gate: RecordingGate) -> list[CallOutcome]:
    """What the gate heard once the call's end reached it. A failure is reported
    before the call goes on (so a dropped request counted as an outage would be here
    already); an answer off the call's path, so it may come after the call returned."""
    await asyncio.wait_for(gate.heard.wait(), timeout=5)
    return gate.reported


def resends(deployment: str = MODEL, role: str = "agent") -> float:
    labels = {"role": role, "deployment": deployment}
    return REGISTRY.get_sample_value("llm_dropped_connection_resends_total", labels) or 0.0


def retries(role: str = "agent") -> float:
    labels = {"role": role, "error_class": "transient"}
    return REGISTRY.get_sample_value("llm_retries_total", labels) or 0.0


@pytest.fixture
async def admission() -> AsyncIterator[tuple[Admission, RecordingGate]]:
    """A process's admission over a gate whose breaker opens at the first outage."""
    gate = RecordingGate()
    built = Admission(
        gate,
        settings=AdmissionSettings.model_validate(
            {"llm_breaker_failures": 1, "llm_breaker_cooldown_s": 60}
        ),
    )
    yield built, gate
    await built.aclose()


@pytest.fixture
async def endpoint() -> AsyncIterator[ScriptedEndpoint]:
    scripted = ScriptedEndpoint()
    yield scripted
    await scripted.aclose()


def codes(tries: Sequence[LLMTry]) -> list[str | None]:
    return [t.error.code if t.error is not None else None for t in tries]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_dropped_unanswered_goes_again_at_once_and_counts_as_no_outage(
    endpoint: ScriptedEndpoint, admission: tuple[Admission, RecordingGate], stream: bool
) -> None:
    admit, gate = admission
    endpoint.add_rule(rule(DROP, {"content": "answered"}))
    client = LLMClient(endpoint.settings(**ONE_TRY), http_client=endpoint.http, admission=admit)
    resent, retried = resends(), retries()
    tries: list[LLMTry] = []

    completion = await client.complete(
        role="agent",
        messages=MESSAGES,
        context=CallContext(workflow_id="wf", tenant_id="acme"),
        on_try=tries.append,
        stream=stream,
    )

    assert completion.content == "answered"
    assert len(endpoint.requests) == 2  # the dropped request, and the one answered
    assert await reported(gate) == [CallOutcome.OK]  # the gate heard of one call, answered
    state = await gate.state(MODEL)
    assert (state.breaker, state.failures) == (BreakerState.CLOSED, 0)
    assert codes(tries) == [CONNECTION_DROPPED, None]
    assert resends() == resent + 1
    assert retries() == retried  # no try of the call's plan was spent on it


async def test_an_endpoint_that_drops_every_request_is_still_an_outage(
    endpoint: ScriptedEndpoint, admission: tuple[Admission, RecordingGate]
) -> None:
    admit, gate = admission
    endpoint.add_rule(rule(DROP))
    client = LLMClient(endpoint.settings(**ONE_TRY), http_client=endpoint.http, admission=admit)
    tries: list[LLMTry] = []

    with pytest.raises(TransientError) as raised:
        await client.complete(
            role="agent",
            messages=MESSAGES,
            context=CallContext(workflow_id="wf", tenant_id="acme"),
            on_try=tries.append,
        )

    assert raised.value.code == "llm_unavailable"
    assert len(endpoint.requests) == 2  # sent again once, not more
    assert await reported(gate) == [CallOutcome.OUTAGE]
    assert (await gate.state(MODEL)).breaker is BreakerState.OPEN  # it opens at one outage
    assert codes(tries) == [CONNECTION_DROPPED, "llm_unavailable"]


async def test_over_a_real_socket_the_pool_sends_it_again_on_a_fresh_connection(
    admission: tuple[Admission, RecordingGate],
) -> None:
    """uvicorn closes the connection; httpcore, httpx and the SDK raise what they raise."""
    admit, gate = admission
    async with ScriptedLLMServer() as llm:
        llm.admin.add_rule(responses=[DROP, {"content": "answered"}])
        settings = LLMSettings.model_validate(
            {
                "TRIBUTARY_LLM_BASE_URL": llm.base_url,
                "TRIBUTARY_LLM_API_KEY": SecretStr("k"),
                **ONE_TRY,
            }
        )
        client = LLMClient(settings, admission=admit)  # its own connection pools
        try:
            completion = await client.complete(
                role="agent", messages=MESSAGES, context=CallContext("wf", "acme")
            )
        finally:
            await client.close()
        arrived = await asyncio.to_thread(llm.admin.requests)

    assert completion.content == "answered"
    assert len(arrived) == 2
    assert await reported(gate) == [CallOutcome.OK]


# --- a workflow: one call, one charge, a record of both tries -----------------------------


async def test_a_workflow_whose_plan_request_was_dropped_pays_once_and_records_both_tries(
    endpoint: ScriptedEndpoint,
) -> None:
    endpoint.add_rule(
        Rule.model_validate(
            {"match": {"schema_name": "tributary_plan"}, "responses": [DROP], "repeat_last": False}
        )
    )
    async with Harness(endpoint, llm={"TRIBUTARY_LLM_MAX_ATTEMPTS": 1}).running() as harness:
        workflow_id = await harness.submit("collect alpha; collect beta")
        await harness.run()
        record = await harness.record(workflow_id)
        budget = await harness.budgets.state(workflow_id)
        calls = [r for r in resolve(harness.published_of(workflow_id)) if isinstance(r, LLMCalled)]

    assert record.status is WorkflowStatus.COMPLETED
    planner = [c for c in calls if c.role == "planner"]
    assert len(planner) == 1
    assert codes(planner[0].tries) == [CONNECTION_DROPPED, None]
    assert planner[0].error is None
    # Every request the endpoint received is a try of some call's record.
    assert sum(len(c.tries) for c in calls) == len(endpoint.requests)
    # Each call was charged once, for what its answer used; nothing is left reserved.
    used = 0
    for call in calls:
        assert call.body is not None
        assert call.body.response is not None
        used += call.body.response.usage.total_tokens
    assert budget.used_tokens == used
    assert budget.reserved_tokens == 0
