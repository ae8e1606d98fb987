"""Which errors mean the infrastructure is away, not that a message is bad.

The consumer waits an outage out (up to its patience) without using up the
attempts meant for messages that cannot be handled; every other error counts
as a failed attempt and, repeated, dead-letters the message. Misreading an
outage as a failure dead-letters healthy work within seconds (and fails its
workflow), so the list errs towards waiting.

Redis answers some outages with an error reply on a live connection rather
than a dropped connection: ``OOM`` (maxmemory reached), ``READONLY`` (writing
to a replica during a failover), ``LOADING`` (a restart reading its dataset),
``MASTERDOWN``, ``CLUSTERDOWN`` and ``TRYAGAIN`` (a cluster reconfiguring) and
``MISCONF`` (snapshots failing, so writes are refused). Each clears without
any change to the message. redis-py maps most of them to their own classes;
``MISCONF`` arrives as a plain ``ResponseError`` carrying its code.
"""

from __future__ import annotations

from aiokafka import errors as kafka_errors
from redis import exceptions as redis_errors

__all__ = ["is_outage"]

_OUTAGES: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes LOADING (BusyLoadingError)
    redis_errors.TimeoutError,
    redis_errors.OutOfMemoryError,
    redis_errors.ReadOnlyError,
    redis_errors.ClusterDownError,  # includes MASTERDOWN (MasterDownError)
    redis_errors.TryAgainError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    ConnectionError,
    TimeoutError,
)

# Error replies redis-py has no class for, recognised by their code. Searched
# anywhere in the text: a pipeline prefixes the reply with the failed command.
_REDIS_OUTAGE_CODES = ("MISCONF ",)


def is_outage(exc: BaseException) -> bool:
    """True when ``exc``, or an error behind it, means Kafka or Redis is away."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _is_outage_itself(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _is_outage_itself(exc: BaseException) -> bool:
    if isinstance(exc, _OUTAGES):
        return True
    # aiokafka marks the broker errors a client should retry (no leader yet,
    # coordinator loading, not enough replicas, ...).
    if isinstance(exc, kafka_errors.KafkaError) and getattr(exc, "retriable", False):
        return True
    return isinstance(exc, redis_errors.ResponseError) and any(
        code in str(exc) for code in _REDIS_OUTAGE_CODES
    )
