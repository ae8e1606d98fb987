"""The ports: everything a handler talks to, as small keyword-only protocols.

Each port has a runtime adapter (Redis or Kafka, under ``tributary_shared.runtime``)
and an in-memory twin (``tributary_shared.twins``); one contract-test suite runs
against both (``tests/contract``), so a twin cannot drift from the real thing.
Handlers receive a ``Ports`` bundle and never build adapters themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tributary_shared.core.access import ApiKeyRecord
from tributary_shared.core.admission import (
    CallOutcome,
    DeploymentState,
    GatePolicy,
    Grant,
    Pumped,
    RateLimitObservation,
    Ticket,
)
from tributary_shared.core.budget import BudgetLimits, BudgetState, Reservation
from tributary_shared.core.callbacks import CallbackAttempt, CallbackState
from tributary_shared.core.deltas import LLMDelta
from tributary_shared.core.events import EventEnvelope, TokenUsage, WorkflowRequested
from tributary_shared.core.listing import LISTING_SCAN_ENTRIES, WorkflowFilter
from tributary_shared.core.machine import Transition
from tributary_shared.core.records import Applied, LogEntry, WorkflowPage, WorkflowRecord
from tributary_shared.core.status import WorkflowStatus

__all__ = [
    "ApiKeyStore",
    "BudgetLedger",
    "CallHistory",
    "CallbackProgress",
    "CallbackStore",
    "CancellationSignal",
    "DeltaChannel",
    "DeploymentGate",
    "EffectIntent",
    "EffectLedger",
    "EventPublisher",
    "FollowerOverrun",
    "IdempotencyKeyReused",
    "KeyIdTaken",
    "LogFollower",
    "Ports",
    "RateLimiter",
    "RunningWorkflows",
    "UnsentEvent",
    "WorkflowListing",
    "WorkflowStillActive",
    "WorkflowStore",
]


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used for a different request."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"the key was first used for workflow {workflow_id}")
        self.workflow_id = workflow_id


class WorkflowStillActive(Exception):
    """The workflow has not ended, so its state may not be deleted yet."""

    def __init__(self, status: WorkflowStatus) -> None:
        super().__init__(f"the workflow is {status}")
        self.status = status


class WorkflowStore(Protocol):
    """Workflow records and each workflow's event log; transitions written atomically."""

    async def create_workflow(
        self,
        event: WorkflowRequested,
        *,
        deadline_at: float,
        idempotency_key_value: str | None = None,
    ) -> str | None:
        """Record a new workflow, or find the one its Idempotency-Key already names.

        Returns None when this call wrote the workflow from ``event``: publish
        ``event``. Returns a workflow id when the key already named one (the
        same request was made before): that workflow exists when this returns,
        written from ``event`` under the first id if the first attempt died
        before writing it. Its ``workflow.requested`` is the first entry of its
        log; while it is ``pending``, publish that one (same event id), not
        ``event``.

        The key is claimed and the deadline indexed before the workflow is
        written: a crash in between leaves a claim that the next attempt
        completes, and never a workflow that no deadline ends.

        Raises ``IdempotencyKeyReused`` when the key was used for a different
        request, and (without a key) ``TransitionConflict`` when the workflow
        already exists.
        """
        ...

    async def apply(self, transition: Transition) -> Applied:
        """Check and write one transition and append its events, all or nothing.

        Raises ``TransitionConflict`` (nothing written) when the rules refuse it.
        """
        ...

    async def write_notices(self, workflow_id: str, events: Sequence[EventEnvelope]) -> bool:
        """Note notices (events that change none of the workflow's state, such as
        ``llm.waiting``) as unsent and append them, in order, to an active workflow's
        log: ``track`` then the append, in one round trip.

        Returns False, appending none of them, once the workflow has ended or when it
        does not exist: a notice never follows the final event, nor brings a log back.
        The notes may stay, and the outbox sweep drops them (the log holds no such
        event). What it returns True for is durable: a reader of the log sees it, and
        the sweep publishes it if nobody else does.
        """
        ...

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None: ...

    async def due_inputs(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]:
        """(workflow id, request id) of input requests whose expiry is at or before ``now``,
        soonest first; indexed when the request opened, dropped when it settles."""
        ...

    async def forget_input_expiry(self, workflow_id: str, request_id: str) -> None:
        """Drop a request from the expiry index (settled, or its workflow ended)."""
        ...

    async def status(self, workflow_id: str) -> tuple[WorkflowStatus | None, float | None]:
        """The workflow's status and deadline (epoch seconds), in one cheap read."""
        ...

    async def read_log(
        self, workflow_id: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
    ) -> list[LogEntry]:
        """Events after position ``after``; waits up to ``block_ms`` when there are none."""
        ...

    async def overdue(self, now: float, *, limit: int = 100) -> list[str]:
        """Workflows past their deadline that may still be running."""
        ...

    async def forget_deadline(self, workflow_id: str) -> None: ...

    async def unsent(self, before: float, *, limit: int = 100) -> list[UnsentEvent]:
        """Events written before ``before`` that may not have reached Kafka yet.

        Every transition notes its events here before it writes them (``apply``),
        as does ``track``; publishing them clears the note (``mark_sent``), and
        a sweeper publishes what stays noted too long from the workflow's log.
        A note whose write was refused names an event the log does not hold.
        """
        ...

    async def track(self, events: Sequence[EventEnvelope]) -> None:
        """Note events written outside ``apply`` (a budget's announcement) as unsent."""
        ...

    async def mark_sent(self, events: Sequence[EventEnvelope]) -> None:
        """These events reached Kafka: clear their notes (unknown ones are ignored)."""
        ...

    async def forget_unsent(self, unsent: Sequence[UnsentEvent]) -> None:
        """Drop notes the sweeper has dealt with (sent, refused, or long gone)."""
        ...

    async def purge(self, workflow_id: str) -> bool:
        """Delete an ended workflow: its record, steps, log, budget, call history,
        effect ledger, and its entries in the listings, deadlines, running set and
        outbox.

        Returns False when there is no such workflow (never was, expired, or
        already deleted). Raises ``WorkflowStillActive`` (nothing deleted) while
        it runs. The workflow's own keys go first, at once, leaving a tombstone:
        from then on it reads as absent, and neither a retried request nor a
        late event can create it again; the index entries follow, and one a
        crash leaves behind is skipped, then dropped, by the listing.
        """
        ...


