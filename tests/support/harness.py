"""The planner, agent-runner and synthesizer handlers together, in one process.

The handlers are the services' real classes; their ports are the in-memory
twins; the LLM is the scripted server in-process behind the real ``openai``
SDK. Events a handler publishes are delivered to the services whose topology
(``core.topology``) says they consume them, one delivery at a time, in order.

What Kafka and real processes would do to a delivery is made explicit:

* ``crash_before_publishing`` / ``crash_after``: the handler dies at that point
  (a ``Crash`` is raised in it); its delivery was not committed, so it is
  delivered again, as Kafka would after a restart;
* ``deliver_twice``: every event reaches each consumer twice (at-least-once);
* ``start``: a delivery runs as a task that a test may cancel mid-flight, as a
  revoked partition or a shutdown would;
* ``produce``: someone outside the services (an integration, a forger) puts an
  event straight onto its topic.

The outbox notes of what the services published are cleared when ``run`` has
delivered everything (or on ``flush_outbox``), not in the background as a
worker clears them every few milliseconds: a test sees a fixed outbox.

A delivery whose error the error table dead-letters (a refused forgery, say)
is dead-lettered as the consumer runtime does it: the letter is kept in
``dead_letters`` and the workers' dead-letter hook runs on it.

Every event a handler publishes must be one its service declares it emits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr
from redis import exceptions as redis_errors

from tests.support.callbacks import ScriptedReceiver
from tests.support.scripted import ScriptedEndpoint
from tributary_agent_runner.service import AgentRunner
from tributary_agent_runner.settings import AgentSettings
from tributary_agent_runner.tools.calculator import calculator_tool
from tributary_agent_runner.tools.registry import Tool, ToolRegistry
from tributary_planner.service import Planner
from tributary_planner.settings import PlannerSettings
from tributary_shared.core.errors import recovery_for
from tributary_shared.core.events import (
    AnyEvent,
    EventEnvelope,
    WorkflowOptions,
    WorkflowRequested,
    decode_event,
    encode_event,
    home_topic,
)
from tributary_shared.core.machine import Move, Transition
from tributary_shared.core.ports import Ports, UnsentEvent
from tributary_shared.core.records import Applied, LogEntry, WorkflowRecord
from tributary_shared.core.redaction import Redactor
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.core.topology import consumers_of, role_of
from tributary_shared.runtime.callbacks.deliverer import CallbackDeliverer
from tributary_shared.runtime.callbacks.settings import CallbackSettings
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.delta_relay import DeltaRelay
from tributary_shared.runtime.kafka.deadletter import DeadLetter
from tributary_shared.runtime.outage_riding import riding_out_outages
from tributary_shared.runtime.outbox import SentMarkingPublisher
from tributary_shared.runtime.record_sender import RecordSender
from tributary_shared.runtime.redaction import redacting
from tributary_shared.runtime.settings import BudgetSettings, WorkflowDefaults
from tributary_shared.runtime.worker import fail_workflow_for_dead_letter, workflow_llms
from tributary_shared.twins import (
    MemoryBudgetLedger,
    MemoryCallbackStore,
    MemoryCallHistory,
    MemoryCancellationSignal,
    MemoryDeltaChannel,
    MemoryEffectLedger,
    MemoryWorkflowStore,
)
from tributary_synthesizer.service import Synthesizer

SERVICES = ("planner", "agent-runner", "synthesizer", "callbacks")
CALLBACK_SECRET = "harness-callback-secret"


class Crash(BaseException):
    """Stands for the process dying here: nothing after this point happens.

    A BaseException, so that no ``except Exception`` in the code under test
    can recover from it, as none could from a real death.
    """


@dataclass(frozen=True)
class Delivery:
    service: str
    event: AnyEvent
    redelivered: bool = False


@dataclass
class _CrashPoint:
    service: str
    event_type: str | None = None
    move: Move | None = None
    remaining: int = 1
    error: type[BaseException] = Crash


@dataclass
class Harness:
    endpoint: ScriptedEndpoint
    tools: Sequence[Tool[Any]] = ()
    deliver_twice: bool = False
    max_iterations: int = 6
    loop_repeat_limit: int = 3
    step_lease_s: float = 1.0
    """Short, so a step whose runner 'died' is taken over within the test."""
    status_recheck_s: float = AgentSettings().status_recheck_s
    status_reads: int = 0
    """Reads of a workflow's status (the agent's check before an LLM call)."""
    planning_lease_s: float = 1.0
    """Short, so a workflow whose planner 'died' is planned within the test."""
    budget_hold_s: float = BudgetSettings().budget_hold_s
    llm: dict[str, object] = field(default_factory=dict)
    """LLM settings over the endpoint's, by variable (``TRIBUTARY_LLM_DEPLOYMENTS``...)."""
    store: MemoryWorkflowStore = field(default_factory=MemoryWorkflowStore)
    cancellations: MemoryCancellationSignal = field(default_factory=MemoryCancellationSignal)
    deltas: MemoryDeltaChannel = field(default_factory=MemoryDeltaChannel)
    """Where the live text of calls goes while someone listens to a workflow's."""
    published: list[EventEnvelope] = field(default_factory=list)
    """Every event any handler published, in order: what the topics carry."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    """Every delivery a service dead-lettered, in order."""
    redactor: Redactor = field(default_factory=Redactor)
    callbacks: MemoryCallbackStore = field(default_factory=MemoryCallbackStore)
    receiver: ScriptedReceiver = field(default_factory=ScriptedReceiver)
    """Every workflow callback sent, and the answers the receiver gives."""
    crashes: int = 0
    _queue: deque[Delivery] = field(default_factory=deque)
    _crash_points: list[_CrashPoint] = field(default_factory=list)
    _handlers: dict[str, Any] = field(default_factory=dict)
    _blips: dict[str, int] = field(default_factory=dict)
    _record_senders: list[RecordSender] = field(default_factory=list)
    _hangs: set[tuple[str, str]] = field(default_factory=set)
    _outboxes: dict[str, SentMarkingPublisher] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.budgets = MemoryBudgetLedger(self.store)
        self.calls = MemoryCallHistory()
        self.effects = MemoryEffectLedger()
        client = self.endpoint.client(**self.llm)
        for service in SERVICES:
            ports = self.ports_of(service)
            records = RecordSender(ports.publisher)  # one per "process", as in a worker
            self._record_senders.append(records)
            llms = workflow_llms(
                ports,
                client,
                llm_settings=self.endpoint.settings(**self.llm),
                budget_settings=BudgetSettings(budget_hold_s=self.budget_hold_s),
                publish_records=records.send,
                redactor=self.redactor,
                deltas=DeltaRelay(self.deltas, redactor=self.redactor, flush_interval_s=0),
            )
            self._handlers[service] = self._build(service, ports, llms)

    def ports_of(self, service: str) -> Ports:
        ports = Ports(
            store=_CrashingStore(self, service),
            budgets=self.budgets,
            publisher=self._outbox_of(service),
            cancellations=self.cancellations,
            calls=_BlippingCalls(self),
            effects=self.effects,
        )
        # As the workers assemble them (runtime.worker.build_app).
        return redacting(riding_out_outages(ports, patience_s=10.0), self.redactor)

    def _outbox_of(self, service: str) -> SentMarkingPublisher:
        # One per service, as a worker has one for all its handlers.
        if service not in self._outboxes:
            self._outboxes[service] = SentMarkingPublisher(
                _ServicePublisher(self, service), self.store, flush_interval_s=None
            )
        return self._outboxes[service]

    async def flush_outbox(self) -> None:
        """Clear the outbox notes of everything published so far."""
        for outbox in self._outboxes.values():
            await outbox.flush()

    def redis_blip(self, *, status_reads: int = 0, history_writes: int = 0) -> None:
        """The next status reads and call-history writes (so many of each) find Redis away."""
        self._blips = {"status": status_reads, "history": history_writes}

    def blips_left(self) -> int:
        return sum(self._blips.values())

    def _blip(self, kind: str) -> None:
        if self._blips.get(kind, 0) > 0:
            self._blips[kind] -= 1
            raise redis_errors.ConnectionError("Redis is away (a blip)")

    def _build(self, service: str, ports: Ports, llms: Any) -> Any:
        if service == "planner":
            return Planner(
                ports,
                llms=llms,
                settings=PlannerSettings(planning_lease_s=self.planning_lease_s),
                budgets=BudgetSettings(budget_hold_s=self.budget_hold_s),
                defaults=WorkflowDefaults(),
                sweep_item_timeout_s=0.5,
            )
        if service == "agent-runner":
            return AgentRunner(
                ports,
                llms=llms,
                tools=ToolRegistry([calculator_tool, *self.tools]),
                settings=AgentSettings(
                    max_iterations=self.max_iterations,
                    loop_repeat_limit=self.loop_repeat_limit,
                    step_lease_s=self.step_lease_s,
                    status_recheck_s=self.status_recheck_s,
                ),
            )
        if service == "callbacks":
            return CallbackDeliverer(
                store=ports.store,
                callbacks=self.callbacks,
                sender=self.receiver,
                # Tries go when a test says (``deliver_callbacks``), not on a timer.
                settings=CallbackSettings(
                    secret=SecretStr(CALLBACK_SECRET), backoff_s=1, poll_interval_s=60
                ),
            )
        return Synthesizer(ports, llms=llms)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Harness]:
        """Starts the handlers' background work (listeners, sweepers) for the block."""
        for handler in self._handlers.values():
            await handler.start()
        await asyncio.sleep(0)  # let the listeners subscribe
        try:
            yield self
        finally:
            for handler in self._handlers.values():
                await handler.close()
            for records in self._record_senders:
                await records.close()
            for outbox in self._outboxes.values():
                await outbox.close()

    # -- driving ----------------------------------------------------------------------

    async def submit(self, task: str, **options: Any) -> str:
        """Accept a request as the gateway does, and queue it for the planner."""
        request = WorkflowRequested(
            workflow_id=f"wf_{len(self.store.records) + 1}",
            task=task,
            options=WorkflowOptions(**options),
        )
        deadline = request.occurred_at.timestamp() + (request.options.deadline_s or 600)
        gateway = self.ports_of("gateway")
        await gateway.store.create_workflow(request, deadline_at=deadline)
        await gateway.publisher.publish([request])
        return request.workflow_id

    async def run(self, *, limit: int = 500) -> None:
        """Deliver queued events until none is left and every call record is published,
        then clear the outbox notes of what was published (a worker clears them as it
        goes)."""
        for _ in range(limit):
            if not self._queue:
                await self.records_published()
            if not self._queue:
                await self.flush_outbox()
                return
            await self.deliver(self._queue.popleft())
        raise AssertionError(f"still delivering after {limit} deliveries")

    async def records_published(self) -> None:
        """Returns once the call records written so far were published (or given up on):
        the services publish them behind the calls (``RecordSender``)."""
        for records in self._record_senders:
            await records.flush()

    async def deliver(self, delivery: Delivery) -> None:
        try:
            await self._handlers[delivery.service].handle(delivery.event)
        except Crash:
            self.crashes += 1
            self._queue.append(Delivery(delivery.service, delivery.event, redelivered=True))
        except Exception as error:
            if not recovery_for(error).dead_letters:
                raise
            await self._dead_letter(delivery, error)

    async def _dead_letter(self, delivery: Delivery, error: Exception) -> None:
        """As the consumer runtime does it: the letter, then the workers' hook."""
        event = delivery.event
        letter = DeadLetter.of(
            consumer=role_of(delivery.service).group_id or delivery.service,
            topic=home_topic(event),
            partition=0,
            offset=len(self.dead_letters),
            key=event.workflow_id.encode(),
            value=encode_event(event),
            headers={},
            error=error,
            attempts=1,
            redact=self.redactor,
        )
        self.dead_letters.append(letter)
        await fail_workflow_for_dead_letter(self.ports_of(delivery.service), event, letter)

    def produce(self, event: EventEnvelope) -> None:
        """``event`` put straight onto its topic from outside the services (an integration,
        a forger): queued for every service that consumes it."""
        self._route(event)

    @property
    def pending(self) -> list[Delivery]:
        return list(self._queue)

    async def deliver_pending(self, index: int, *, twice: bool = False) -> None:
        """Deliver the ``index``-th queued delivery out of order, possibly twice in a row."""
        delivery = self._queue[index]
        del self._queue[index]
        await self.deliver(delivery)
        if twice:
            await self.deliver(Delivery(delivery.service, delivery.event, redelivered=True))

    def start(self, delivery: Delivery) -> asyncio.Task[None]:
        """Run one delivery as a task a test may cancel mid-flight."""
        return asyncio.create_task(self._handlers[delivery.service].handle(delivery.event))

    def take(self, service: str, event_type: str) -> Delivery:
        """Remove and return the first queued delivery of ``event_type`` to ``service``."""
        for delivery in self._queue:
            if delivery.service == service and delivery.event.type == event_type:
                self._queue.remove(delivery)
                return delivery
        raise LookupError(f"no {event_type} queued for {service}")

    def redeliver(self, events: Iterable[EventEnvelope]) -> None:
        """Queue these events again for every consumer, as a replay or a rebalance would."""
        for event in events:
            for role in consumers_of(event.type):
                self._queue.append(Delivery(role.service, _as_any(event), redelivered=True))

    @property
    def planner(self) -> Planner:
        planner: Planner = self._handlers["planner"]
        return planner

    def control(self) -> WorkflowControl:
        return WorkflowControl.over(self.ports_of("gateway"))

    # -- failures ------------------------------------------------------------------------

    def crash_before_publishing(self, service: str, event_type: str, *, times: int = 1) -> None:
        self._crash_points.append(_CrashPoint(service, event_type=event_type, remaining=times))

    def refuse_publishing(self, service: str, event_type: str, *, times: int = 1) -> None:
        """Kafka is unreachable when ``service`` publishes ``event_type``: an ordinary error."""
        self._crash_points.append(
            _CrashPoint(service, event_type=event_type, remaining=times, error=ConnectionError)
        )

    def hang_publishing(self, service: str, event_type: str) -> None:
        """Kafka is away and the producer waits for it: publishing ``event_type`` never ends."""
        self._hangs.add((service, event_type))

    def crash_after(self, service: str, move: Move, *, times: int = 1) -> None:
        self._crash_points.append(_CrashPoint(service, move=move, remaining=times))

    def _maybe_crash(
        self, service: str, *, event_type: str | None = None, move: Move | None = None
    ) -> None:
        for point in self._crash_points:
            hit = point.service == service and point.remaining > 0
            if hit and (
                (event_type is not None and point.event_type == event_type)
                or (move is not None and point.move is move)
            ):
                point.remaining -= 1
                raise point.error(f"{service} failed at {event_type or move}")

    # -- what happened -------------------------------------------------------------------

    async def deliver_callbacks(self) -> None:
        """One look for due workflow callbacks, and their tries, as the deliverer's loop
        makes them."""
        deliverer: CallbackDeliverer = self._handlers["callbacks"]
        await asyncio.gather(*await deliverer.deliver_due())

    async def record(self, workflow_id: str) -> WorkflowRecord:
        record = await self.store.get_workflow(workflow_id)
        assert record is not None
        return record

    def published_of(self, workflow_id: str, event_type: str | None = None) -> list[EventEnvelope]:
        return [
            e
            for e in self.published
            if e.workflow_id == workflow_id and (event_type is None or e.type == event_type)
        ]

    def distinct_ids(self, workflow_id: str, event_type: str) -> Counter[str]:
        """How often each distinct event id of a type was published (re-sends share an id)."""
        return Counter(e.event_id for e in self.published_of(workflow_id, event_type))

    # -- plumbing ------------------------------------------------------------------------

    def _route(self, event: EventEnvelope) -> None:
        for role in consumers_of(event.type):
            self._queue.append(Delivery(role.service, _as_any(event)))
            if self.deliver_twice:
                self._queue.append(Delivery(role.service, _as_any(event), redelivered=True))


