"""Assembly of a worker service: Redis, Kafka, the consumer runtime, /health, /metrics.

A worker is an ``AsgiFastStream`` app served by uvicorn: FastStream's broker
publishes events and the ASGI side serves health and Prometheus metrics. The
consumer runtime (``EventConsumer``) starts after the broker and drains before
it stops, so SIGTERM lets in-flight steps finish within the grace period.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope
from prometheus_client import make_asgi_app
from redis.asyncio import Redis

from tributary_shared.core.admission import RateLimits
from tributary_shared.core.errors import ErrorClass
from tributary_shared.core.events import (
    AnyEvent,
    BudgetExhausted,
    ErrorInfo,
    EventEnvelope,
    LLMCalled,
    LLMWaiting,
    ToolCalled,
)
from tributary_shared.core.ports import CallbackStore, DeltaChannel, EventPublisher, Ports
from tributary_shared.core.recording import spill
from tributary_shared.core.redaction import DEFAULT_REDACTOR, Redactor, redact_event
from tributary_shared.runtime.budget import RedisBudgetLedger
from tributary_shared.runtime.callbacks.store import RedisCallbackStore
from tributary_shared.runtime.calls import RedisCallHistory, RedisEffectLedger
from tributary_shared.runtime.cancellation import RedisCancellationSignal
from tributary_shared.runtime.control import WorkflowControl
from tributary_shared.runtime.delta_relay import DeltaRelay
from tributary_shared.runtime.deltas import RedisDeltaChannel
from tributary_shared.runtime.kafka.consumer import ConsumerConfig, EventConsumer, LaneKey
from tributary_shared.runtime.kafka.deadletter import DeadLetter
from tributary_shared.runtime.kafka.publisher import KafkaEventPublisher, make_broker
from tributary_shared.runtime.kafka.security import kafka_security
from tributary_shared.runtime.llm.admission import Admission, CallAdmission, RedisDeploymentGate
from tributary_shared.runtime.llm.client import LLMClient
from tributary_shared.runtime.llm.metered import CompletionClient, WorkflowLLMs
from tributary_shared.runtime.logs import configure_logging
from tributary_shared.runtime.outage_riding import riding_out_outages
from tributary_shared.runtime.outbox import SentMarkingPublisher
from tributary_shared.runtime.record_sender import RecordSender
from tributary_shared.runtime.redaction import redacting
from tributary_shared.runtime.redis_client import redis_client
from tributary_shared.runtime.settings import (
    AdmissionSettings,
    BudgetSettings,
    ConsumerSettings,
    HttpSettings,
    KafkaSettings,
    LLMSettings,
    RedactionSettings,
    RedisSettings,
    TracingSettings,
    load_settings,
)
from tributary_shared.runtime.state import RedisWorkflowStore
from tributary_shared.runtime.tracing import configure_tracing

log = logging.getLogger(__name__)

PublishRecord = Callable[[Sequence[EventEnvelope]], Awaitable[None]]
"""Publishes one call record's events (its parts, then the record), written to its log."""


@dataclass(frozen=True)
class WorkerResources:
    """What a worker's handlers are built from: the ports, and the budgeted LLM access."""

    ports: Ports
    records: RecordSender
    """Publishes the process's call records behind their callers (closed on shutdown)."""
    admission: CallAdmission | None = None
    """When the process's LLM calls may go: one gate per deployment, shared in Redis."""
    redactor: Redactor = DEFAULT_REDACTOR
    """Redacts call records before they are cut into parts (the ports redact the rest)."""
    deltas: DeltaChannel | None = None
    """Where the live text of calls goes while a workflow's tokens are followed."""
    callbacks: CallbackStore | None = None
    """Workflow callbacks' schedule and tries, for the callbacks' deliverer."""

    def control(self) -> WorkflowControl:
        return WorkflowControl.over(self.ports)

    def workflow_llms(self) -> WorkflowLLMs:
        """Budgeted, routed LLM access; reads the LLM and budget settings."""
        llm_settings = load_settings(LLMSettings)
        return workflow_llms(
            self.ports,
            LLMClient(llm_settings, admission=self.admission),
            llm_settings=llm_settings,
            budget_settings=load_settings(BudgetSettings),
            publish_records=self.records.send,
            redactor=self.redactor,
            deltas=DeltaRelay(self.deltas, redactor=self.redactor) if self.deltas else None,
        )


