"""Prometheus metrics shared by every service (each process exposes /metrics).

Label values are bounded sets (roles, statuses, error classes, event types,
model names and deployments from configuration, services, topics and partition
numbers): never ids, which would grow without bound. The admission gauges show
what this process last saw of a deployment's gate, which every replica shares.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
STEP_DURATION_SECONDS = Histogram(
    "step_duration_seconds",
    "Time an agent step ran, from its start to its outcome, by outcome (completed, failed; "
    "stopped: the workflow ended or the step's lease was lost).",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
HANDLERS_IN_PROGRESS = Gauge(
    "handlers_in_progress",
    "Event handlers this process runs now (kind=event), and the distinct workflows "
    "(kind=workflow) and steps (kind=step) they are about, by service.",
    ["service", "kind"],
)
CONSUMER_LAG_RECORDS = Gauge(
    "consumer_lag_records",
    "Records of an assigned partition this consumer group has not finished: the partition's "
    "end offset less the lowest offset in flight (or the fetch position when none is).",
    ["consumer", "topic", "partition"],
)
LLM_TOKENS_TOTAL = Counter(
    "llm_tokens_total",
    "Tokens used by LLM calls, by the model asked for and the deployment that served it.",
    ["model", "deployment", "role", "kind"],
)
LLM_COST_USD_TOTAL = Counter(
    "llm_cost_usd_total",
    "US dollars LLM calls cost at the configured prices (what workflow budgets are charged), "
    "by the model of the chain that served them and its deployment.",
    ["model", "deployment", "role"],
)
LLM_REQUEST_SECONDS = Histogram(
    "llm_request_seconds",
    "Latency of single LLM requests (one HTTP attempt at one deployment).",
    ["model", "deployment", "role", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
LLM_TIME_TO_FIRST_TOKEN_SECONDS = Histogram(
    "llm_time_to_first_token_seconds",
    "Time from sending a streamed LLM request (once admitted) to its first content or "
    "tool-call delta (TRIBUTARY_LLM_STREAM; non-streamed requests are not counted).",
    ["model", "deployment", "role"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
LLM_DELTAS_DROPPED_TOTAL = Counter(
    "llm_deltas_dropped_total",
    "Live llm.delta events not sent to their event streams because Redis did not take "
    "them in time (the calls and their logged messages are unaffected).",
    ["role"],
)
OUTBOX_CLEARS_DROPPED_TOTAL = Counter(
    "outbox_clears_dropped_total",
    "Outbox notes of events Kafka acknowledged that were given up uncleared because too "
    "many waited to be cleared (Redis away or slow); the planner's sweep sends each of "
    "those events once more, a duplicate its consumers recognise.",
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
LLM_DROPPED_CONNECTION_RESENDS_TOTAL = Counter(
    "llm_dropped_connection_resends_total",
    "LLM requests sent again at once because the server closed the connection before "
    "answering (a kept-alive connection it was closing as the request went out); not "
    "counted as outages or retries.",
    ["role", "deployment"],
)
LLM_FALLBACKS_TOTAL = Counter(
    "llm_fallbacks_total",
    "Calls handed over from a deployment to the next of their chain, by the error that "
    "moved them and the deployment they left.",
    ["role", "error_code", "deployment"],
)
LLM_CALLS_WAITING = Gauge(
    "llm_calls_waiting",
    "LLM calls now pausing before their next try, the endpoint having failed, by model.",
    ["model"],
)
CALL_RECORDS_QUEUED = Gauge(
    "call_records_queued",
    "Call records written to their workflow's log and waiting in this process to be "
    "published on Kafka.",
)
CALL_RECORDS_UNPUBLISHED_TOTAL = Counter(
    "call_records_unpublished_total",
    "Call records whose publish failed; their outbox notes stay, and the planner's sweep "
    "publishes them from the log.",
)
BUDGET_EXHAUSTED_TOTAL = Counter(
    "budget_exhausted_total", "LLM calls refused because the workflow's budget ran out.", ["role"]
)
CALLBACK_TRIES_TOTAL = Counter(
    "callback_tries_total",
    "Tries of workflow callbacks, by outcome: delivered, retry (another try follows) or "
    "failed (given up).",
    ["outcome"],
)
LOOPS_DETECTED_TOTAL = Counter(
    "loops_detected_total", "Agent loops detected, by kind and outcome.", ["kind", "outcome"]
)
LLM_BREAKER_STATE = Gauge(
    "llm_breaker_state",
    "1 for the state the deployment's shared circuit breaker is in (closed, open, half_open), "
    "0 for the others.",
    ["deployment", "state"],
)
LLM_RATE_LIMIT = Gauge(
    "llm_rate_limit",
    "The deployment's per-minute limit in force (configured or learned, the lower), "
    "by kind (requests, tokens); 0: none.",
    ["deployment", "kind"],
)
LLM_ADMISSION_WAITING = Gauge(
    "llm_admission_waiting", "LLM calls of this process waiting for their turn.", ["deployment"]
)
LLM_ADMISSION_SENDING = Gauge(
    "llm_admission_sending",
    "Admitted LLM calls of this process awaiting their answer.",
    ["deployment"],
)
LLM_ADMISSION_WAIT_SECONDS = Histogram(
    "llm_admission_wait_seconds",
    "Time LLM calls waited for their turn, by how the wait ended (admitted, deadline, "
    "queue_full, cancelled, bypassed).",
    ["deployment", "outcome"],
    buckets=(0.005, 0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
LLM_RATE_LIMITED_TOTAL = Counter(
    "llm_rate_limited_total", "LLM calls the endpoint answered with 429.", ["deployment"]
)