def _as_any(event: EventEnvelope) -> AnyEvent:
    """The event as a consumer gets it: encoded and decoded again, as on the wire."""
    return decode_event(event.model_dump_json())


class _ServicePublisher:
    """One service's view of the topics: checks the declared topology, may die first."""

    def __init__(self, harness: Harness, service: str) -> None:
        self._harness = harness
        self._service = service

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        batch = list(events)
        role = role_of(self._service)
        for event in batch:
            assert role.may_publish(event.type), f"{self._service} emits undeclared {event.type}"
            self._harness._maybe_crash(self._service, event_type=event.type)
            if (self._service, event.type) in self._harness._hangs:
                await asyncio.Event().wait()
        for event in batch:
            self._harness.published.append(event)
            self._harness._route(event)


class _CrashingStore:
    """The shared store twin, through which one service's process may die after a write."""

    def __init__(self, harness: Harness, service: str) -> None:
        self._harness = harness
        self._service = service
        self._store = harness.store

    async def apply(self, transition: Transition) -> Applied:
        applied = await self._store.apply(transition)
        self._harness._maybe_crash(self._service, move=transition.move)
        return applied

    async def create_workflow(
        self,
        event: WorkflowRequested,
        *,
        deadline_at: float,
        idempotency_key_value: str | None = None,
    ) -> str | None:
        return await self._store.create_workflow(
            event, deadline_at=deadline_at, idempotency_key_value=idempotency_key_value
        )

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        return await self._store.get_workflow(workflow_id)

    async def write_notices(self, workflow_id: str, events: Sequence[EventEnvelope]) -> bool:
        return await self._store.write_notices(workflow_id, events)

    async def status(self, workflow_id: str) -> tuple[WorkflowStatus | None, float | None]:
        self._harness.status_reads += 1
        self._harness._blip("status")
        return await self._store.status(workflow_id)

    async def read_log(
        self, workflow_id: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
    ) -> list[LogEntry]:
        return await self._store.read_log(workflow_id, after=after, block_ms=block_ms, count=count)

    async def overdue(self, now: float, *, limit: int = 100) -> list[str]:
        return await self._store.overdue(now, limit=limit)

    async def forget_deadline(self, workflow_id: str) -> None:
        await self._store.forget_deadline(workflow_id)

    async def due_inputs(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]:
        return await self._store.due_inputs(now, limit=limit)

    async def forget_input_expiry(self, workflow_id: str, request_id: str) -> None:
        await self._store.forget_input_expiry(workflow_id, request_id)

    async def unsent(self, before: float, *, limit: int = 100) -> list[UnsentEvent]:
        return await self._store.unsent(before, limit=limit)

    async def track(self, events: Sequence[EventEnvelope]) -> None:
        await self._store.track(events)

    async def mark_sent(self, events: Sequence[EventEnvelope]) -> None:
        await self._store.mark_sent(events)

    async def forget_unsent(self, unsent: Sequence[UnsentEvent]) -> None:
        await self._store.forget_unsent(unsent)

    async def purge(self, workflow_id: str) -> bool:
        return await self._store.purge(workflow_id)


class _BlippingCalls:
    """The shared call-history twin, through which Redis may blip."""

    def __init__(self, harness: Harness) -> None:
        self._harness = harness

    async def record(
        self, *, workflow_id: str, step_id: str, attempt: int, fingerprint: str
    ) -> list[str]:
        self._harness._blip("history")
        return await self._harness.calls.record(
            workflow_id=workflow_id, step_id=step_id, attempt=attempt, fingerprint=fingerprint
        )

    async def first_warning(self, *, workflow_id: str, step_id: str, attempt: int) -> bool:
        return await self._harness.calls.first_warning(
            workflow_id=workflow_id, step_id=step_id, attempt=attempt
        )