class WorkflowListing(Protocol):
    """Workflows by tenant, newest first: what the gateway lists (the workflow store keeps it)."""

    async def list_workflows(
        self,
        *,
        tenant_id: str | None,
        limit: int,
        cursor: str | None = None,
        filters: WorkflowFilter | None = None,
        scan: int = LISTING_SCAN_ENTRIES,
    ) -> WorkflowPage:
        """Workflows newest first: one tenant's, or every tenant's when ``tenant_id`` is None.

        At most ``limit`` of them that pass ``filters``, created before the page
        ``cursor`` came from (``WorkflowPage.next_cursor``; pass the same filters
        again). A page reads at most ``scan`` index entries and stops there, so
        it may hold fewer than ``limit`` while more follow (workflows that
        expired, were deleted or do not match are skipped): go on while
        ``next_cursor`` is set. Time bounds seek in the index (``core.listing``).
        Lists what was created in the last ``retention + 7 days``: a workflow
        still running after that (only a default deadline can be that long)
        drops out of listings, not out of the store.
        """
        ...


@dataclass(frozen=True, slots=True)
class UnsentEvent:
    """A note of the outbox: an event of a workflow, not yet known to be on Kafka.

    ``event_id`` is empty for a note of the first layout (a workflow id alone,
    for its request or final event).
    """

    workflow_id: str
    event_id: str


class FollowerOverrun(Exception):
    """A follower fell too far behind its log's live entries and was dropped.

    Its reader reconnects from the last entry it received (SSE ``Last-Event-ID``).
    """


class LogFollower(Protocol):
    """Follows workflows' logs live, many at once over few connections (SSE streams)."""

    def follow(self, workflow_id: str, *, after: str) -> AsyncIterator[list[LogEntry]]:
        """Batches of the log's entries after position ``after``, as they are written.

        An empty batch means nothing came for a while: the caller may look at
        the workflow's state or send a keep-alive. Raises ``FollowerOverrun``
        when the caller reads slower than the log grows, past a bound.
        """
        ...


class KeyIdTaken(Exception):
    """A new API key drew the id of a stored one (a new key, with a new id, will do)."""


