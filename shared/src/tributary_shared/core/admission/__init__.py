"""Admission of LLM calls to a provider deployment, shared by every replica: the rules.

A deployment (one endpoint, key and model, named by its id; see
``LLMSettings.deployments_for``) has one gate that every replica of every
service goes through before it sends a call:

- a **circuit breaker** (``breaker``): after repeated outages nobody sends;
  after a cool-down one call probes, and its answer reopens the way for all;
- a **rate limiter** (``pacing``): requests and tokens per minute, configured
  and learned from the provider's headers (``headers``), one budget for the
  whole stack, and a 429's Retry-After pausing everyone;
- a **fair queue** (``fairness``): calls wait their turn across tenants
  (weighted) and workflows, so one busy workflow cannot starve the others.

``gate`` combines them into the operations the Redis adapter runs as one Lua
script each and the in-memory twin runs as written here. No I/O, no clock:
callers pass the time.
"""

from tributary_shared.core.admission.breaker import (
    Breaker,
    BreakerPolicy,
    BreakerState,
    CallOutcome,
    Passage,
    outcome_of,
)
from tributary_shared.core.admission.fairness import STRIDE, FairQueue, Ticket, stride_for
from tributary_shared.core.admission.gate import (
    DEFAULT_PAUSE_S,
    LEARNED_LIMITS_TTL_S,
    DeploymentState,
    GatePolicy,
    GateState,
    Grant,
    Pumped,
    enqueue,
    leave,
    pump,
    report,
)
from tributary_shared.core.admission.headers import (
    RateLimitObservation,
    parse_duration_s,
    read_rate_limit_headers,
)
from tributary_shared.core.admission.pacing import RateLimits, gcra, pace, synced_tat

__all__ = [
    "DEFAULT_PAUSE_S",
    "LEARNED_LIMITS_TTL_S",
    "STRIDE",
    "Breaker",
    "BreakerPolicy",
    "BreakerState",
    "CallOutcome",
    "DeploymentState",
    "FairQueue",
    "GatePolicy",
    "GateState",
    "Grant",
    "Passage",
    "Pumped",
    "RateLimitObservation",
    "RateLimits",
    "Ticket",
    "enqueue",
    "gcra",
    "leave",
    "outcome_of",
    "pace",
    "parse_duration_s",
    "pump",
    "read_rate_limit_headers",
    "report",
    "stride_for",
    "synced_tat",
]
