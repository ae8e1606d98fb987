"""The devstack brings up real Kafka and Redis on non-default ports and stops them.

Uses its own ports and run dir so it neither disturbs nor reuses the suite's
shared test stack or a developer's stack; the jar cache is the shared one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tributary_devstack import Stack, StackConfig, procs
from tributary_devstack.kafka_admin import describe_partitions, ensure_topics
from tributary_devstack.pidfiles import list_records
from tributary_shared.core.topics import ALL_TOPICS

pytestmark = pytest.mark.integration

KAFKA_PORT, CONTROLLER_PORT, REDIS_PORT = 29192, 29193, 26479


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    return StackConfig(
        run_dir=tmp_path / "run",
        kafka_port=KAFKA_PORT,
        kafka_controller_port=CONTROLLER_PORT,
        redis_port=REDIS_PORT,
        llm_base_url="http://127.0.0.1:1/v1",  # infra only: no LLM process wanted
        stop_grace_s=20,
    )


def test_infra_comes_up_with_topics_and_redis_then_stops(config: StackConfig) -> None:
    for port in (KAFKA_PORT, CONTROLLER_PORT, REDIS_PORT):
        assert not procs.port_in_use(port), f"port {port} is taken; is an earlier run alive?"
    stack = Stack(config, say=print)
    pids: list[int] = []
    try:
        started = time.monotonic()
        stack.ensure_infra()
        print(f"infra up in {time.monotonic() - started:.1f}s")
        kafka, redis_proc = stack.process("kafka"), stack.process("redis")
        assert kafka is not None
        assert redis_proc is not None
        pids = [kafka.pid, redis_proc.pid]

        counts = describe_partitions(config.kafka_bootstrap)
        assert {s.name: counts.get(s.name) for s in ALL_TOPICS} == {
            s.name: s.partitions for s in ALL_TOPICS
        }
        with redis.Redis(host="127.0.0.1", port=REDIS_PORT) as client:
            assert client.ping() is True

        # Topic creation is idempotent, and a second stack adopts the running
        # processes instead of starting new ones.
        assert ensure_topics(config.kafka_bootstrap, ALL_TOPICS).create == ()
        again = Stack(config)
        again.ensure_infra()
        adopted = again.process("kafka")
        assert adopted is not None
        assert adopted.pid == kafka.pid
        states = {s.name: s.state for s in again.status()}
        assert states["kafka"] == "running"
        assert states["redis"] == "running"

        # The broker can be restarted in place; its topics survive.
        stack.stop_kafka()
        assert not procs.pid_alive(kafka.pid)
        restarted = stack.start_kafka()
        assert restarted.pid != kafka.pid
        pids.append(restarted.pid)
        assert describe_partitions(config.kafka_bootstrap) == counts
    finally:
        stopped = stack.stop_all()

    assert set(stopped) == {"kafka", "redis"}
    assert all(not procs.pid_alive(pid) for pid in pids)
    assert list_records(config.pids_dir) == []
    for port in (KAFKA_PORT, CONTROLLER_PORT, REDIS_PORT):
        assert not procs.port_in_use(port)
