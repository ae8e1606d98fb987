"""Delivering workflow callbacks, on the in-memory twins.

What a receiver and a client rely on: the workflow that ends is called once it has
ended, with its outcome, signed; a 5xx or no answer is tried again after a backoff,
with the same delivery id, and each try is recorded; a refusal (4xx) or the last
try gives up; a deliverer that dies between a try and its record lets the callback
be tried again (at least once), but one recorded as delivered is never sent again,
however often the terminal event comes back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from tests.support.callbacks import ScriptedReceiver
from tests.support.harness import CALLBACK_SECRET, Harness
from tests.support.scripted import ScriptedEndpoint
from tests.unit.test_handlers import TASK
from tributary_shared.core import machine
from tributary_shared.core.callbacks import CallbackAttempt, CallbackState
from tributary_shared.core.events import WorkflowCancelled, WorkflowOptions, WorkflowRequested
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.callbacks.deliverer import CallbackDeliverer
from tributary_shared.runtime.callbacks.settings import CallbackSettings
from tributary_shared.twins import MemoryCallbackStore, MemoryWorkflowStore

URL = "https://hooks.example/tributary"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class DiesOnce(Exception):
    """The deliverer's process died here."""


class CrashingCallbacks(MemoryCallbackStore):
    """A store whose next ``record_attempt`` or ``unschedule`` dies (once), as a process
    killed between a try and its record would."""

    def __init__(self) -> None:
        super().__init__()
        self.die_in: str | None = None

    async def record_attempt(
        self, workflow_id: str, attempt: CallbackAttempt, *, state: CallbackState
    ) -> None:
        self._maybe_die("record_attempt")
        await super().record_attempt(workflow_id, attempt, state=state)

    async def unschedule(self, workflow_id: str) -> None:
        self._maybe_die("unschedule")
        await super().unschedule(workflow_id)

    def _maybe_die(self, where: str) -> None:
        if self.die_in == where:
            self.die_in = None
            raise DiesOnce(where)


class Setup:
    def __init__(self, **settings: object) -> None:
        self.store = MemoryWorkflowStore()
        self.callbacks = CrashingCallbacks()
        self.receiver = ScriptedReceiver()
        self.clock = Clock()
        self.settings = CallbackSettings.model_validate(
            {"secret": SecretStr("s3cret"), "backoff_s": 10, "max_attempts": 4, **settings}
        )
        self.deliverer = CallbackDeliverer(
            store=self.store,
            callbacks=self.callbacks,
            sender=self.receiver,
            settings=self.settings,
            clock=self.clock,
        )

    async def ended_workflow(self, *, url: str | None = URL, tenant: str = "acme") -> str:
        request = WorkflowRequested(
            workflow_id="wf_1",
            tenant_id=tenant,
            task="t",
            options=WorkflowOptions(callback_url=url),
        )
        await self.store.create_workflow(request, deadline_at=self.clock.now + 600)
        cancelled = WorkflowCancelled(workflow_id="wf_1", tenant_id=tenant, reason="enough")
        await self.store.apply(machine.cancel(cancelled))
        self.ended = cancelled
        await self.deliverer.handle(cancelled)
        return "wf_1"

    async def tries(self) -> None:
        for task in await self.deliverer.deliver_due():
            await task

    def later(self, seconds: float) -> None:
        self.clock.now += seconds


def tries_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("callback_tries_total", {"outcome": outcome}) or 0.0


def attempts_of(setup: Setup) -> list[tuple[int | None, str | None]]:
    progress = setup.callbacks._progress.get("wf_1")
    return [(a.status, a.error) for a in progress.attempts] if progress else []


async def test_an_ended_workflow_is_called_once_signed_with_its_outcome() -> None:
    setup = Setup()
    await setup.ended_workflow()
    await setup.tries()
    [sent] = setup.receiver.sent
    assert sent.url == URL
    body = json.loads(sent.body)
    assert (body["workflow_id"], body["status"], body["tenant_id"]) == ("wf_1", "cancelled", "acme")
    assert body["delivery_id"] == sent.delivery_id
    assert sent.secret == b"s3cret"
    progress = await setup.callbacks.progress("wf_1")
    assert progress.state == "delivered"
    assert [a.status for a in progress.attempts] == [200]
    assert progress.attempts[0].at == datetime.fromtimestamp(setup.clock.now, UTC)
    assert setup.callbacks.schedule_at == {}  # off the schedule
    await setup.tries()
    assert len(setup.receiver.sent) == 1


async def test_a_workflow_without_a_callback_url_is_not_called() -> None:
    setup = Setup()
    await setup.ended_workflow(url=None)
    await setup.tries()
    assert setup.receiver.sent == []
    assert setup.callbacks.schedule_at == {}