class ApiKeyStore(Protocol):
    """API keys' records (each key's hash, never the key), shared by every gateway replica.

    The gateway reads a key's record on every request, so a key takes effect,
    and a revocation holds, on every replica from the next request on.
    """

    async def add(self, record: ApiKeyRecord) -> None:
        """Store a new key's record; raises ``KeyIdTaken`` when its id is in use."""
        ...

    async def get(self, key_id: str) -> ApiKeyRecord | None: ...

    async def list_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        """Every key, or one tenant's, oldest first."""
        ...

    async def revoke(self, key_id: str) -> bool:
        """Forget the key; False when there was no such key."""


class RunningWorkflows(Protocol):
    """Each tenant's running workflows, counted across every gateway replica.

    The count is derived, not kept: a member stops counting once its workflow's
    record says it ended (or, never created, after ``core.quotas.RUNNING_GRACE_S``),
    so a gateway or worker that dies cannot leak a slot.
    """

    async def admit(self, tenant_id: str, workflow_id: str, *, limit: int) -> bool:
        """Count the workflow if fewer than ``limit`` run; False (nothing counted) if not."""
        ...

    async def release(self, tenant_id: str, workflow_id: str) -> None:
        """Stop counting a workflow that was admitted but not created after all."""
        ...

    async def running(self, tenant_id: str) -> int: ...


class RateLimiter(Protocol):
    """Requests per key, paced across every replica (GCRA, ``core.quotas.gcra``)."""

    async def acquire(self, key: str, *, per_second: float, burst: int) -> float:
        """Take one request: 0.0 if allowed, else the seconds until one would be."""
        ...


class BudgetLedger(Protocol):
    """Per-workflow token and cost budgets, shared by every service and replica.

    The rules (admission, exhaustion, holds that lapse) are ``BudgetAccount``'s
    in ``tributary_shared.core.budget``.
    """

    async def open(self, workflow_id: str, limits: BudgetLimits) -> None:
        """Set the limits; a second call keeps the first ones."""
        ...

    async def reserve(
        self, workflow_id: str, *, tenant_id: str, tokens: int, micro_usd: int, hold_s: float
    ) -> Reservation:
        """Hold a call's worst case for at most ``hold_s`` seconds, under a new id.

        Holds whose time has passed lapse first (their amounts stop counting).
        Raises ``BudgetNotOpened`` when the workflow's budget was never opened,
        and ``BudgetExceeded`` when the call is refused: with ``busy`` set when
        only other calls' holds stand in the way (nothing is marked; try again
        once they settle); otherwise the budget is exhausted, and the first such
        refusal marks it, appends a ``budget.exhausted`` event to the workflow's
        log and carries the event on the exception (``announcement``) for the
        caller to publish.
        """
        ...

    async def settle(
        self, workflow_id: str, reservation_id: str, *, usage: TokenUsage, micro_usd: int
    ) -> None:
        """Replace the reservation's hold by the call's real usage.

        A hold that lapsed is still charged its usage; settling a reservation
        again, or one the ledger does not know, changes nothing.
        """
        ...

    async def state(self, workflow_id: str) -> BudgetState: ...


class EventPublisher(Protocol):
    async def publish(self, events: Iterable[EventEnvelope]) -> None:
        """Publish each event on its home topic, keyed by workflow; returns once acknowledged."""
        ...


class CancellationSignal(Protocol):
    """Tells every agent-runner at once that a workflow's running steps must stop."""

    async def announce(self, workflow_id: str) -> None: ...

    def listen(self) -> AsyncIterator[str]:
        """Workflow ids announced from now on; survives connection losses by itself."""
        ...


class DeltaChannel(Protocol):
    """Live ``llm.delta`` events of workflows, for whoever listens now; nothing is kept."""

    async def listened(self, workflow_id: str) -> bool:
        """Whether anyone listens to the workflow's deltas now (worth streaming a call)."""
        ...

    async def publish(self, deltas: Sequence[LLMDelta]) -> None:
        """Send each delta to its workflow's listeners, in order; unheard ones are gone."""
        ...

    def listen(self, workflow_id: str) -> AsyncIterator[LLMDelta]:
        """The workflow's deltas published from now on (listening starts at the first
        ``anext``), until the iterator is closed."""
        ...


