"""Admission of LLM calls to their deployment, shared by every replica through Redis.

``Admission`` is one process's side (its calls wait their turn, then report
how they ended); ``RedisDeploymentGate`` the shared state it goes through (one
Lua script per operation, the rules of ``core.admission``);
``note_rate_limit_headers`` the httpx hook that hands responses' rate-limit
headers to the call being admitted.
"""

from tributary_shared.runtime.llm.admission.admission import (
    UNPACED,
    Admission,
    CallAdmission,
    Unpaced,
)
from tributary_shared.runtime.llm.admission.heard import note_rate_limit_headers
from tributary_shared.runtime.llm.admission.redis_gate import RedisDeploymentGate

__all__ = [
    "UNPACED",
    "Admission",
    "CallAdmission",
    "RedisDeploymentGate",
    "Unpaced",
    "note_rate_limit_headers",
]
