"""A consumer runtime with bounded parallelism beyond partitions.

Why not a framework subscriber: committing a Kafka message commits its whole
partition up to that point, so a framework that commits per handled message
either processes a partition one message at a time (one slow LLM call blocks
every workflow behind it) or commits work that has not finished. Here each
record runs in its own task; ``PartitionOffsets`` commits only the contiguous
prefix of finished records; ``KeyLanes`` keeps one workflow's events in order.

Delivery is at least once. A record whose handler keeps failing (or runs
past ``handler_timeout_s``, when it is cancelled) is retried with backoff a
bounded number of times, then dead-lettered (with its error class, attempt
count and original bytes) so the partition keeps moving; the service's
``on_dead_letter`` hook then fails the affected workflow. Kafka or Redis being
away (``is_outage``) is waited out instead, without using up attempts.

Back-pressure (``backpressure.py``) bounds the records in flight and the
offsets each partition's tracker holds, by pausing partitions of the current
assignment before every fetch.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from tributary_shared.core.errors import (
    Backoff,
    PoisonMessage,
    TransientError,
    recovery_for,
)
from tributary_shared.core.events import AnyEvent, decode_event
from tributary_shared.core.redaction import DEFAULT_REDACTOR
from tributary_shared.core.topics import DEAD_LETTERS
from tributary_shared.runtime import metrics
from tributary_shared.runtime.kafka.backpressure import admissible, partitions_to_pause
from tributary_shared.runtime.kafka.deadletter import DeadLetter
from tributary_shared.runtime.kafka.lag import ConsumerLag
from tributary_shared.runtime.kafka.lanes import KeyLanes
from tributary_shared.runtime.kafka.offsets import PartitionOffsets
from tributary_shared.runtime.kafka.progress import HandlersInProgress
from tributary_shared.runtime.kafka.security import PLAINTEXT, KafkaSecurity
from tributary_shared.runtime.logs import workflow_context
from tributary_shared.runtime.outages import is_outage
from tributary_shared.runtime.retry import retry_forever
from tributary_shared.runtime.tracing import mark_failed, processing

__all__ = [
    "ConsumerConfig",
    "DeadLetterHook",
    "EventConsumer",
    "EventHandler",
    "HandlerTimedOut",
    "LaneKey",
    "RawPublisher",
    "is_outage",
    "kafka_client",
    "workflow_lane",
]

log = logging.getLogger(__name__)

EventHandler = Callable[[AnyEvent], Awaitable[None]]
DeadLetterHook = Callable[[AnyEvent | None, DeadLetter], Awaitable[None]]
LaneKey = Callable[[AnyEvent], bytes | None]
RawPublisher = Callable[[str, bytes, bytes | None, dict[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerConfig:
    group_id: str
    topics: tuple[str, ...]
    bootstrap_servers: str
    client_id: str
    max_in_flight: int = 64
    attempts: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    commit_interval_s: float = 0.5
    shutdown_grace_s: float = 20.0
    outage_patience_s: float = 600.0
    session_timeout_ms: int = 10_000
    handler_timeout_s: float = 3600.0
    max_uncommitted_per_partition: int = 10_000
    revoke_drain_s: float = 2.0
    """How long a revocation waits for the revoked partitions' handlers before the
    group moves on; it holds up the whole group's rebalance, so it stays short."""
    security: KafkaSecurity = PLAINTEXT
    """From ``kafka_security``; plaintext only in tests (a unit test holds every
    construction in the code base to passing it)."""
    service: str = ""
    """The service label of ``handlers_in_progress``; the group id when empty."""
    lag_interval_s: float = 5.0
    """How often ``consumer_lag_records`` is measured (one request per broker)."""


class HandlerTimedOut(TransientError):
    """A handler ran past ``handler_timeout_s`` and was cancelled; the attempt failed."""

    default_code = "handler_timeout"


