"""Assembles the gateway: settings, clients, routers; and its metrics app. Nothing else.

The public app serves ``/v1``, the health checks and the web inspector's static files
under ``/ui``; ``/metrics`` is served by
``metrics_app`` on a port of its own (``TRIBUTARY_GATEWAY_METRICS_PORT``), so
whoever reaches the API does not read the gateway's metrics.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route

from tributary_gateway.body_limit import BodyLimit
from tributary_gateway.deps import GatewayState
from tributary_gateway.inspector import mount_inspector
from tributary_gateway.openapi import keep_example_nulls
from tributary_gateway.redaction import redact_error_responses
from tributary_gateway.routes import health, keys, workflows
from tributary_gateway.settings import GatewaySettings, TenantLimitSettings
from tributary_gateway.stream_secret import FixedStreamSecret, RedisStreamSecret
from tributary_gateway.streams import StreamSlots
from tributary_shared.core.redaction import DEFAULT_REDACTOR, Redactor
from tributary_shared.runtime.apikeys import RedisApiKeyStore
from tributary_shared.runtime.budget import RedisBudgetLedger
from tributary_shared.runtime.callbacks.settings import CallbackSettings
from tributary_shared.runtime.callbacks.store import RedisCallbackStore
from tributary_shared.runtime.cancellation import RedisCancellationSignal
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.deltas import RedisDeltaChannel
from tributary_shared.runtime.fanout import LogFanout
from tributary_shared.runtime.kafka.publisher import (
    ACK_TIMEOUT_S,
    KafkaEventPublisher,
    make_broker,
)
from tributary_shared.runtime.kafka.security import kafka_security
from tributary_shared.runtime.logs import configure_logging
from tributary_shared.runtime.outages import is_outage
from tributary_shared.runtime.outbox import SentMarkingPublisher
from tributary_shared.runtime.quotas import RedisRateLimiter, RedisRunningWorkflows
from tributary_shared.runtime.redaction import RedactingPublisher, RedactingStore
from tributary_shared.runtime.redis_client import redis_client, single_connection_client
from tributary_shared.runtime.settings import (
    BudgetSettings,
    HttpSettings,
    KafkaSettings,
    RedactionSettings,
    RedisSettings,
    TracingSettings,
    WorkflowDefaults,
    load_settings,
)
from tributary_shared.runtime.state import RedisWorkflowStore
from tributary_shared.runtime.state.log_reader import RedisLogReader
from tributary_shared.runtime.tracing import configure_tracing

log = logging.getLogger(__name__)


def create_app() -> FastAPI:
    http = load_settings(HttpSettings)
    kafka = load_settings(KafkaSettings)
    redis_settings = load_settings(RedisSettings)
    gateway = load_settings(GatewaySettings)
    defaults = load_settings(WorkflowDefaults)
    redactor = load_settings(RedactionSettings).redactor()
    budgets = load_settings(BudgetSettings)
    tenant_limits = load_settings(TenantLimitSettings)
    callback_settings = load_settings(CallbackSettings)
    instance = http.service_instance or "gateway"
    configure_logging("gateway", level=http.log_level, instance=instance, redact=redactor)
    tracing = configure_tracing("gateway", load_settings(TracingSettings), instance=instance)
    security = kafka_security(kafka)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = redis_client(redis_settings)
        # The cancellation listener blocks; that client must not time out under it.
        blocking = redis_client(redis_settings, for_blocking_reads=True)
        # Every event stream of this replica is served by one XREAD on one connection.
        log_reader = single_connection_client(redis_settings)
        broker = make_broker(
            kafka.kafka_bootstrap_servers,
            client_id=f"{kafka.kafka_client_id}-{instance}",
            security=security,
        )
        await broker.start()
        retention = redis_settings.workflow_retention_s
        redis_store = RedisWorkflowStore(redis, retention_s=retention)
        # What it writes and publishes (a task, a cancel's reason) is redacted first.
        store = RedactingStore(redis_store, redactor)
        # Bounded: a request must be answered while Kafka is away (a create with 503,
        # a cancel once recorded); the sweep of unsent events sends it later.
        outbox = SentMarkingPublisher(
            KafkaEventPublisher(broker, ack_timeout_s=ACK_TIMEOUT_S), redis_store
        )
        publisher = RedactingPublisher(outbox, redactor)
        follower = LogFanout(
            RedisLogReader(log_reader, redis),
            store,
            idle_s=gateway.sse_ping_s,
            max_backlog=gateway.stream_backlog,
        )
        await follower.start()
        deltas = RedisDeltaChannel(redis, listener_redis=blocking)
        app.state.gateway = GatewayState(
            settings=gateway,
            store=store,
            ledger=RedisBudgetLedger(redis, ttl_s=retention),
            follower=follower,
            streams=StreamSlots(gateway.max_streams),
            publisher=publisher,
            broker=broker,
            redis=redis,
            control=WorkflowControl(
                store=store,
                publisher=publisher,
                cancellations=RedisCancellationSignal(redis, listener_redis=blocking),
            ),
            defaults=defaults,
            keys=RedisApiKeyStore(redis),
            listing=redis_store,  # reads: nothing to redact
            budgets=budgets,
            tenant_limits=tenant_limits,
            running=RedisRunningWorkflows(redis, ttl_s=retention),
            rates=RedisRateLimiter(redis, name="requests"),
            stream_secret=(
                FixedStreamSecret(gateway.stream_token_secret.get_secret_value().encode())
                if gateway.stream_token_secret is not None
                else RedisStreamSecret(redis)
            ),
            deltas=deltas,
            callback_settings=callback_settings,
            callbacks=RedisCallbackStore(redis, ttl_s=retention),
        )
        try:
            yield
        finally:
            await broker.stop()
            await outbox.close()  # clears the notes of what was sent, before Redis goes
            await follower.close()
            await deltas.close()
            await log_reader.aclose()
            await blocking.aclose()
            await redis.aclose()

    app = _assemble(lifespan, gateway, redactor)
    if tracing:
        trace_requests(app, redactor)
    return app


# The span attributes that hold the request's query string, whichever semantic
# conventions the instrumentation follows.
_URL_ATTRIBUTES = ("http.url", "url.full", "url.query", "http.target")


def trace_requests(app: FastAPI, redactor: Redactor = DEFAULT_REDACTOR) -> None:
    """A server span for each API request: the root of the trace of a workflow it starts.

    The probes are left out (they would be most of the traces), and so are the ASGI
    ``receive``/``send`` spans, one per chunk of an event stream. The URL a span
    records is redacted: an event stream's URL carries its stream token.
    """
    # Imported only when tracing is on.
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.trace import Span

    def redact_url(span: Span, scope: dict[str, Any]) -> None:
        recorded = getattr(span, "attributes", None)
        if not scope.get("query_string") or not recorded:
            return
        for name in _URL_ATTRIBUTES:
            value = recorded.get(name)
            if isinstance(value, str):
                span.set_attribute(name, redactor(value))

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="/healthz,/readyz",
        exclude_spans=["receive", "send"],
        server_request_hook=redact_url,
    )


def app_over(state: GatewayState, *, redactor: Redactor = DEFAULT_REDACTOR) -> FastAPI:
    """The gateway over clients built elsewhere (tests give it the in-memory twins).

    Reads no settings from the environment, configures no logging, connects nothing.
    """
    app = _assemble(None, state.settings, redactor)
    app.state.gateway = state
    return app


def _assemble(
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None,
    settings: GatewaySettings,
    redactor: Redactor,
) -> FastAPI:
    app = FastAPI(
        title="Tributary gateway",
        version="0.1.0",
        description="Start agentic workflows, follow them live, read their results.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(workflows.router)
    app.include_router(workflows.stream_router)
    app.include_router(keys.router)
    keep_example_nulls(app)
    mount_inspector(app)
    app.add_exception_handler(RedisError, _storage_unavailable)
    redact_error_responses(app, redactor)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        _allow_cross_origin(app, settings.cors_origins)
    return app


# What a page of another origin may send and read. Keys and limits are checked inside
# the routes, so an error (401, 429, 503, and the 413 of the body limit) passes out
# through this middleware, added last and so outermost, and carries its headers too.
_CORS_METHODS = ["GET", "POST", "DELETE"]
_CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"]
_CORS_RESPONSE_HEADERS = ["Retry-After", "Location", "Idempotent-Replayed", "WWW-Authenticate"]


def _allow_cross_origin(app: FastAPI, origins: list[str]) -> None:
    """Answer CORS for ``origins``: preflights here, before any key is asked for.

    Credentials (cookies, HTTP auth) stay off: the API never reads a cookie, and a
    page sends its key in ``Authorization``, or a stream token in the URL.
    """
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=False,
        allow_methods=_CORS_METHODS,
        allow_headers=_CORS_REQUEST_HEADERS,
        expose_headers=_CORS_RESPONSE_HEADERS,
        max_age=600,
    )


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    """Redis away (or refusing writes: OOM, READONLY) is a 503 the client may retry."""
    if not is_outage(exc):
        raise exc
    log.warning("Redis is unavailable: %s", type(exc).__name__)
    return JSONResponse(
        {"detail": "the workflow store is unavailable; please retry"},
        status_code=503,
        headers={"Retry-After": "2"},
    )


def metrics_app() -> Starlette:
    """The metrics port's app: ``/metrics`` (this process's registry) and ``/healthz``."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/healthz", healthz), Mount("/metrics", app=make_asgi_app())])