def workflow_llms(
    ports: Ports,
    client: CompletionClient,
    *,
    llm_settings: LLMSettings,
    budget_settings: BudgetSettings,
    publish_records: PublishRecord,
    redactor: Redactor = DEFAULT_REDACTOR,
    deltas: DeltaRelay | None = None,
) -> WorkflowLLMs:
    """LLM calls paid from each workflow's budget; its exhaustion is published, a
    call waiting for its model is noted in its workflow's log and published, each
    call's record is written to its workflow's log, then handed to ``publish_records``
    (a worker's ``RecordSender.send``: published behind the call), and the text of a
    call whose workflow's tokens are followed goes out live (``deltas``)."""

    async def announce(event: BudgetExhausted) -> None:
        await ports.store.track([event])  # noted unsent first: written outside ``apply``
        await ports.publisher.publish([event])

    async def record(call: LLMCalled | ToolCalled) -> None:
        # Redacted before it may be cut into parts: the digest names what is stored.
        # Noted unsent and logged in one round trip: durable from then on (the outbox
        # sends what the log holds and Kafka not), so the publish goes on behind the
        # caller. A record changes no state, and no event's order depends on its.
        sent, parts = spill(redact_event(call, redactor))
        events = [*parts, sent]
        if await ports.store.write_notices(sent.workflow_id, events):
            await publish_records(events)
        # else the workflow has ended (the sweep drops the notes)

    async def notify(event: LLMWaiting) -> bool:
        # Noted unsent and logged, then published: the log holds everything that
        # is published, and the outbox sends later what the log holds and Kafka not.
        if not await ports.store.write_notices(event.workflow_id, [event]):
            return False  # the workflow has ended (the sweep drops the note)
        await ports.publisher.publish([event])
        return True

    return WorkflowLLMs(
        client,
        ports.budgets,
        settings=llm_settings,
        budgets=budget_settings,
        announce=announce,
        notify=notify,
        record=record if llm_settings.record_calls else None,
        deltas=deltas,
    )


def deployment_limits(
    llm: LLMSettings, admission: AdmissionSettings
) -> Callable[[str], RateLimits]:
    """Each deployment's configured per-minute limits, for its admission gate: its own
    ``rpm`` / ``tpm`` (``TRIBUTARY_LLM_DEPLOYMENTS``), else those
    ``TRIBUTARY_LLM_RATE_LIMITS`` gives its id (a model served by
    ``TRIBUTARY_LLM_BASE_URL`` goes by its name)."""
    own = {deployment.id: deployment for deployment in llm.configured_deployments()}

    def limits(deployment_id: str) -> RateLimits:
        deployment = own.get(deployment_id)
        listed = admission.llm_rate_limits.get(deployment_id)
        rpm = deployment.rpm if deployment is not None else None
        tpm = deployment.tpm if deployment is not None else None
        return RateLimits(
            requests_per_minute=rpm or (listed.rpm if listed is not None else None),
            tokens_per_minute=tpm or (listed.tpm if listed is not None else None),
        )

    return limits


def redis_ports(
    redis: Redis,
    listener_redis: Redis,
    *,
    store: RedisWorkflowStore,
    publisher: EventPublisher,
    retention_s: int,
) -> Ports:
    """The ports over Redis (``store`` on ``redis``), publishing with ``publisher``."""
    return Ports(
        store=store,
        budgets=RedisBudgetLedger(redis, ttl_s=retention_s),
        publisher=publisher,
        cancellations=RedisCancellationSignal(redis, listener_redis=listener_redis),
        calls=RedisCallHistory(redis, ttl_s=retention_s),
        effects=RedisEffectLedger(redis, ttl_s=retention_s),
    )


