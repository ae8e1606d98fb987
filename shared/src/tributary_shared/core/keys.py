"""Redis key layout (version segment ``v1``; a layout change bumps it).

All keys of one workflow share the hash tag ``{<workflow id>}`` so that a
Redis Cluster keeps them in one slot and multi-key scripts stay atomic.

    tributary:v1:wf:{id}          HASH    workflow fields (status, task, result, usage...),
                                          "planning_owner" and "planning_lease_until"
                                          (the planner's lease); once the workflow is
                                          deleted, "purged_at" alone (a tombstone, for the
                                          retention), so that nothing creates it again
                                          "input:<request>" (an input request, JSON),
                                          "input:<request>:state", "inputs_open" (count)
    tributary:v1:wf:{id}:steps    HASH    per step: "<step>:status", "<step>:data" (JSON),
                                          "<step>:event" (its outcome), "<step>:owner" and
                                          "<step>:lease_until" (the runner's lease),
                                          "<step>:checkpoint" (where a paused agent stopped)
    tributary:v1:wf:{id}:log      STREAM  every event of the workflow, in order; ids
                                          serve as SSE ``Last-Event-ID``
    tributary:v1:wf:{id}:budget   HASH    token/cost limits, reserved and used amounts
    tributary:v1:wf:{id}:budget:holds     HASH  reservation id -> "<tokens> <micro_usd>" while
                                          held, "lapsed" once expired unsettled, "settled"
    tributary:v1:wf:{id}:budget:expiries  ZSET  held reservation ids by expiry (epoch seconds,
                                          Redis's clock)
    tributary:v1:wf:{id}:calls:{step}:a{attempt}  LIST  tool-call fingerprints of one attempt
                                          of a step (loop detection)
    tributary:v1:wf:{id}:calls:{step}:a{attempt}:warned  STRING  set once that attempt's model
                                          was warned of a loop
    tributary:v1:wf:{id}:calls:{step}:effects  HASH    fingerprint -> result of a side-effecting
                                          tool call (the effect ledger)
    tributary:v1:wf:{id}:callback HASH    "state" of the workflow's callback once a try
                                          settled it: "delivered" or "failed"
    tributary:v1:wf:{id}:callback:attempts  LIST  every try of the callback (JSON), in order
    tributary:v1:idem:{tenant}:{key}  STRING  Idempotency-Key -> "<workflow id> <request
                                          fingerprint>", set before that workflow is
                                          written (a retry writes it if it is missing)
    tributary:v1:deadlines        ZSET    workflow id by deadline (epoch seconds)
    tributary:v1:input_expiries   ZSET    [workflow id, request id] of each input request
                                          that expires, by expiry (epoch seconds)
    tributary:v1:workflows        ZSET    "<created, µs, 17 digits>-<workflow id>", all score 0:
                                          every workflow by creation (listing, lexical order)
    tributary:v1:tenant:{tenant}:workflows  ZSET  the same for one tenant's workflows
    tributary:v1:{apikeys}:key:{key id}  STRING  JSON of an API key's record: tenant, scopes,
                                          SHA-256 of the key (never the key); deleted on revoke
    tributary:v1:{apikeys}:ids    ZSET    API key ids by creation time (listing); the literal
                                          hash tag keeps every key's records in one cluster slot
    tributary:v1:outbox           ZSET    [workflow id, event id] of every event written
                                          to a log, by the time it was written, until it
                                          is known sent (the outbox; see ``outbox_member``)
    tributary:v1:callbacks:due    ZSET    workflow ids whose callback is to be tried, by
                                          when (epoch seconds); a deliverer that takes one
                                          moves it a lease ahead, and removes it once the
                                          callback is delivered or given up
    tributary:v1:cancellations    PUB/SUB workflow ids whose running steps must stop now
    tributary:v1:stream-token-secret  STRING  random bytes (hex) every gateway replica signs
                                          stream tokens with, unless one is configured;
                                          written once (SET NX), never expires
    tributary:v1:wf:{id}:deltas   PUB/SUB the workflow's live ``llm.delta`` events (JSON), for
                                          event streams with ``mode=tokens``; never stored

The admission gate of each LLM deployment (``core.admission``) shares the hash
tag ``{<deployment>}``, so its script stays atomic in one slot:

    tributary:v1:llm:{d}:gate     HASH    breaker, rate limiter (theoretical arrival
                                          times, learned and configured limits, pause),
                                          the queue's virtual clock and arrival counter
    tributary:v1:llm:{d}:tickets  HASH    ticket id -> the waiting call (JSON)
    tributary:v1:llm:{d}:tenants  ZSET    "<arrival>:<tenant>" for tenants with calls waiting,
                                          by virtual time (the zero-padded arrival that made
                                          it start waiting breaks ties)
    tributary:v1:llm:{d}:since    HASH    "t:<tenant>" / "w:<tenant>:<workflow>" -> its member
    tributary:v1:llm:{d}:clocks   HASH    tenant -> virtual time of its last served workflow
    tributary:v1:llm:{d}:t:<tenant>   ZSET    "<arrival>:<workflow>" for the tenant's
                                          workflows with calls waiting, by virtual time
    tributary:v1:llm:{d}:w:<tenant>:<workflow>  ZSET  the workflow's waiting tickets, by arrival
    tributary:v1:llm:{d}:replicas ZSET    replica -> when it counts as dead
    tributary:v1:llm:{d}:r:<replica>  SET     the replica's waiting tickets
    tributary:v1:llm:{d}:grants:<replica>  LIST  grants for the replica's tickets that
                                          another replica's pump made
    tributary:v1:llm:deployments  SET     every deployment seen (for ``make status``)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PREFIX = "tributary:v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEADLINES_KEY = f"{PREFIX}:deadlines"
INPUT_EXPIRIES_KEY = f"{PREFIX}:input_expiries"
"""Open input requests that expire, by expiry: the planner's sweep settles them."""
OUTBOX_KEY = f"{PREFIX}:outbox"
"""Events that may not have reached Kafka yet, by the time they were written."""
CALLBACKS_DUE_KEY = f"{PREFIX}:callbacks:due"
"""Workflow callbacks still to be delivered, by when their next try is due."""
CANCELLATIONS_CHANNEL = f"{PREFIX}:cancellations"
DEPLOYMENTS_KEY = f"{PREFIX}:llm:deployments"
"""Every LLM deployment whose admission gate was used, for ``make status``."""
WORKFLOWS_INDEX_KEY = f"{PREFIX}:workflows"
"""Every workflow by creation, for listing them across tenants."""
API_KEY_IDS_KEY = f"{PREFIX}:{{apikeys}}:ids"
STREAM_TOKEN_SECRET_KEY = f"{PREFIX}:stream-token-secret"
"""The gateways' shared secret for stream tokens when none is configured."""


