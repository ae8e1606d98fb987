"""The SDK follows a workflow across dropped connections: nothing missed, nothing repeated."""

from __future__ import annotations

import httpx
import pytest

import tributary_client._async
import tributary_client._sync
from tests.support.sdk_fakes import LOG, WORKFLOW_ID, FakeEventLog
from tributary_client import (
    AsyncTributary,
    AuthenticationError,
    RetryPolicy,
    Tributary,
    UnavailableError,
    WaitTimeoutError,
    WorkflowEvent,
    WorkflowStatus,
)

ALL_IDS = [event_id for event_id, _ in LOG]


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the clients chose between reconnections (without waiting them out)."""
    delays: list[float] = []

    async def async_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(tributary_client._sync, "_sleep", delays.append)
    monkeypatch.setattr(tributary_client._async, "_sleep", async_sleep)
    return delays


def sync_client(log: FakeEventLog, **kwargs: object) -> Tributary:
    return Tributary("http://gw", "k", transport=log.transport(), **kwargs)  # type: ignore[arg-type]


def async_client(log: FakeEventLog, **kwargs: object) -> AsyncTributary:
    return AsyncTributary("http://gw", "k", transport=log.transport(), **kwargs)  # type: ignore[arg-type]


def ids(events: list[WorkflowEvent]) -> list[str]:
    return [event.id for event in events]


def test_a_dropped_stream_resumes_after_the_last_whole_event(slept: list[float]) -> None:
    log = FakeEventLog(drops=[2, 3])
    with sync_client(log) as client:
        events = list(client.stream(WORKFLOW_ID))
    assert ids(events) == ALL_IDS  # the half-sent third event is not delivered, then re-read
    assert log.resumed_from == [None, "2-0", "5-0"]
    assert [event.type for event in events][-1] == "workflow.completed"
    assert events[0].data["type"] == "workflow.requested"


async def test_the_async_stream_resumes_the_same_way(slept: list[float]) -> None:
    log = FakeEventLog(drops=[1, 0, 4])
    async with async_client(log) as client:
        events = [event async for event in client.stream(WORKFLOW_ID)]
    assert ids(events) == ALL_IDS
    assert log.resumed_from == [None, "1-0", "1-0", "5-0"]


def test_a_stream_starts_after_the_given_last_event_id(slept: list[float]) -> None:
    log = FakeEventLog()
    with sync_client(log) as client:
        events = list(client.stream(WORKFLOW_ID, last_event_id="5-0"))
    assert ids(events) == ["6-0", "7-0"]
    assert log.resumed_from == ["5-0"]


def test_wait_survives_a_dropped_connection_without_missing_or_repeating_an_event(
    slept: list[float],
) -> None:
    log = FakeEventLog(drops=[3])
    seen: list[WorkflowEvent] = []
    with sync_client(log) as client:
        final = client.wait(WORKFLOW_ID, on_event=seen.append)
    assert ids(seen) == ALL_IDS
    assert log.resumed_from == [None, "3-0"]
    assert final.status is WorkflowStatus.COMPLETED
    assert final.result == "done"


async def test_async_wait_survives_a_dropped_connection(slept: list[float]) -> None:
    log = FakeEventLog(drops=[5])
    seen: list[WorkflowEvent] = []
    async with async_client(log) as client:
        final = await client.wait(WORKFLOW_ID, on_event=seen.append)
    assert ids(seen) == ALL_IDS
    assert log.resumed_from == [None, "5-0"]
    assert final.terminal


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_gateway_is_retried_after_its_retry_after(status: int, slept: list[float]) -> None:
    busy = httpx.Response(status, json={"detail": "busy"}, headers={"Retry-After": "7"})
    log = FakeEventLog(drops=[2], errors=[])
    with sync_client(log) as client:
        stream = client.stream(WORKFLOW_ID)
        first = [next(stream), next(stream)]
        log.errors.append(busy)  # the reconnection after the drop is refused once
        rest = list(stream)
    assert ids(first + rest) == ALL_IDS
    assert log.resumed_from == [None, "2-0", "2-0"]
    assert 7.0 in slept


async def test_the_async_client_honours_retry_after_too(slept: list[float]) -> None:
    busy = httpx.Response(503, json={"detail": "busy"}, headers={"Retry-After": "3"})
    log = FakeEventLog(errors=[busy])
    async with async_client(log) as client:
        events = [event async for event in client.stream(WORKFLOW_ID)]
    assert ids(events) == ALL_IDS
    assert slept == [3.0]


def test_retries_are_bounded_and_back_off(slept: list[float]) -> None:
    down = [httpx.Response(503, json={"detail": "down"}) for _ in range(10)]
    log = FakeEventLog(errors=down)
    policy = RetryPolicy(max_retries=3, backoff_s=1.0, max_backoff_s=30.0)
    with sync_client(log, retry=policy) as client, pytest.raises(UnavailableError) as raised:
        list(client.stream(WORKFLOW_ID))
    assert len(log.resumed_from) == 4  # the first try and three retries
    assert raised.value.status == 503
    assert slept[0] <= 1.0 < slept[1] <= 2.0 < slept[2] <= 4.0  # doubling, with jitter


def test_an_event_resets_the_count_of_retries(slept: list[float]) -> None:
    # Seven drops, each after one event: more than max_retries, but each one made progress.
    log = FakeEventLog(drops=[1] * 7)
    with sync_client(log, retry=RetryPolicy(max_retries=1)) as client:
        assert ids(list(client.stream(WORKFLOW_ID))) == ALL_IDS


def test_a_refused_key_is_not_retried(slept: list[float]) -> None:
    log = FakeEventLog(errors=[httpx.Response(401, json={"detail": "invalid API key"})])
    with sync_client(log) as client, pytest.raises(AuthenticationError):
        list(client.stream(WORKFLOW_ID))
    assert len(log.resumed_from) == 1
    assert slept == []


def test_a_stream_closed_before_the_last_event_reconnects(slept: list[float]) -> None:
    log = FakeEventLog(ends=[2])  # e.g. a slow reader cut off by the gateway
    with sync_client(log) as client:
        assert ids(list(client.stream(WORKFLOW_ID))) == ALL_IDS
    assert log.resumed_from == [None, "2-0"]


def test_wait_gives_up_at_its_timeout(slept: list[float]) -> None:
    def hangs(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no event", request=request)

    with (
        Tributary("http://gw", "k", transport=httpx.MockTransport(hangs)) as client,
        pytest.raises(WaitTimeoutError),
    ):
        client.wait(WORKFLOW_ID, timeout=0.0)


def test_wait_reports_a_refusal_as_itself_even_at_its_timeout(slept: list[float]) -> None:
    log = FakeEventLog(errors=[httpx.Response(401, json={"detail": "revoked"})])
    with sync_client(log) as client, pytest.raises(AuthenticationError):
        client.wait(WORKFLOW_ID, timeout=0.0)