class WorkerLogic(Protocol):
    async def start(self) -> None:
        """Background work of the service (listeners, sweepers), started after the broker."""
        ...

    async def handle(self, event: AnyEvent) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class WorkerSpec:
    service: str
    group_id: str
    topics: tuple[str, ...]
    build: Callable[[WorkerResources], WorkerLogic]
    lane_of: LaneKey | None = None
    hosts: tuple[WorkerSpec, ...] = ()
    """Services that run in this one's process, each with its own consumer group
    (``ServiceRole.hosted_by``): same resources, same health, started and drained
    along with it."""


async def fail_workflow_for_dead_letter(
    ports: Ports, event: AnyEvent | None, letter: DeadLetter
) -> None:
    """A message that could not be processed fails its workflow with a clear reason.

    An undecodable message still names its workflow: the Kafka key. A message
    that was refused (``letter.refused``: another tenant's, or unlike what the
    store recorded) fails nothing: the workflow it names is not its own, and
    goes on as recorded. Nor does a decoded message of another tenant, however
    it failed.
    """
    if letter.refused:
        log.warning(
            "refused %s left its workflow as it is",
            event.type if event is not None else "a message",
            extra={"error_code": letter.error_code},
        )
        return
    workflow_id = event.workflow_id if event is not None else letter.key
    if not workflow_id:
        return
    record = await ports.store.get_workflow(workflow_id)
    if record is None or (event is not None and event.tenant_id != record.tenant_id):
        return
    what = event.type if event is not None else "a malformed event"
    error = ErrorInfo(
        code="processing_failed",
        message=f"{letter.consumer} could not process {what} after "
        f"{letter.attempts} attempt(s) ({letter.error_code}); it was dead-lettered",
        error_class=letter.error_class or ErrorClass.INTERNAL.value,
    )
    await WorkflowControl.over(ports).fail(
        workflow_id,
        tenant_id=record.tenant_id,
        error=error,
        causation_id=event.event_id if event is not None else None,
    )


