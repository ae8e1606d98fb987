"""Retrying, built on tenacity, in the three shapes the project needs.

- :func:`retry_forever`: an operation that must succeed in the end (publishing
  a dead letter while Kafka is away). Exponential backoff with jitter up to a
  cap; every failure is logged at WARNING; it never gives up.
- :func:`run_forever`: a long-lived operation (a pub/sub subscription) that is
  started again, with the same backoff, whenever it fails or ends.
- :func:`ride_out_outages`: a call in the middle of long work, retried while
  Kafka or Redis is away (up to a patience), so the work is not restarted.
- :func:`poll_until`: a readiness wait. A probe is called until it answers
  True, for at most ``attempts`` calls or ``timeout_s`` seconds, then
  :class:`NotReadyError`. An exception from the probe ends the wait at once,
  which is how a probe reports "this will never become ready".

Only ``Exception`` subclasses are retried: ``asyncio.CancelledError``,
``KeyboardInterrupt`` and ``SystemExit`` pass straight through, so cancelling a
task that is retrying stops it at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    stop_never,
    wait_exponential_jitter,
    wait_fixed,
)
from tenacity.stop import stop_base

from tributary_shared.runtime.outages import is_outage

__all__ = ["NotReadyError", "poll_until", "retry_forever", "run_forever"]

T = TypeVar("T")
log = logging.getLogger(__name__)


class NotReadyError(TimeoutError):
    """:func:`poll_until` gave up: the probe never answered True in time."""

    def __init__(self, what: str, *, attempts: int, elapsed_s: float) -> None:
        self.what = what
        self.attempts = attempts
        self.elapsed_s = elapsed_s
        super().__init__(f"{what}: not ready after {elapsed_s:.1f}s ({attempts} attempts)")


def _backoff(first_wait_s: float, max_wait_s: float) -> wait_exponential_jitter:
    # Jitter of up to one first wait keeps replicas that failed together from
    # retrying in lockstep against a service that is just coming back.
    return wait_exponential_jitter(multiplier=first_wait_s, max=max_wait_s, jitter=first_wait_s)


def _log_retry(what: str, logger: logging.Logger) -> Callable[[RetryCallState], None]:
    def log_it(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        # The first failure carries the traceback; repeats of it would only be noise.
        logger.warning(
            "%s %s (attempt %d); trying again in %.1fs",
            what,
            f"failed: {error!r}" if error is not None else "ended",
            state.attempt_number,
            state.upcoming_sleep,
            exc_info=error if state.attempt_number == 1 else None,
        )

    return log_it


def _awaiting(operation: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    # tenacity awaits the result only of a coroutine *function*; a lambda or a
    # partial returning an awaitable would be called, and its result not awaited.
    async def attempt() -> T:
        return await operation()

    return attempt


async def retry_forever(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    first_wait_s: float = 0.5,
    max_wait_s: float = 10.0,
    logger: logging.Logger = log,
) -> T:
    """Await ``operation()`` until it returns, and return its result.

    After failure n the wait is ``first_wait_s * 2**(n-1)`` plus up to
    ``first_wait_s`` of jitter, capped at ``max_wait_s``. ``what`` names the
    operation in the WARNING logged for each failure ("publishing a dead letter").
    """
    retrying = AsyncRetrying(
        stop=stop_never,
        wait=_backoff(first_wait_s, max_wait_s),
        retry=retry_if_exception_type(Exception),
        before_sleep=_log_retry(what, logger),
        reraise=True,
    )
    result: T = await retrying(_awaiting(operation))
    return result


async def run_forever(
    operation: Callable[[], Awaitable[object]],
    *,
    what: str,
    first_wait_s: float = 0.5,
    max_wait_s: float = 10.0,
    logger: logging.Logger = log,
) -> NoReturn:
    """Keep ``operation`` running: start it again whenever it raises or returns.

    Meant for listeners that should never stop ("subscribe, then handle
    messages as they come"): a lost connection surfaces as an error, or as the
    message stream ending, and both lead to a new subscription after the same
    backoff as :func:`retry_forever`. The waits do not shrink again after a long
    healthy run, which is why ``max_wait_s`` should stay short.
    """
    retrying = AsyncRetrying(
        stop=stop_never,
        wait=_backoff(first_wait_s, max_wait_s),
        retry=retry_if_exception_type(Exception) | retry_if_result(lambda _ended: True),
        before_sleep=_log_retry(what, logger),
        reraise=True,
    )
    await retrying(_awaiting(operation))
    raise AssertionError("run_forever cannot return")  # stop_never: unreachable


def poll_until(
    probe: Callable[[], bool],
    *,
    what: str,
    timeout_s: float | None = None,
    attempts: int | None = None,
    interval_s: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Call ``probe`` every ``interval_s`` until it returns True.

    Gives up with :class:`NotReadyError` after ``attempts`` calls or once
    ``timeout_s`` seconds have passed (whichever comes first; the probe is
    always called at least once). An exception raised by ``probe`` propagates
    at once. ``sleep`` is replaceable for tests.
    """
    if timeout_s is None and attempts is None:
        raise ValueError("poll_until needs timeout_s or attempts, or it could wait forever")
    limits: list[stop_base] = []
    if timeout_s is not None:
        limits.append(stop_after_delay(timeout_s))
    if attempts is not None:
        limits.append(stop_after_attempt(attempts))

    def give_up(state: RetryCallState) -> None:
        raise NotReadyError(
            what, attempts=state.attempt_number, elapsed_s=state.seconds_since_start or 0.0
        )

    retrying = Retrying(
        sleep=sleep,
        stop=stop_any(*limits),
        wait=wait_fixed(interval_s),
        retry=retry_if_result(lambda ready: not ready),
        retry_error_callback=give_up,
    )
    retrying(probe)


async def ride_out_outages(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    patience_s: float,
    first_wait_s: float = 0.2,
    max_wait_s: float = 5.0,
    logger: logging.Logger = log,
) -> T:
    """Await ``operation()``, retrying while Kafka or Redis is away, for up to ``patience_s``.

    For calls made in the middle of long work (an agent step): waiting out a
    blip in place keeps the work done so far, where failing would restart it.
    Any other error, and an outage that outlasts the patience, is raised.
    """
    retrying = AsyncRetrying(
        stop=stop_after_delay(patience_s),
        wait=_backoff(first_wait_s, max_wait_s),
        retry=retry_if_exception(is_outage),
        before_sleep=_log_retry(what, logger),
        reraise=True,
    )
    result: T = await retrying(_awaiting(operation))
    return result
