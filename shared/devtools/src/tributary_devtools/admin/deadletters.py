"""Reading the dead-letter topic and re-driving chosen letters to their topic.

A letter is named by its position on the dead-letter topic, ``<partition>:<offset>``.
Re-driving publishes the original bytes, key and headers to the original topic
with one more header, ``tributary-redriven-from``, so the consumer sees the
message again and the operator can tell it was re-driven.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from tributary_shared.core.topics import DEAD_LETTERS
from tributary_shared.runtime.kafka.deadletter import DeadLetter
from tributary_shared.runtime.kafka.security import PLAINTEXT, KafkaSecurity

REDRIVEN_HEADER = "tributary-redriven-from"


@dataclass(frozen=True)
class StoredLetter:
    position: str  # "<partition>:<offset>" on the dead-letter topic
    letter: DeadLetter


def parse_position(text: str) -> tuple[int, int]:
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"not a dead-letter position (<partition>:<offset>): {text!r}")
    return int(partition), int(offset)


async def read_letters(
    bootstrap: str, *, security: KafkaSecurity = PLAINTEXT, idle_ms: int = 1500
) -> list[StoredLetter]:
    """Every letter on the topic, oldest first per partition."""
    consumer = AIOKafkaConsumer(
        DEAD_LETTERS.name,
        bootstrap_servers=bootstrap,
        **security.client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    letters: list[StoredLetter] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=idle_ms)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    try:
                        letter = DeadLetter.model_validate_json(record.value or b"")
                    except ValidationError:
                        continue  # not ours; leave it alone
                    letters.append(StoredLetter(f"{record.partition}:{record.offset}", letter))
    finally:
        await consumer.stop()
    return letters


async def fetch_letter(
    bootstrap: str, position: str, *, security: KafkaSecurity = PLAINTEXT
) -> DeadLetter:
    partition, offset = parse_position(position)
    tp = TopicPartition(DEAD_LETTERS.name, partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **security.client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        records = batch.get(tp, [])
        if not records or records[0].offset != offset:
            raise LookupError(f"no dead letter at {position}")
        return DeadLetter.model_validate_json(records[0].value or b"")
    finally:
        await consumer.stop()


async def redrive(
    bootstrap: str, positions: Iterable[str], *, security: KafkaSecurity = PLAINTEXT
) -> list[str]:
    """Publish each letter's original message again; returns what was re-driven."""
    letters = [
        (position, await fetch_letter(bootstrap, position, security=security))
        for position in positions
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **security.client_kwargs(), enable_idempotence=True
    )
    await producer.start()
    done: list[str] = []
    try:
        for position, letter in letters:
            headers = [(k, v.encode()) for k, v in letter.headers.items() if k != REDRIVEN_HEADER]
            headers.append((REDRIVEN_HEADER, position.encode()))
            await producer.send_and_wait(
                letter.topic,
                letter.payload(),
                key=letter.key.encode() if letter.key is not None else None,
                headers=headers,
            )
            done.append(f"{position} -> {letter.topic}")
    finally:
        await producer.stop()
    return done


def summary_line(stored: StoredLetter) -> str:
    letter = stored.letter
    return (
        f"{stored.position:>10}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  {letter.consumer:<24} "
        f"{letter.topic}[{letter.partition}]@{letter.offset}  {letter.error_class}/"
        f"{letter.error_code}  attempts={letter.attempts}  key={letter.key or '-'}"
    )