async def test_a_5xx_and_no_answer_are_tried_again_after_a_growing_backoff() -> None:
    retries_before = tries_counted("retry")
    delivered_before = tries_counted("delivered")
    setup = Setup()
    setup.receiver.answer(500, None, 200)
    await setup.ended_workflow()
    await setup.tries()
    assert setup.callbacks.schedule_at["wf_1"] == setup.clock.now + 10
    setup.later(9)
    await setup.tries()
    assert len(setup.receiver.sent) == 1  # not due yet: nothing else waits on it
    setup.later(1)
    await setup.tries()
    assert setup.callbacks.schedule_at["wf_1"] == setup.clock.now + 20  # doubled
    setup.later(20)
    await setup.tries()
    assert attempts_of(setup) == [
        (500, None),
        (None, "request failed (ConnectError)"),
        (200, None),
    ]
    assert (await setup.callbacks.progress("wf_1")).state == "delivered"
    assert len({sent.delivery_id for sent in setup.receiver.sent}) == 1  # dedupe on it
    assert len({sent.body for sent in setup.receiver.sent}) == 1
    assert tries_counted("retry") == retries_before + 2
    assert tries_counted("delivered") == delivered_before + 1


@pytest.mark.parametrize("status", [400, 401, 404, 410, 302])
async def test_a_refusal_gives_up_at_once(status: int) -> None:
    setup = Setup()
    setup.receiver.answer(status)
    await setup.ended_workflow()
    await setup.tries()
    assert (await setup.callbacks.progress("wf_1")).state == "failed"
    assert setup.callbacks.schedule_at == {}
    setup.later(10_000)
    await setup.tries()
    assert len(setup.receiver.sent) == 1


async def test_the_last_try_gives_up() -> None:
    setup = Setup(max_attempts=3)
    setup.receiver.answer(503, 429, 500, 200)
    await setup.ended_workflow()
    for _ in range(5):
        await setup.tries()
        setup.later(3600)
    assert [status for status, _ in attempts_of(setup)] == [503, 429, 500]
    assert (await setup.callbacks.progress("wf_1")).state == "failed"
    assert setup.callbacks.schedule_at == {}


async def test_a_deliverer_dying_between_the_try_and_its_record_tries_again_same_id() -> None:
    setup = Setup()
    await setup.ended_workflow()
    setup.callbacks.die_in = "record_attempt"
    await setup.tries()  # sent, then died before recording
    assert len(setup.receiver.sent) == 1
    assert attempts_of(setup) == []
    await setup.tries()
    assert len(setup.receiver.sent) == 1  # leased: not taken again while it may be running
    setup.later(setup.settings.lease_s)
    await setup.tries()
    first, second = setup.receiver.sent
    assert first.delivery_id == second.delivery_id  # the receiver dedupes on it
    assert (await setup.callbacks.progress("wf_1")).state == "delivered"


async def test_one_recorded_as_delivered_is_not_sent_again() -> None:
    setup = Setup()
    await setup.ended_workflow()
    setup.callbacks.die_in = "unschedule"
    await setup.tries()  # recorded delivered, died before taking it off the schedule
    assert (await setup.callbacks.progress("wf_1")).state == "delivered"
    setup.later(setup.settings.lease_s)
    await setup.tries()  # due again: seen as delivered, dropped unsent
    await setup.deliverer.handle(setup.ended)  # and the terminal event redelivered
    setup.later(setup.settings.lease_s)
    await setup.tries()
    assert len(setup.receiver.sent) == 1
    assert setup.callbacks.schedule_at == {}


async def test_without_a_signing_secret_nothing_is_sent_and_that_is_recorded() -> None:
    setup = Setup(secret=None)
    await setup.ended_workflow()
    await setup.tries()
    assert setup.receiver.sent == []
    assert attempts_of(setup) == [
        (None, "not sent: no signing secret is configured for the tenant")
    ]
    assert (await setup.callbacks.progress("wf_1")).state == "failed"


async def test_a_tenant_secret_signs_that_tenants_callbacks() -> None:
    setup = Setup(tenants={"acme": {"secret": "acme-secret"}})
    await setup.ended_workflow()
    await setup.tries()
    assert setup.receiver.sent[0].secret == b"acme-secret"


async def test_a_slow_receiver_holds_up_no_other_callback() -> None:
    setup = Setup(concurrency=2)
    await setup.callbacks.schedule("wf_a", at=setup.clock.now)
    await setup.callbacks.schedule("wf_b", at=setup.clock.now)
    await setup.callbacks.schedule("wf_c", at=setup.clock.now)
    started = await setup.deliverer.deliver_due()
    assert len(started) == 2  # as many as there are places; the third waits for one
    for task in started:
        await task
    assert len(await setup.deliverer.deliver_due()) == 1


# --- through the handlers -------------------------------------------------------------


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    endpoint = ScriptedEndpoint()
    async with Harness(endpoint).running() as running:
        yield running
    await endpoint.aclose()


async def test_a_workflow_that_completes_calls_its_callback_with_its_answer(
    harness: Harness,
) -> None:
    workflow_id = await harness.submit(TASK, callback_url=URL)
    await harness.run()
    record = await harness.record(workflow_id)
    assert record.status is WorkflowStatus.COMPLETED
    await harness.deliver_callbacks()
    [sent] = harness.receiver.sent
    body = json.loads(sent.body)
    assert body["status"] == "completed"
    assert body["result"] == record.result
    assert sent.secret == CALLBACK_SECRET.encode()