def kafka_client(config: ConsumerConfig) -> AIOKafkaConsumer:
    """The aiokafka consumer the runtime fetches with (tests pass a fake instead)."""
    return AIOKafkaConsumer(
        bootstrap_servers=config.bootstrap_servers,
        **config.security.client_kwargs(),
        group_id=config.group_id,
        client_id=config.client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Handlers never run inside the poll loop, so polls stay frequent
        # however long a step takes; this bound only catches a stuck loop.
        max_poll_interval_ms=300_000,
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=max(1_000, config.session_timeout_ms // 5),
    )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: EventConsumer) -> None:
        self._runtime = runtime

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._runtime.drain(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # The new assignment arrives unpaused: pause what must be before its
        # first fetch (the poll loop re-applies this before every fetch too).
        self._runtime.apply_backpressure()
        log.info(
            "partitions assigned: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned)
        )


class EventConsumer:
    def __init__(
        self,
        config: ConsumerConfig,
        *,
        handler: EventHandler,
        publish_raw: RawPublisher,
        on_dead_letter: DeadLetterHook | None = None,
        lane_of: LaneKey | None = None,
        client: Callable[[ConsumerConfig], AIOKafkaConsumer] = kafka_client,
        redact: Callable[[str], str] = DEFAULT_REDACTOR,
    ) -> None:
        self._config = config
        self._redact = redact
        self._client = client
        self._lane_of: LaneKey = lane_of or workflow_lane
        self._handler = handler
        self._publish_raw = publish_raw
        self._on_dead_letter = on_dead_letter
        self._offsets: dict[TopicPartition, PartitionOffsets] = {}
        self._tasks_of: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._lanes = KeyLanes()
        self._tasks: set[asyncio.Task[None]] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._in_progress = HandlersInProgress.of(config.service or config.group_id)
        self._lag = ConsumerLag(config.group_id)
        self._lag_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        consumer = self._client(self._config)
        consumer.subscribe(topics=list(self._config.topics), listener=_Rebalance(self))
        await consumer.start()
        self._consumer = consumer
        self._loop_task = asyncio.create_task(
            self._poll_loop(), name=f"poll:{self._config.group_id}"
        )
        self._lag_task = asyncio.create_task(
            self._lag.run(consumer, self._lowest_in_flight, interval_s=self._config.lag_interval_s),
            name=f"lag:{self._config.group_id}",
        )

    @property
    def healthy(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def crashed(self) -> bool:
        """The poll loop ended without being stopped: only a restart helps."""
        return (
            self._loop_task is not None and self._loop_task.done() and not self._stopping.is_set()
        )

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def stop(self) -> None:
        """Drain: stop fetching, give in-flight work a grace period, commit, leave the group.

        Work that does not finish in time is cancelled without committing its
        offset, so another replica picks it up after the rebalance.
        """
        self._stopping.set()
        if self._lag_task is not None:
            self._lag_task.cancel()
            await asyncio.gather(self._lag_task, return_exceptions=True)
            self._lag.forget_all()
        if self._loop_task is not None:
            await self._loop_task
        if self._tasks:
            _done, pending = await asyncio.wait(
                set(self._tasks), timeout=self._config.shutdown_grace_s
            )
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning(
                    "%d records left unfinished at shutdown; they will be redelivered", len(pending)
                )
        await self.commit()
        if self._consumer is not None:
            await self._consumer.stop()

    async def drain(self, revoked: set[TopicPartition]) -> None:
        """Hand revoked partitions over deliberately.

        Their handlers get ``revoke_drain_s`` to finish, so that what finishes
        quickly is committed rather than redelivered. Handlers still running
        then are not cancelled: an agent step may run far longer than a
        rebalance may wait, and it stays owned by its step lease, so the new
        owner's delivery waits for its outcome instead of running it twice.
        Their offsets are left uncommitted here; the new owner acknowledges
        them.
        """
        running = {t for tp in revoked for t in self._tasks_of.get(tp, ()) if not t.done()}
        if running:
            await asyncio.wait(running, timeout=self._config.revoke_drain_s)
        await self.commit(only=revoked)
        still = sum(1 for t in running if not t.done())
        if still:
            log.info("%d handlers of revoked partitions go on under their step leases", still)
        for tp in revoked:
            self._offsets.pop(tp, None)
            self._tasks_of.pop(tp, None)
        self._lag.forget(revoked)

    # -- polling ---------------------------------------------------------------

    async def _poll_loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        loop = asyncio.get_running_loop()
        next_commit = loop.time() + self._config.commit_interval_s
        while not self._stopping.is_set():
            self.apply_backpressure()
            try:
                # Fetch even when full (every partition is paused then): a
                # consumer that stops fetching for max_poll_interval_ms is
                # put out of the group. aiokafka refuses max_records=0.
                batches = await consumer.getmany(
                    timeout_ms=200, max_records=max(self._free_slots(), 1)
                )
            except Exception:
                log.exception("fetching records failed; retrying")
                await asyncio.sleep(1.0)
                continue
            self._start_records(consumer, batches)
            if loop.time() >= next_commit:
                await self.commit()
                next_commit = loop.time() + self._config.commit_interval_s

    def apply_backpressure(self) -> None:
        """Pause the partitions of the current assignment that must not be fetched; resume the rest.

        Compared with what aiokafka reports as paused, never with a flag of
        our own: each rebalance hands over fresh, unpaused partition state.
        """
        consumer = self._consumer
        if consumer is None:
            return
        assigned = set(consumer.assignment())
        to_pause = partitions_to_pause(
            assigned,
            free_slots=self._free_slots(),
            held={tp: offsets.held for tp, offsets in self._offsets.items()},
            max_held=self._config.max_uncommitted_per_partition,
        )
        paused = set(consumer.paused())
        if to_pause - paused:
            consumer.pause(*(to_pause - paused))
        if paused - to_pause:
            consumer.resume(*(paused - to_pause))

    def _lowest_in_flight(self) -> dict[TopicPartition, int]:
        lowest = {tp: offsets.lowest_in_flight for tp, offsets in self._offsets.items()}
        return {tp: offset for tp, offset in lowest.items() if offset is not None}

    def _free_slots(self) -> int:
        return self._config.max_in_flight - len(self._tasks)

    def _start_records(
        self,
        consumer: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]],
    ) -> None:
        # No await in here: the assignment cannot change between the fetch
        # and the seeks below.
        free = self._free_slots()
        for tp, records in batches.items():
            offsets = self._offsets.setdefault(tp, PartitionOffsets())
            room = admissible(
                free_slots=free,
                held=offsets.held,
                max_held=self._config.max_uncommitted_per_partition,
            )
            if room < len(records):
                # Fetched past a limit (one partition's share of a fetch, or a
                # partition assigned between pausing and fetching). Rewind so
                # the rest is fetched again when there is room: skipping it
                # would let a later commit pass over it.
                consumer.seek(tp, records[room].offset)
            for record in records[:room]:
                offsets.started(record.offset)
                task = asyncio.create_task(self._process(tp, record, offsets))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                of_partition = self._tasks_of.setdefault(tp, set())
                of_partition.add(task)
                task.add_done_callback(of_partition.discard)
            free -= min(room, len(records))

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        if self._consumer is None:
            return
        to_commit: dict[TopicPartition, int] = {}
        for tp, offsets in self._offsets.items():
            if only is not None and tp not in only:
                continue
            offset = offsets.committable()
            if offset is not None:
                to_commit[tp] = offset
        if not to_commit:
            return
        try:
            await self._consumer.commit(to_commit)
        except Exception:
            # Not fatal: the next commit carries the same offsets or later ones.
            log.warning("offset commit failed; will retry", exc_info=True)
            return
        for tp, offset in to_commit.items():
            if tp in self._offsets:
                self._offsets[tp].mark_committed(offset)

    # -- one record --------------------------------------------------------------

    async def _process(
        self,
        tp: TopicPartition,
        record: ConsumerRecord[Any, Any],
        offsets: PartitionOffsets | None = None,
    ) -> None:
        # A record whose handling is cancelled (shutdown past the grace period)
        # is never marked finished: its offset stays uncommitted and the record
        # is redelivered to whichever replica takes the partition over.
        # ``offsets`` is the tracker the record was started in: if the
        # partition is revoked and assigned again meanwhile, finishing here
        # must not mark the same offset finished in the new tracker.
        try:
            event = decode_event(record.value or b"")
        except ValidationError as exc:
            metrics.EVENTS_CONSUMED_TOTAL.labels(self._config.group_id, "unknown", "poison").inc()
            reason = PoisonMessage(
                f"undecodable event: {_first_error(exc)}", code="event_malformed"
            )
            await self._dead_letter(record, None, reason, attempts=1)
        else:
            async with self._lanes.lane(self._lane_of(event)):
                with workflow_context(event.workflow_id), self._processing(record, event):
                    await self._handle_with_retries(record, event)
        if offsets is None:
            offsets = self._offsets.get(tp)
        if offsets is not None:
            offsets.finished(record.offset)

    def _processing(
        self, record: ConsumerRecord[Any, Any], event: AnyEvent
    ) -> AbstractContextManager[object]:
        # The record's span, a child of its publisher's (the trace context in its headers).
        return processing(
            record.topic,
            event,
            record.headers,
            group=self._config.group_id,
            partition=record.partition,
            offset=record.offset,
        )

    async def _handle_with_retries(self, record: ConsumerRecord[Any, Any], event: AnyEvent) -> None:
        consumer_name = self._config.group_id
        extra = {"event_type": event.type, "event_id": event.event_id}
        loop = asyncio.get_running_loop()
        attempt = 0
        outage_started: float | None = None
        while True:
            deadline = asyncio.timeout(self._config.handler_timeout_s)
            try:
                async with deadline:
                    with self._in_progress.handling(event):
                        await self._handler(event)
            except asyncio.CancelledError:
                raise
            except Exception as raised:
                exc: Exception = raised
                if deadline.expired():
                    # Checked first: the TimeoutError raised here is no outage.
                    exc = HandlerTimedOut(
                        f"handling {event.type} took longer than "
                        f"{self._config.handler_timeout_s:g}s and was cancelled"
                    )
                    log.error("%s", exc.message, extra=extra)
                elif is_outage(exc):
                    # Kafka or Redis is briefly away (a restart, a failover): wait for
                    # it without using up the attempts meant for broken messages.
                    outage_started = outage_started or loop.time()
                    if loop.time() - outage_started < self._config.outage_patience_s:
                        log.warning("infrastructure unavailable (%r); retrying", exc, extra=extra)
                        await asyncio.sleep(self._backoff(4))
                        continue
                attempt += 1
                # The error table says which errors no retry can mend (a poison message).
                if attempt >= self._config.attempts or recovery_for(exc).dead_letters:
                    log.exception(
                        "giving up on %s after %d attempts", event.type, attempt, extra=extra
                    )
                    metrics.EVENTS_CONSUMED_TOTAL.labels(
                        consumer_name, event.type, "dead_lettered"
                    ).inc()
                    await self._dead_letter(record, event, exc, attempts=attempt)
                    return
                log.warning(
                    "handling %s failed (attempt %d/%d): %s",
                    event.type,
                    attempt,
                    self._config.attempts,
                    exc,
                    extra=extra,
                )
                await asyncio.sleep(self._backoff(attempt))
            else:
                metrics.EVENTS_CONSUMED_TOTAL.labels(consumer_name, event.type, "ok").inc()
                return

    def _backoff(self, attempt: int) -> float:
        backoff = Backoff(base_s=self._config.backoff_base_s, cap_s=self._config.backoff_max_s)
        return backoff.delay(attempt, jitter=random.random())

    async def _dead_letter(
        self,
        record: ConsumerRecord[Any, Any],
        event: AnyEvent | None,
        error: BaseException,
        *,
        attempts: int,
    ) -> None:
        letter = DeadLetter.of(
            consumer=self._config.group_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers={k: v.decode(errors="replace") for k, v in (record.headers or ())},
            error=error,
            attempts=attempts,
            redact=self._redact,
        )
        error_class, code = letter.error_class, letter.error_code
        mark_failed(error_type=code, error_class=error_class)
        metrics.DEAD_LETTERS_TOTAL.labels(self._config.group_id, error_class).inc()
        # Keep trying while Kafka is away: losing a dead letter would lose the
        # message itself, and its offset is committed only once this returns.
        await retry_forever(
            lambda: self._publish_raw(
                DEAD_LETTERS.name,
                letter.model_dump_json().encode(),
                record.key,
                {"error_class": error_class, "error_code": code},
            ),
            what=f"publishing a dead letter for {record.topic}[{record.partition}]@{record.offset}",
            first_wait_s=self._config.backoff_base_s,
            max_wait_s=self._config.backoff_max_s,
            logger=log,
        )
        log.error(
            "dead-lettered %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            code,
            extra={"error_code": code, "topic": record.topic},
        )
        if self._on_dead_letter is not None:
            try:
                await self._on_dead_letter(event, letter)
            except Exception:
                log.exception("the dead-letter hook failed for %s", code)


def workflow_lane(event: AnyEvent) -> bytes:
    """Default lane: one workflow's events are handled one at a time, in order."""
    return event.workflow_id.encode()


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid"
    err = errors[0]
    where = ".".join(str(p) for p in err["loc"]) or "<root>"
    return f"{where}: {err['msg']}"
