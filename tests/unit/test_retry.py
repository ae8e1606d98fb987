"""The retry helper: backoff forever, restart forever, or poll until ready."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tributary_shared.runtime.retry import NotReadyError, poll_until, retry_forever, run_forever


class Flaky:
    """Fails ``failures`` times with ``error``, then returns ``result``."""

    def __init__(self, failures: int, error: Exception | None = None, result: str = "ok") -> None:
        self.calls = 0
        self._failures = failures
        self._error = error or ConnectionError("broker away")
        self._result = result

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self._failures:
            raise self._error
        return self._result


async def test_retry_forever_keeps_trying_until_the_operation_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    operation = Flaky(failures=5, result="published")
    with caplog.at_level(logging.WARNING):
        result = await retry_forever(
            operation, what="publishing a dead letter", first_wait_s=0, max_wait_s=0
        )
    assert result == "published"
    assert operation.calls == 6
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5
    assert all("publishing a dead letter failed" in r.getMessage() for r in warnings)
    assert "broker away" in warnings[0].getMessage()


async def test_retry_forever_waits_longer_each_time_up_to_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, cap = 0.001, 0.004
    with caplog.at_level(logging.WARNING):
        await retry_forever(Flaky(failures=5), what="x", first_wait_s=first, max_wait_s=cap)
    waits = []
    for record in caplog.records:
        assert isinstance(record.args, tuple)
        wait = record.args[3]
        assert isinstance(wait, float)
        waits.append(wait)
    # 1, 2, 4, then capped at 4 (times the first wait), each plus up to one first wait of jitter.
    for wait, base in zip(waits, (1, 2, 4, 4, 4), strict=True):
        assert first * base <= wait <= min(cap, first * (base + 1))


async def test_an_operation_given_as_a_lambda_is_awaited_each_time() -> None:
    broker = Flaky(failures=2)
    assert await retry_forever(lambda: broker(), what="x", first_wait_s=0, max_wait_s=0) == "ok"
    assert broker.calls == 3


async def test_retry_forever_never_retries_a_cancellation() -> None:
    operation = Flaky(failures=1, error=asyncio.CancelledError())  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await retry_forever(operation, what="x", first_wait_s=0, max_wait_s=0)
    assert operation.calls == 1


async def test_cancelling_a_task_that_waits_between_attempts_stops_it() -> None:
    operation = Flaky(failures=10**9)
    task = asyncio.create_task(retry_forever(operation, what="x", first_wait_s=60, max_wait_s=60))
    for _ in range(100):
        if operation.calls:
            break
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert operation.calls == 1


async def test_run_forever_restarts_after_an_error_and_after_an_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def listen() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("redis lost")
        if calls == 3:
            raise asyncio.CancelledError  # the service shuts down
        # calls == 2: the message stream ended without an error

    with caplog.at_level(logging.WARNING), pytest.raises(asyncio.CancelledError):
        await run_forever(listen, what="cancellation listener", first_wait_s=0, max_wait_s=0)
    assert calls == 3
    messages = [r.getMessage() for r in caplog.records]
    assert "cancellation listener failed: ConnectionError('redis lost')" in messages[0]
    assert "cancellation listener ended" in messages[1]


def test_poll_until_returns_once_the_probe_answers_true() -> None:
    answers = iter([False, False, True])
    sleeps: list[float] = []
    poll_until(lambda: next(answers), what="redis", attempts=5, interval_s=0.5, sleep=sleeps.append)
    assert sleeps == [0.5, 0.5]


def test_poll_until_gives_up_after_the_attempts() -> None:
    calls: list[None] = []

    def probe() -> bool:
        calls.append(None)
        return False

    with pytest.raises(NotReadyError, match=r"^kafka: not ready after .*\(3 attempts\)") as info:
        poll_until(probe, what="kafka", attempts=3, interval_s=0)
    assert len(calls) == 3
    assert info.value.what == "kafka"
    assert info.value.attempts == 3


def test_poll_until_stops_at_whichever_limit_comes_first() -> None:
    with pytest.raises(NotReadyError, match=r"\(2 attempts\)"):
        poll_until(lambda: False, what="x", timeout_s=60, attempts=2, interval_s=0)


def test_poll_until_gives_up_at_the_deadline() -> None:
    with pytest.raises(NotReadyError) as info:
        poll_until(lambda: False, what="gateway", timeout_s=0.05, interval_s=0.01)
    assert info.value.elapsed_s >= 0.05
    assert info.value.attempts > 1


def test_an_error_from_the_probe_ends_the_wait_at_once() -> None:
    calls: list[None] = []

    def probe() -> bool:
        calls.append(None)
        raise RuntimeError("the process died")

    with pytest.raises(RuntimeError, match="the process died"):
        poll_until(probe, what="planner", attempts=10, interval_s=0)
    assert len(calls) == 1


def test_poll_until_refuses_to_wait_without_a_limit() -> None:
    with pytest.raises(ValueError, match="timeout_s or attempts"):
        poll_until(lambda: False, what="x")
