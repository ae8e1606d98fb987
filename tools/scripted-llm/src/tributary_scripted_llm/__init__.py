"""Scripted OpenAI-compatible LLM server for Tributary's tests, demos and benchmarks.

Without a script it answers deterministically (plans split on ';', calculator and
fetch_url tool calls, quoted plain answers) so whole workflows run offline; rules added
over the ``/_admin`` API (or :class:`ScriptedLLMAdmin`) script specific answers, errors,
delays and hangs per test.
"""

from .admin_client import AdminError, ScriptedLLMAdmin
from .app import StreamBroken, create_app
from .models import (
    ErrorSpec,
    Match,
    RecordedRequest,
    Response,
    Rule,
    RuleStatus,
    ScriptedResponse,
    ServerConfig,
    ToolCallSpec,
    UsageSpec,
)
from .ratelimit import RATE_LIMITED_RULE_ID, RateLimitStats
from .server import ScriptedLLMServer
from .unanswered import ConnectionClosedUnanswered

__all__ = [
    "RATE_LIMITED_RULE_ID",
    "AdminError",
    "ConnectionClosedUnanswered",
    "ErrorSpec",
    "Match",
    "RateLimitStats",
    "RecordedRequest",
    "Response",
    "Rule",
    "RuleStatus",
    "ScriptedLLMAdmin",
    "ScriptedLLMServer",
    "ScriptedResponse",
    "ServerConfig",
    "StreamBroken",
    "ToolCallSpec",
    "UsageSpec",
    "create_app",
]
