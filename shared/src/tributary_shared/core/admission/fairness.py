"""The order in which waiting calls are admitted: fair across tenants, then workflows.

Start-time fair queueing on two levels. Each tenant with calls waiting has a
virtual time; the tenant with the lowest goes next, and its virtual time
moves on by its stride (``STRIDE / weight``: a tenant of weight 2 moves half
as fast, so it gets twice the turns while both wait). Within the tenant the
same between its workflows, all of weight 1, and within a workflow its calls
go first come, first served. A tenant or workflow that starts waiting joins
at the virtual time of the last one served: it waits its turn in the current
round, earning no credit for the time it was idle. Ties go to whoever began
waiting first.

So a workflow with twenty parallel steps and one with a single step take
turns, whatever order their calls arrived in: the small one never waits
behind the large one's whole backlog.

The Redis adapter keeps the same structures (``runtime/llm/admission/gate.lua``):
sorted sets by virtual time whose members start with the zero-padded "since"
(so Redis orders ties as ``_first`` does, in one lookup however many tie),
and one sorted set per workflow by arrival. Virtual times are integers, so
both sides compare them exactly; they restart at zero whenever the queue
empties.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["STRIDE", "FairQueue", "Ticket", "stride_for"]

STRIDE = 1_000_000
"""Virtual time one turn costs at weight 1."""


def stride_for(weight: float) -> int:
    """Virtual time one turn costs a tenant of ``weight`` (> 0)."""
    return max(1, round(STRIDE / weight))


@dataclass(frozen=True, slots=True)
class Ticket:
    """One call waiting for admission to a deployment."""

    ticket_id: str
    tenant_id: str
    workflow_id: str
    replica: str
    """The process waiting for it: grants are sent there, and its tickets go when it dies."""
    tokens: int = 0
    """Its estimated token cost, for the tokens-per-minute limit."""
    stride: int = STRIDE
    """Its tenant's stride (``stride_for`` its weight)."""


@dataclass
class _Turn:
    virtual_time: int
    since: int
    """Sequence number of the arrival that made it start waiting (ties go to the lower)."""


@dataclass
class _Tenant:
    turn: _Turn
    clock: int = 0
    """Virtual time of the tenant's last served workflow."""
    workflows: dict[str, _Turn] = field(default_factory=dict)


class FairQueue:
    def __init__(self) -> None:
        self._seq = 0
        self._clock = 0
        """Virtual time of the last served tenant."""
        self._tenants: dict[str, _Tenant] = {}
        self._calls: dict[tuple[str, str], dict[str, int]] = {}
        """(tenant, workflow) -> ticket id -> arrival sequence, oldest first."""
        self._tickets: dict[str, Ticket] = {}

    def __len__(self) -> int:
        return len(self._tickets)

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self._tickets

    def tickets_of(self, replica: str) -> list[Ticket]:
        return [ticket for ticket in self._tickets.values() if ticket.replica == replica]

    def enqueue(self, ticket: Ticket) -> None:
        if ticket.ticket_id in self._tickets:
            return
        self._seq += 1
        tenant = self._tenants.get(ticket.tenant_id)
        if tenant is None:
            tenant = _Tenant(turn=_Turn(self._clock, self._seq))
            self._tenants[ticket.tenant_id] = tenant
        if ticket.workflow_id not in tenant.workflows:
            tenant.workflows[ticket.workflow_id] = _Turn(tenant.clock, self._seq)
        self._calls.setdefault((ticket.tenant_id, ticket.workflow_id), {})[ticket.ticket_id] = (
            self._seq
        )
        self._tickets[ticket.ticket_id] = ticket

    def head(self) -> Ticket | None:
        """The call that goes next."""
        if not self._tenants:
            return None
        tenant_id = _first(
            {name: tenant.turn for name, tenant in self._tenants.items()},
        )
        workflow_id = _first(self._tenants[tenant_id].workflows)
        calls = self._calls[(tenant_id, workflow_id)]
        return self._tickets[next(iter(calls))]

    def serve_head(self) -> Ticket | None:
        """Take the head out of the queue and move its tenant and workflow on a turn."""
        ticket = self.head()
        if ticket is None:
            return None
        tenant = self._tenants[ticket.tenant_id]
        self._clock = tenant.turn.virtual_time
        tenant.turn.virtual_time += ticket.stride
        workflow = tenant.workflows[ticket.workflow_id]
        tenant.clock = workflow.virtual_time
        workflow.virtual_time += STRIDE
        self._remove(ticket)
        return ticket

    def leave(self, ticket_id: str) -> Ticket | None:
        """Take a call out (its caller gave up); no turn is used."""
        ticket = self._tickets.get(ticket_id)
        if ticket is not None:
            self._remove(ticket)
        return ticket

    def _remove(self, ticket: Ticket) -> None:
        del self._tickets[ticket.ticket_id]
        key = (ticket.tenant_id, ticket.workflow_id)
        calls = self._calls[key]
        del calls[ticket.ticket_id]
        if calls:
            return
        del self._calls[key]
        tenant = self._tenants[ticket.tenant_id]
        del tenant.workflows[ticket.workflow_id]
        if tenant.workflows:
            return
        del self._tenants[ticket.tenant_id]
        if not self._tenants:
            self._clock = 0


def _first(turns: dict[str, _Turn]) -> str:
    return min(turns, key=lambda name: (turns[name].virtual_time, turns[name].since))
