"""Admission of LLM calls to their deployment, shared by every replica through Redis.

``RedisDeploymentGate`` is the shared state every replica goes through (one
Lua script per operation, the rules of ``core.admission``).
"""

from tributary_shared.runtime.llm.admission.redis_gate import RedisDeploymentGate

__all__ = ["RedisDeploymentGate"]