class CallHistory(Protocol):
    """One attempt's tool-call fingerprints, for loop detection across replicas."""

    async def record(
        self, *, workflow_id: str, step_id: str, attempt: int, fingerprint: str
    ) -> list[str]:
        """Append a fingerprint; return the attempt's recent history, oldest first."""
        ...

    async def first_warning(self, *, workflow_id: str, step_id: str, attempt: int) -> bool:
        """True once per attempt: its model has not been warned about a loop yet."""
        ...


class DeploymentGate(Protocol):
    """The admission gate of each LLM deployment, shared by every replica.

    The rules (breaker, pacing, fair order) are ``core.admission``'s; each
    operation is atomic. ``policy`` carries the caller's configuration.
    """

    async def enqueue(self, deployment: str, ticket: Ticket, *, policy: GatePolicy) -> Pumped:
        """Put a call in the queue, then pump (see ``pump``) for its replica."""
        ...

    async def pump(self, deployment: str, *, replica: str, policy: GatePolicy) -> Pumped:
        """Admit what may go now. ``granted`` lists every call admitted; those of
        other replicas are also handed to them (``take_grants``)."""
        ...

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
        """An admitted call ended: learn from it, move the breaker, then pump."""
        ...

    async def leave(self, deployment: str, ticket_id: str) -> None:
        """Take a call out of the queue: its caller stopped waiting."""
        ...

    async def take_grants(self, deployment: str, *, replica: str, timeout_s: float) -> list[Grant]:
        """Grants other replicas' pumps made for ``replica``'s calls; waits up to
        ``timeout_s`` for the first."""
        ...

    async def state(self, deployment: str) -> DeploymentState: ...

    async def deployments(self) -> list[str]:
        """Every deployment whose gate was used."""
        ...


@dataclass(frozen=True, slots=True)
class EffectIntent:
    """What the ledger knows of a side-effecting call about to be made."""

    recorded: str | None
    """The result an earlier attempt recorded: use it instead of calling again."""
    repeated: bool
    """An earlier attempt began this call and recorded no result: it may have acted."""


class EffectLedger(Protocol):
    """Results of side-effecting tool calls, so a step run again does not act twice."""

    async def intend(self, *, workflow_id: str, step_id: str, fingerprint: str) -> EffectIntent:
        """Note that the call is about to be made, before it is; say what is known of it."""
        ...

    async def record(
        self, *, workflow_id: str, step_id: str, fingerprint: str, output: str
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class CallbackProgress:
    """How far a workflow's callback got: its state and every try so far."""

    state: CallbackState = "pending"
    attempts: tuple[CallbackAttempt, ...] = ()


class CallbackStore(Protocol):
    """Workflow callbacks still to be delivered, and the record of their tries.

    A callback is scheduled when its workflow ends and stays scheduled until a try
    delivers it or it is given up, so a deliverer that dies loses none: what it had
    taken comes due again once its lease lapses.
    """

    async def schedule(self, workflow_id: str, *, at: float) -> None:
        """Put the workflow's callback on the schedule at ``at`` (epoch seconds), unless it
        is on it already (a redelivered terminal event moves nothing)."""
        ...

    async def due(self, *, now: float, lease_s: float, limit: int) -> list[str]:
        """Up to ``limit`` workflows whose callback is due at ``now``, each moved to
        ``now + lease_s`` so that no other deliverer takes it meanwhile."""
        ...

    async def progress(self, workflow_id: str) -> CallbackProgress: ...

    async def record_attempt(
        self, workflow_id: str, attempt: CallbackAttempt, *, state: CallbackState
    ) -> None:
        """Add a try to the workflow's record and set the callback's state."""
        ...

    async def retry_at(self, workflow_id: str, at: float) -> None:
        """Move a scheduled callback's next try to ``at``."""
        ...

    async def unschedule(self, workflow_id: str) -> None:
        """Take the callback off the schedule: delivered, given up, or nothing to send."""
        ...


@dataclass(frozen=True, slots=True)
class Ports:
    """Everything the planner, agent-runner and synthesizer handlers do I/O through."""

    store: WorkflowStore
    budgets: BudgetLedger
    publisher: EventPublisher
    cancellations: CancellationSignal
    calls: CallHistory
    effects: EffectLedger
