"""The planner, agent-runner and synthesizer handlers together, in this process.

The handlers are the services' real classes over the in-memory twins of their
ports (``tributary_shared.twins``), assembled as the workers assemble them
(redacting, marking what was sent) but for the LLM client and the tools, which
the caller gives. An event a handler publishes is delivered to every service
whose topology (``core.topology``) says it consumes it, one delivery at a time,
in order, as encoded and decoded on the wire. Nothing runs in the background:
no deadline, expiry or outbox sweeps, no cancellation listener, and the outbox
notes of what was published are cleared when a run ends rather than as it goes
(nothing sweeps them in between). Input requests
are answered (or expired) only when the caller does it (``inputs``), typically
from ``run``'s ``on_idle``: nothing waits for a person.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tributary_agent_runner.service import AgentRunner
from tributary_agent_runner.settings import AgentSettings
from tributary_agent_runner.tools.registry import ToolRegistry
from tributary_planner.service import Planner
from tributary_planner.settings import PlannerSettings
from tributary_shared.core.events import (
    AnyEvent,
    EventEnvelope,
    WorkflowRequested,
    decode_event,
    encode_event,
)
from tributary_shared.core.ports import Ports
from tributary_shared.core.records import WorkflowRecord
from tributary_shared.core.redaction import Redactor
from tributary_shared.core.topology import consumers_of
from tributary_shared.runtime.inputs import WorkflowInputs
from tributary_shared.runtime.llm.metered import CompletionClient
from tributary_shared.runtime.outbox import SentMarkingPublisher
from tributary_shared.runtime.redaction import redacting
from tributary_shared.runtime.settings import (
    BudgetSettings,
    LLMSettings,
    RedactionSettings,
    WorkflowDefaults,
    load_settings,
)
from tributary_shared.runtime.worker import workflow_llms
from tributary_shared.twins import (
    MemoryBudgetLedger,
    MemoryCallHistory,
    MemoryCancellationSignal,
    MemoryEffectLedger,
    MemoryWorkflowStore,
)
from tributary_synthesizer.service import Synthesizer

__all__ = ["Pipeline", "PipelineError", "ServiceSettings"]

SERVICES = ("planner", "agent-runner", "synthesizer")


class PipelineError(Exception):
    """A handler failed on a delivery (a bug, or events unlike what the store holds)."""

    def __init__(self, message: str, *, service: str = "", event: AnyEvent | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.event = event


@dataclass(frozen=True)
class ServiceSettings:
    """The services' settings: they decide prompts, limits, routing and budgets."""

    llm: LLMSettings = field(default_factory=LLMSettings)
    budgets: BudgetSettings = field(default_factory=BudgetSettings)
    defaults: WorkflowDefaults = field(default_factory=WorkflowDefaults)
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    redactor: Redactor = field(default_factory=Redactor)

    @classmethod
    def from_environment(cls) -> ServiceSettings:
        """As the services read them (the same ``TRIBUTARY_*`` variables)."""
        return cls(
            llm=load_settings(LLMSettings),
            budgets=load_settings(BudgetSettings),
            defaults=load_settings(WorkflowDefaults),
            planner=load_settings(PlannerSettings),
            agent=load_settings(AgentSettings),
            redactor=load_settings(RedactionSettings).redactor(),
        )


class Pipeline:
    """One workflow run through the real handlers (see the module)."""

    def __init__(
        self, *, client: CompletionClient, tools: ToolRegistry, settings: ServiceSettings
    ) -> None:
        self.store = MemoryWorkflowStore()
        self.published: list[EventEnvelope] = []
        """Every event a handler published, in order."""
        self._settings = settings
        self._budgets = MemoryBudgetLedger(self.store)
        self._cancellations = MemoryCancellationSignal()
        self._calls = MemoryCallHistory()
        self._effects = MemoryEffectLedger()
        self._queue: deque[tuple[str, AnyEvent]] = deque()
        self._handlers: dict[str, Any] = {}
        self._outbox = SentMarkingPublisher(_Delivering(self), self.store, flush_interval_s=None)
        for service in SERVICES:
            ports = self._ports()
            llms = workflow_llms(
                ports,
                client,
                llm_settings=settings.llm,
                budget_settings=settings.budgets,
                # Published where they are made, not behind the calls: the rerun's checks
                # see every event in the order the handlers made them.
                publish_records=ports.publisher.publish,
            )
            if service == "planner":
                self._handlers[service] = Planner(
                    ports,
                    llms=llms,
                    settings=settings.planner,
                    budgets=settings.budgets,
                    defaults=settings.defaults,
                )
            elif service == "agent-runner":
                self._handlers[service] = AgentRunner(
                    ports, llms=llms, tools=tools, settings=settings.agent
                )
            else:
                self._handlers[service] = Synthesizer(ports, llms=llms)

    @property
    def inputs(self) -> WorkflowInputs:
        """Answers and expires input requests as the gateway and the planner do; what
        they publish is delivered like any other event."""
        ports = self._ports()
        return WorkflowInputs(store=ports.store, publisher=ports.publisher)

    def _ports(self) -> Ports:
        ports = Ports(
            store=self.store,
            budgets=self._budgets,
            publisher=self._outbox,
            cancellations=self._cancellations,
            calls=self._calls,
            effects=self._effects,
        )
        return redacting(ports, self._settings.redactor)

    async def run(
        self,
        request: WorkflowRequested,
        *,
        deadline_s: float,
        observe: Callable[[EventEnvelope], None] | None = None,
        on_idle: Callable[[], Awaitable[bool]] | None = None,
        limit: int = 10_000,
    ) -> WorkflowRecord | None:
        """Accept ``request`` as the gateway does, with ``deadline_s`` from now, and deliver
        until nothing is left; ``observe`` sees each published event once its delivery
        has ended. ``on_idle``, when nothing is left to deliver, may publish more (answer
        an input request) and says whether it did. Returns the workflow as the store
        holds it at the end."""
        gateway = self._ports()
        await gateway.store.create_workflow(request, deadline_at=time.time() + deadline_s)
        await gateway.publisher.publish([request])
        seen = 0
        for _ in range(limit):
            if observe is not None:
                for event in self.published[seen:]:
                    observe(event)
                seen = len(self.published)
            if not self._queue:
                if on_idle is None or not await on_idle():
                    await self._outbox.flush()
                    return await self.store.get_workflow(request.workflow_id)
                continue  # what on_idle published is observed, then delivered
            service, event = self._queue.popleft()
            try:
                await self._handlers[service].handle(event)
            except Exception as error:
                raise PipelineError(
                    f"the {service} failed on {event.type}: {error!r}", service=service, event=event
                ) from error
        raise PipelineError(f"still delivering after {limit} deliveries")

    async def close(self) -> None:
        for handler in self._handlers.values():
            await handler.close()
        await self._outbox.close()

    def _route(self, events: Iterable[EventEnvelope]) -> None:
        for event in events:
            self.published.append(event)
            for role in consumers_of(event.type):
                if role.service not in SERVICES:
                    continue  # a rerun calls no one outside: no workflow callback is sent
                # As a consumer gets it: encoded and decoded again, as on the wire.
                self._queue.append((role.service, decode_event(encode_event(event))))


class _Delivering:
    """The topics: what is published is queued for its consumers."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        self._pipeline._route(list(events))
