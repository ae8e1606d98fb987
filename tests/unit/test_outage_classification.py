from __future__ import annotations

import pytest
from aiokafka import errors as kafka_errors
from redis import exceptions as redis_errors

from tributary_shared.core.errors import TransientError
from tributary_shared.runtime.kafka.consumer import is_outage


@pytest.mark.parametrize(
    "error",
    [
        redis_errors.ConnectionError("refused"),
        redis_errors.BusyLoadingError("loading the dataset"),
        kafka_errors.KafkaConnectionError("broker down"),
        kafka_errors.KafkaTimeoutError(),
        ConnectionRefusedError(),
    ],
)
def test_infrastructure_outages_are_recognised(error: Exception) -> None:
    assert is_outage(error)


def test_an_outage_behind_another_error_is_recognised() -> None:
    outer = RuntimeError("publishing failed")
    outer.__cause__ = redis_errors.ConnectionError("refused")
    assert is_outage(outer)


@pytest.mark.parametrize(
    "error",
    [ValueError("bad"), redis_errors.ResponseError("WRONGTYPE"), TransientError("llm down")],
)
def test_bugs_and_bad_data_are_not_outages(error: Exception) -> None:
    assert not is_outage(error)
