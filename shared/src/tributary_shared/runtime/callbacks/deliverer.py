"""The callback deliverer: schedules the callback of each workflow that ends, and
delivers the due ones, each at most once at a time, retried with backoff.

A terminal event (consumed from the egress topic) only puts the workflow's callback
on the schedule (``CallbackStore``), so the Kafka offset moves on at once and a slow
receiver delays nothing else. A loop takes the due callbacks (leased, so one
deliverer at a time has each) and tries them side by side. After a try its outcome
is recorded first, then the callback is taken off the schedule or moved to its next
try. A deliverer that dies between the try and the record lets the lease lapse and
the callback is tried again, with the same ``Tributary-Delivery-Id``: delivery is
at least once, and receivers dedupe on that id. A callback recorded as delivered
or failed is never sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from tributary_shared.core.callbacks import (
    CallbackAttempt,
    CallbackState,
    Verdict,
    callback_body,
    check_callback_url,
    delivery_id_of,
    retry_delay_s,
    verdict_of,
)
from tributary_shared.core.events import TERMINAL_EVENT_TYPES, AnyEvent
from tributary_shared.core.ports import CallbackStore, WorkflowStore
from tributary_shared.core.records import WorkflowRecord
from tributary_shared.runtime.callbacks.sender import SendResult
from tributary_shared.runtime.callbacks.settings import CallbackSettings
from tributary_shared.runtime.logs import workflow_context
from tributary_shared.runtime.metrics import CALLBACK_TRIES_TOTAL

__all__ = ["CallbackDeliverer", "Sends"]

log = logging.getLogger(__name__)

_STATE_AFTER: dict[Verdict, CallbackState] = {
    Verdict.DELIVERED: "delivered",
    Verdict.GIVE_UP: "failed",
    Verdict.RETRY: "pending",
}


class Sends(Protocol):
    async def send(
        self, url: str, body: bytes, *, secret: bytes, delivery_id: str
    ) -> SendResult: ...


class CallbackDeliverer:
    """The logic of the callbacks' consumer group (a ``WorkerLogic``)."""

    def __init__(
        self,
        *,
        store: WorkflowStore,
        callbacks: CallbackStore,
        sender: Sends,
        settings: CallbackSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._callbacks = callbacks
        self._sender = sender
        self._settings = settings
        self._clock = clock
        self._loop: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    # -- the consumer ----------------------------------------------------------------

    async def handle(self, event: AnyEvent) -> None:
        if event.type not in TERMINAL_EVENT_TYPES:
            return
        record = await self._store.get_workflow(event.workflow_id)
        if record is None or record.tenant_id != event.tenant_id:
            return  # gone, or an event naming another tenant's workflow
        if record.options.callback_url is None or not record.status.terminal:
            return
        await self._callbacks.schedule(event.workflow_id, at=self._clock())

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._deliver_forever(), name="callback-deliverer")

    async def close(self) -> None:
        tasks = [*self._running, *([self._loop] if self._loop is not None else [])]
        for task in tasks:
            task.cancel()  # a try cut short comes due again when its lease lapses
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- delivering --------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:  # Redis away: look again later, the schedule keeps it
                log.warning("could not look for due callbacks", exc_info=True)
            await asyncio.sleep(self._settings.poll_interval_s)

    async def deliver_due(self) -> list[asyncio.Task[None]]:
        """Start a try of each due callback, as many as there are free places."""
        free = self._settings.concurrency - len(self._running)
        if free <= 0:
            return []
        due = await self._callbacks.due(
            now=self._clock(), lease_s=self._settings.lease_s, limit=free
        )
        started = []
        for workflow_id in due:
            task = asyncio.create_task(self._try_logged(workflow_id))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            started.append(task)
        return started

    async def _try_logged(self, workflow_id: str) -> None:
        with workflow_context(workflow_id):
            try:
                await self.deliver(workflow_id)
            except Exception:  # left scheduled: tried again once its lease lapses
                log.warning("callback try failed", exc_info=True)

    async def deliver(self, workflow_id: str) -> None:
        """One try of the workflow's callback, recorded; then off the schedule, or on to
        its next try."""
        record = await self._store.get_workflow(workflow_id)
        url = record.options.callback_url if record is not None else None
        progress = await self._callbacks.progress(workflow_id)
        if record is None or url is None or progress.state != "pending":
            await self._callbacks.unschedule(workflow_id)  # gone, or settled already
            return
        tries = len(progress.attempts) + 1
        at, result, verdict = await self._try(record, url)
        if verdict is Verdict.RETRY and tries >= self._settings.max_attempts:
            verdict = Verdict.GIVE_UP
        state = _STATE_AFTER[verdict]
        attempt = CallbackAttempt(
            at=datetime.fromtimestamp(at, UTC),
            status=result.status,
            error=result.error,
            duration_ms=result.duration_ms,
        )
        await self._callbacks.record_attempt(workflow_id, attempt, state=state)
        CALLBACK_TRIES_TOTAL.labels("retry" if state == "pending" else state).inc()
        if state == "pending":
            delay = retry_delay_s(
                tries, base_s=self._settings.backoff_s, max_s=self._settings.max_backoff_s
            )
            await self._callbacks.retry_at(workflow_id, self._clock() + delay)
            log.info("callback try %d failed (%s); next in %.0fs", tries, _said(result), delay)
            return
        await self._callbacks.unschedule(workflow_id)
        log.info("callback %s after %d tries (%s)", state, tries, _said(result))

    async def _try(self, record: WorkflowRecord, url: str) -> tuple[float, SendResult, Verdict]:
        at = self._clock()
        secret = self._settings.secret_for(record.tenant_id)
        if secret is None:
            refused = "not sent: no signing secret is configured for the tenant"
            return at, SendResult(None, refused, 0), Verdict.GIVE_UP
        try:
            check_callback_url(url, allow_http=self._settings.allow_http)
        except ValueError as exc:
            return at, SendResult(None, f"not sent: {exc}", 0), Verdict.GIVE_UP
        delivery_id = delivery_id_of(record.workflow_id)
        result = await self._sender.send(
            url,
            callback_body(record, delivery_id=delivery_id),
            secret=secret.get_secret_value().encode(),
            delivery_id=delivery_id,
        )
        if result.refused:
            return at, result, Verdict.GIVE_UP
        return at, result, verdict_of(result.status)


def _said(result: SendResult) -> str:
    return f"HTTP {result.status}" if result.status is not None else (result.error or "no answer")