@dataclass(frozen=True, slots=True)
class WorkflowKeys:
    workflow_id: str

    @property
    def workflow(self) -> str:
        return f"{PREFIX}:wf:{{{self.workflow_id}}}"

    @property
    def steps(self) -> str:
        return f"{self.workflow}:steps"

    @property
    def log(self) -> str:
        return f"{self.workflow}:log"

    @property
    def budget(self) -> str:
        return f"{self.workflow}:budget"

    @property
    def budget_holds(self) -> str:
        """Each reservation of the budget by id: held amounts, or how it ended."""
        return f"{self.budget}:holds"

    @property
    def budget_expiries(self) -> str:
        """The budget's held reservations by expiry, so lapsed ones are found at once."""
        return f"{self.budget}:expiries"

    @property
    def deltas(self) -> str:
        """The pub/sub channel of the workflow's live ``llm.delta`` events.

        A channel, not a stream: deltas go to whoever listens now and take no
        memory in Redis; its subscriber count says whether anyone listens.
        """
        return f"{self.workflow}:deltas"

    @property
    def callback(self) -> str:
        """How the workflow's callback ended, once it did."""
        return f"{self.workflow}:callback"

    @property
    def callback_attempts(self) -> str:
        """Every try of the workflow's callback, in order."""
        return f"{self.callback}:attempts"

    def tool_calls(self, step_id: str, attempt: int) -> str:
        """Fingerprints of one attempt's tool calls, for loop detection.

        Per attempt: a step run again after a crash repeats the calls of the
        attempt that crashed, which is recovery, not a loop.
        """
        return f"{self.workflow}:calls:{step_id}:a{attempt}"

    def loop_warned(self, step_id: str, attempt: int) -> str:
        """Set once the attempt's model was warned about a loop."""
        return f"{self.tool_calls(step_id, attempt)}:warned"

    def tool_effects(self, step_id: str) -> str:
        """Results of the step's side-effecting tool calls, by call fingerprint.

        Per step, across attempts: that is what keeps a rerun from acting twice.
        """
        return f"{self.workflow}:calls:{step_id}:effects"

    def all(self) -> tuple[str, str, str]:
        return (self.workflow, self.steps, self.log)

    def every(self, attempts: Iterable[tuple[str, int]]) -> list[str]:
        """Every key of the workflow's slot, given each step's id and its attempts so far.

        What deleting the workflow removes; the record comes first.
        """
        keys = [
            *self.all(),
            self.budget,
            self.budget_holds,
            self.budget_expiries,
            self.callback,
            self.callback_attempts,
        ]
        for step_id, attempt in attempts:
            keys.append(self.tool_effects(step_id))
            for run in range(attempt + 1):  # attempts count from 1; 0 costs nothing
                keys.extend((self.tool_calls(step_id, run), self.loop_warned(step_id, run)))
        return keys


