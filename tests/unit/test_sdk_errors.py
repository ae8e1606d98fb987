"""The SDK's errors, configuration and the calls the gateway does not serve yet (fake transport)."""

from __future__ import annotations

import json

import httpx
import pytest

from tributary_client import (
    APIError,
    AsyncTributary,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConnectionError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    Tributary,
    TributaryError,
    UnavailableError,
    ValidationError,
)

WORKFLOW_ID = "wf_" + "b" * 32


def answering(response: httpx.Response) -> Tributary:
    return Tributary("http://gw", "k", transport=httpx.MockTransport(lambda _: response))


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, BadRequestError, "bad_request"),
        (401, AuthenticationError, "authentication_failed"),
        (403, PermissionDeniedError, "permission_denied"),
        (404, NotFoundError, "not_found"),
        (409, ConflictError, "conflict"),
        (413, PayloadTooLargeError, "payload_too_large"),
        (422, ValidationError, "validation_failed"),
        (429, RateLimitError, "rate_limited"),
        (500, ServerError, "server_error"),
        (503, UnavailableError, "unavailable"),
    ],
)
def test_each_error_status_has_its_exception(status: int, kind: type[APIError], code: str) -> None:
    response = httpx.Response(status, json={"detail": "what went wrong"})
    with answering(response) as client, pytest.raises(kind) as raised:
        client.get(WORKFLOW_ID)
    error = raised.value
    assert isinstance(error, TributaryError)
    assert (error.status, error.code, error.detail) == (status, code, "what went wrong")
    assert type(error) is kind  # the most specific class, not a parent


def test_retry_after_is_read_as_seconds() -> None:
    limited = httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "5"})
    with answering(limited) as client, pytest.raises(RateLimitError) as raised:
        client.start("t")
    assert raised.value.retry_after == 5.0
    assert "429 slow down" in str(raised.value)


def test_a_code_in_the_body_wins_and_validation_details_are_joined() -> None:
    coded = httpx.Response(409, json={"detail": "still running", "code": "workflow_running"})
    with answering(coded) as client, pytest.raises(ConflictError) as raised:
        client.delete(WORKFLOW_ID)
    assert raised.value.code == "workflow_running"
    invalid = httpx.Response(
        422,
        json={"detail": [{"loc": ["body", "options", "max_steps"], "msg": "must be >= 1"}]},
    )
    with answering(invalid) as client, pytest.raises(ValidationError) as failed:
        client.start("t", max_steps=0)
    assert failed.value.detail == "body.options.max_steps: must be >= 1"


def test_a_non_json_error_body_still_maps() -> None:
    with (
        answering(httpx.Response(502, text="Bad Gateway")) as client,
        pytest.raises(ServerError) as raised,
    ):
        client.get(WORKFLOW_ID)
    assert (raised.value.status, raised.value.detail) == (502, "Bad Gateway")


async def test_no_answer_is_a_connection_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with AsyncTributary("http://gw", "k", transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(ConnectionError) as raised:
            await client.get(WORKFLOW_ID)
    assert raised.value.status is None
    assert "connection refused" in str(raised.value)


class Recorder:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.response


def test_input_posts_the_answer_to_the_request() -> None:
    recorder = Recorder(httpx.Response(202, json={"accepted": True}))
    with Tributary("http://gw/", "k", transport=httpx.MockTransport(recorder)) as client:
        client.input(WORKFLOW_ID, request_id="req_1", answer={"approve": True})
    (sent,) = recorder.requests
    assert (sent.method, str(sent.url)) == ("POST", f"http://gw/v1/workflows/{WORKFLOW_ID}/input")
    assert json.loads(sent.content) == {"request_id": "req_1", "answer": {"approve": True}}
    assert sent.headers["Authorization"] == "Bearer k"


async def test_delete_answers_nothing_or_conflict_while_running() -> None:
    recorder = Recorder(httpx.Response(204))
    async with AsyncTributary("http://gw", "k", transport=httpx.MockTransport(recorder)) as client:
        await client.delete(WORKFLOW_ID)
    (sent,) = recorder.requests
    assert (sent.method, sent.url.path) == ("DELETE", f"/v1/workflows/{WORKFLOW_ID}")
    running = httpx.Response(409, json={"detail": "workflow is running"})
    async with AsyncTributary(
        "http://gw", "k", transport=httpx.MockTransport(lambda _: running)
    ) as client:
        with pytest.raises(ConflictError):
            await client.delete(WORKFLOW_ID)


def test_start_sends_only_the_options_given_and_the_idempotency_key() -> None:
    accepted = {
        "workflow_id": WORKFLOW_ID,
        "status": "pending",
        "links": {"self": "/s", "events": "/e", "calls": "/c"},
        "queue_position": 3,  # a field this client does not know yet
    }
    recorder = Recorder(httpx.Response(202, json=accepted))
    with Tributary("http://gw", "k", transport=httpx.MockTransport(recorder)) as client:
        started = client.start(
            "t", deadline_s=60, on_budget_exhausted="fail", idempotency_key="abc", tenant_id="acme"
        )
    (sent,) = recorder.requests
    assert json.loads(sent.content) == {
        "task": "t",
        "options": {"deadline_s": 60, "on_budget_exhausted": "fail"},
        "tenant_id": "acme",
    }
    assert sent.headers["Idempotency-Key"] == "abc"
    assert started.model_extra == {"queue_position": 3}
    assert started.status == "pending"


def test_ids_never_leave_their_path_segment() -> None:
    recorder = Recorder(httpx.Response(404, json={"detail": "no"}))
    with (
        Tributary("http://gw", "k", transport=httpx.MockTransport(recorder)) as client,
        pytest.raises(NotFoundError),
    ):
        client.get("../keys")
    assert recorder.requests[0].url.raw_path == b"/v1/workflows/..%2Fkeys"


def test_url_and_key_come_from_arguments_then_the_environment() -> None:
    env = {"TRIBUTARY_URL": "http://env:8000/", "TRIBUTARY_API_KEY": "from-env"}
    with Tributary(env=env) as client:
        assert client.base_url == "http://env:8000"
    with Tributary("http://arg", "from-arg", env=env) as client:
        assert client.base_url == "http://arg"
        assert "from-arg" not in repr(client._config)
    with pytest.raises(ValueError, match="TRIBUTARY_API_KEY"):
        Tributary(env={})
    with Tributary(env={"TRIBUTARY_API_KEY": "k"}) as client:
        assert client.base_url == "http://localhost:8000"
