"""Prometheus metrics shared by every service (each process exposes /metrics).

Label values are bounded sets (roles, statuses, error classes, event types,
model names from configuration): never ids, which would grow without bound.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WORKFLOW_DURATION_SECONDS = Histogram(
    "workflow_duration_seconds",
    "Time from acceptance to a terminal state.",
    ["status"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
WORKFLOW_STATUS_TOTAL = Counter(
    "workflow_status_total", "Workflows that reached each status.", ["status"]
)
AGENT_ITERATIONS_COUNT = Histogram(
    "agent_iterations_count",
    "LLM iterations an agent step took.",
    ["outcome"],
    buckets=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30),
)
LLM_TOKENS_TOTAL = Counter(
    "llm_tokens_total", "Tokens used by LLM calls.", ["model", "role", "kind"]
)
LLM_REQUEST_SECONDS = Histogram(
    "llm_request_seconds",
    "Latency of single LLM requests.",
    ["model", "role", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
LLM_RETRIES_TOTAL = Counter(
    "llm_retries_total", "LLM request retries by error class.", ["role", "error_class"]
)
TOOL_CALL_ERRORS_TOTAL = Counter(
    "tool_call_errors_total", "Tool calls that failed.", ["tool", "error_class"]
)
EVENTS_CONSUMED_TOTAL = Counter(
    "events_consumed_total", "Events handled by a consumer.", ["consumer", "event_type", "outcome"]
)
DEAD_LETTERS_TOTAL = Counter(
    "dead_letters_total", "Messages sent to the dead-letter topic.", ["consumer", "error_class"]
)
LLM_FALLBACKS_TOTAL = Counter(
    "llm_fallbacks_total",
    "Calls moved to the fallback model, by the error that moved them.",
    ["role", "error_code"],
)
BUDGET_EXHAUSTED_TOTAL = Counter(
    "budget_exhausted_total", "LLM calls refused because the workflow's budget ran out.", ["role"]
)
LOOPS_DETECTED_TOTAL = Counter(
    "loops_detected_total", "Agent loops detected, by kind and outcome.", ["kind", "outcome"]
)