def idempotency_key(tenant_id: str, key: str) -> str:
    return f"{PREFIX}:idem:{tenant_id}:{key}"


def tenant_workflows_key(tenant_id: str) -> str:
    """One tenant's workflows by creation, for listing them."""
    return f"{PREFIX}:tenant:{tenant_id}:workflows"


def listing_member(created_at: datetime, workflow_id: str) -> str:
    """A workflow's entry in a listing index: ordered by creation, then by id.

    Fixed-width digits (microseconds since the epoch) make the lexical order of
    members the order of creation, so a member is an exact, tie-free cursor.
    """
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros:017d}-{workflow_id}"


def listing_bound(moment: datetime) -> str:
    """A bound below every listing member of a workflow created at ``moment`` or later,
    and above every one created earlier (exact to the microsecond, as members are)."""
    return f"{(moment - _EPOCH) // timedelta(microseconds=1):017d}"


def listing_start(epoch_s: float) -> str:
    """A bound below every listing member of a workflow created at ``epoch_s`` or later."""
    return f"{int(epoch_s * 1_000_000):017d}"


def outbox_notes_of(workflow_id: str) -> str:
    """A ZSCAN pattern matching every outbox note of the workflow (see ``outbox_member``)."""
    return "\\[" + json.dumps(workflow_id) + ",*"


def listing_workflow_id(member: str) -> str:
    return member.partition("-")[2]


def api_key_key(key_id: str) -> str:
    return f"{PREFIX}:{{apikeys}}:key:{key_id}"


def running_workflows_key(tenant_id: str) -> str:
    """A tenant's running workflows: a sorted set of workflow ids by admission time (ms)."""
    return f"{PREFIX}:tenant:{{{tenant_id}}}:running"


def rate_limit_key(name: str, principal: str) -> str:
    """One caller's GCRA state (its theoretical arrival time) for one named limit."""
    return f"{PREFIX}:rate:{name}:{{{principal}}}"


def outbox_member(workflow_id: str, event_id: str) -> str:
    """An event's note in the outbox (a JSON pair: either id may hold any character)."""
    return json.dumps([workflow_id, event_id], separators=(",", ":"))


def outbox_entry(member: str) -> tuple[str, str]:
    """(workflow id, event id) of a note; the event id is empty for a first-layout
    note, which held a workflow id alone (for its request or final event)."""
    try:
        workflow_id, event_id = json.loads(member)
    except (ValueError, TypeError):  # not JSON, or not a pair
        return member, ""
    return str(workflow_id), str(event_id)


@dataclass(frozen=True, slots=True)
class DeploymentKeys:
    """The admission gate of one LLM deployment (see the module's layout)."""

    deployment: str

    @property
    def prefix(self) -> str:
        return f"{PREFIX}:llm:{{{self.deployment}}}"

    @property
    def gate(self) -> str:
        return f"{self.prefix}:gate"

    @property
    def tickets(self) -> str:
        return f"{self.prefix}:tickets"

    @property
    def tenants(self) -> str:
        return f"{self.prefix}:tenants"

    @property
    def since(self) -> str:
        return f"{self.prefix}:since"

    @property
    def clocks(self) -> str:
        return f"{self.prefix}:clocks"

    @property
    def replicas(self) -> str:
        return f"{self.prefix}:replicas"

    def grants(self, replica: str) -> str:
        return f"{self.prefix}:grants:{replica}"

    def fixed(self) -> list[str]:
        """The keys every gate script is given, in the order it reads them."""
        return [self.gate, self.tickets, self.tenants, self.since, self.clocks, self.replicas]