def build_app(spec: WorkerSpec) -> tuple[AsgiFastStream, HttpSettings]:
    http = load_settings(HttpSettings)
    kafka = load_settings(KafkaSettings)
    redis_settings = load_settings(RedisSettings)
    consumer_settings = load_settings(ConsumerSettings)
    redactor = load_settings(RedactionSettings).redactor()
    instance = http.service_instance or spec.service
    configure_logging(spec.service, level=http.log_level, instance=instance, redact=redactor)
    configure_tracing(spec.service, load_settings(TracingSettings), instance=instance)

    security = kafka_security(kafka)
    broker = make_broker(
        kafka.kafka_bootstrap_servers,
        client_id=f"{kafka.kafka_client_id}-{instance}",
        security=security,
    )
    redis = redis_client(redis_settings)
    listener_redis = redis_client(redis_settings, for_blocking_reads=True)
    publisher = KafkaEventPublisher(broker)
    store = RedisWorkflowStore(redis, retention_s=redis_settings.workflow_retention_s)
    # Every handler's publisher: it clears the outbox notes of what Kafka acknowledged
    # in the background, and is closed (what waits is cleared) after the consumers.
    outbox = SentMarkingPublisher(publisher, store)
    ports = redacting(
        riding_out_outages(
            redis_ports(
                redis,
                listener_redis,
                store=store,
                publisher=outbox,
                retention_s=redis_settings.workflow_retention_s,
            ),
            patience_s=consumer_settings.outage_patience_s,
        ),
        redactor,
    )
    admission_settings = load_settings(AdmissionSettings)
    admission = Admission(
        RedisDeploymentGate(redis, blocking_redis=listener_redis),
        settings=admission_settings,
        limits_for=deployment_limits(load_settings(LLMSettings), admission_settings),
    )
    records = RecordSender(ports.publisher)
    resources = WorkerResources(
        ports=ports,
        records=records,
        admission=admission,
        redactor=redactor,
        deltas=RedisDeltaChannel(redis),
        callbacks=RedisCallbackStore(redis, ttl_s=redis_settings.workflow_retention_s),
    )

    async def on_dead_letter(event: AnyEvent | None, letter: DeadLetter) -> None:
        await fail_workflow_for_dead_letter(ports, event, letter)

    async def publish_raw(
        topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await publisher.publish_raw(topic, value, key=key, headers=headers)

    def consumer_of(logic: WorkerLogic, part: WorkerSpec) -> EventConsumer:
        return EventConsumer(
            ConsumerConfig(
                group_id=part.group_id,
                topics=part.topics,
                bootstrap_servers=kafka.kafka_bootstrap_servers,
                client_id=f"{kafka.kafka_client_id}-{instance}",
                max_in_flight=consumer_settings.max_in_flight,
                attempts=consumer_settings.handler_attempts,
                shutdown_grace_s=consumer_settings.shutdown_grace_s,
                session_timeout_ms=consumer_settings.kafka_session_timeout_ms,
                handler_timeout_s=consumer_settings.handler_timeout_s,
                max_uncommitted_per_partition=consumer_settings.max_uncommitted_per_partition,
                outage_patience_s=consumer_settings.outage_patience_s,
                security=security,
                service=part.service,
            ),
            handler=logic.handle,
            publish_raw=publish_raw,
            on_dead_letter=on_dead_letter,
            lane_of=part.lane_of,
            redact=redactor,
        )

    parts = (spec, *spec.hosts)
    logics = [part.build(resources) for part in parts]
    consumers = [consumer_of(logic, part) for logic, part in zip(logics, parts, strict=True)]

    @get(include_in_schema=False)
    async def health(scope: Scope) -> AsgiResponse:
        redis_ok = await _redis_ok(redis)
        consuming = all(c.healthy for c in consumers)
        ok = consuming and redis_ok
        body = {
            "status": "ok" if ok else "unhealthy",
            "service": spec.service,
            "instance": instance,
            "consumer": "running" if consuming else "stopped",
            "redis": "ok" if redis_ok else "unreachable",
            "in_flight": sum(c.in_flight for c in consumers),
        }
        return AsgiResponse(
            json.dumps(body).encode(),
            200 if ok else 503,
            headers={"content-type": "application/json"},
        )

    @get(include_in_schema=False)
    async def live(scope: Scope) -> AsgiResponse:
        # Liveness must not depend on Redis or Kafka: restarting a worker
        # does not bring them back, and the consumer waits their outages out.
        ok = not any(c.crashed for c in consumers)
        return AsgiResponse(b"ok" if ok else b"consumer loop ended", 200 if ok else 503)

    async def start_consuming() -> None:
        for logic, part, part_consumer in zip(logics, parts, consumers, strict=True):
            await logic.start()
            await part_consumer.start()
            log.info("%s consuming %s as group %s", instance, ",".join(part.topics), part.group_id)

    async def drain() -> None:
        for logic, part_consumer in zip(logics, consumers, strict=True):
            await part_consumer.stop()
            await logic.close()
        await records.close()  # after every handler: none records a call any more
        await outbox.close()  # after the records: their notes are cleared too
        await admission.aclose()
        await listener_redis.aclose()
        await redis.aclose()

    app = AsgiFastStream(
        broker,
        asgi_routes=[("/health", health), ("/livez", live), ("/metrics", make_asgi_app())],
        after_startup=[start_consuming],
        on_shutdown=[drain],
        logger=None,
    )
    return app, http


async def _redis_ok(redis: Redis) -> bool:
    try:
        return bool(await asyncio.wait_for(redis.ping(), timeout=2))
    except Exception:
        return False


def run_worker(spec: WorkerSpec) -> None:
    app, http = build_app(spec)
    uvicorn.run(
        app,
        host=http.http_host,
        port=http.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
