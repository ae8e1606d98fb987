"""The benchmark's ``--replicas SERVICE=N`` option and its figures per replica and per service.

A benchmark may run several processes of a service; every figure is measured
per process (``agent-runner-0``, ``agent-runner-1``, ...) and must also add up
to one total per service and, with Kafka and Redis, to the stack's total.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import report
from bench.profile import summarise
from bench.replicas import (
    assigned_partitions,
    assignment_settled,
    by_service,
    idle_replicas,
    instances,
    is_stack_component,
    problems_by_service,
    replica_counts,
    service_of,
    service_replicas,
    stack_total,
)
from bench.run import build_parser
from bench.scenarios import consumer_in_flight_by_service, llm_seconds_delta, memory_figures

from tributary_shared.core.topics import STEPS

# -- the option --------------------------------------------------------------------------


def parse_replicas(*argv: str) -> dict[str, int]:
    args = build_parser().parse_args(["verify", *argv])
    return replica_counts(args.replicas)


def test_without_the_option_every_service_runs_once() -> None:
    assert parse_replicas() == {"gateway": 1, "planner": 1, "agent-runner": 1, "synthesizer": 1}


def test_the_option_is_repeatable_and_names_any_service() -> None:
    counts = parse_replicas("--replicas", "agent-runner=3", "--replicas", "gateway=2")
    assert counts == {"gateway": 2, "planner": 1, "agent-runner": 3, "synthesizer": 1}


def test_the_last_mention_of_a_service_wins() -> None:
    counts = parse_replicas("--replicas", "planner=2", "--replicas", "planner=4")
    assert counts["planner"] == 4


@pytest.mark.parametrize("scenario", ["verify", "latency", "throughput", "inflight", "profile"])
def test_every_scenario_takes_the_option(scenario: str) -> None:
    args = build_parser().parse_args([scenario, "--replicas", "synthesizer=2"])
    assert replica_counts(args.replicas)["synthesizer"] == 2


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("agent-runner=0", "N >= 1"),
        ("agent-runner=-2", "N >= 1"),
        ("agent-runner=two", "whole number"),
        ("agent-runner", "SERVICE=N"),
        ("kafka=2", "SERVICE=N"),
        ("agent-runner-0=2", "SERVICE=N"),
    ],
)
def test_a_bad_value_is_a_usage_error_that_says_what_is_wanted(
    value: str, complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_replicas("--replicas", value)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--replicas" in error
    assert complaint in error


def test_instances_are_named_as_the_devstack_names_them() -> None:
    counts = replica_counts([("agent-runner", 2)])
    assert instances(counts, ["agent-runner", "planner"]) == [
        "agent-runner-0",
        "agent-runner-1",
        "planner-0",
    ]


def test_replicas_past_a_topics_partition_count_are_named_as_idle() -> None:
    assert idle_replicas(replica_counts([("agent-runner", STEPS.partitions)])) == {}
    idle = idle_replicas(replica_counts([("agent-runner", STEPS.partitions + 1)]))
    assert list(idle) == ["agent-runner"]
    assert f"{STEPS.name} has {STEPS.partitions}" in idle["agent-runner"]
    # The gateway has no consumer group: any number of its replicas get requests.
    assert idle_replicas(replica_counts([("gateway", 100)])) == {}


# -- which process belongs to which service -----------------------------------------------


@pytest.mark.parametrize(
    ("component", "service"),
    [
        ("agent-runner-0", "agent-runner"),
        ("agent-runner-11", "agent-runner"),
        ("gateway-1", "gateway"),
        ("planner-0", "planner"),
        ("kafka", None),
        ("redis", None),
        ("scripted-llm", None),
        ("bench-driver", None),
        ("agent-runner", None),
    ],
)
def test_service_of(component: str, service: str | None) -> None:
    assert service_of(component) == service


def test_the_stack_is_every_replica_with_kafka_and_redis() -> None:
    processes = ("agent-runner-1", "kafka", "redis", "scripted-llm", "bench-driver")
    assert [c for c in processes if is_stack_component(c)] == ["agent-runner-1", "kafka", "redis"]


def test_the_stack_total_adds_every_replica_and_leaves_the_llm_and_driver_out() -> None:
    cpu = {
        "gateway-0": 1.0,
        "agent-runner-0": 2.0,
        "agent-runner-1": 4.0,
        "kafka": 8.0,
        "redis": 16.0,
        "scripted-llm": 32.0,
        "bench-driver": 64.0,
    }
    assert stack_total(cpu) == 31.0


# -- figures added up over replicas -----------------------------------------------------


def test_by_service_adds_replicas_up_and_keeps_other_processes() -> None:
    per_process = {
        "agent-runner-0": 2.0,
        "agent-runner-1": 3.0,
        "planner-0": 1.5,
        "kafka": 4.0,
        "scripted-llm": 7.0,
    }
    assert by_service(per_process) == {
        "agent-runner": 5.0,
        "planner": 1.5,
        "kafka": 4.0,
        "scripted-llm": 7.0,
    }


def test_service_replicas_groups_only_replicas() -> None:
    found = service_replicas(["kafka", "agent-runner-1", "agent-runner-0", "gateway-0"])
    assert found == {"agent-runner": ["agent-runner-0", "agent-runner-1"], "gateway": ["gateway-0"]}


def test_memory_of_the_stack_includes_every_replica() -> None:
    mib = 2**20
    baseline = {
        "rss": {"agent-runner-0": 100 * mib, "agent-runner-1": 100 * mib, "kafka": 400 * mib},
        "redis_used_memory": 10 * mib,
    }
    peak = {
        "in_flight": 1024,
        "rss": {"agent-runner-0": 101 * mib, "agent-runner-1": 102 * mib, "kafka": 400 * mib},
        "redis_used_memory": 11 * mib,
    }
    figures = memory_figures([peak], baseline)
    assert figures["rss_growth_kib_per_workflow"]["agent-runner-1"] == 2.0
    assert figures["rss_growth_kib_per_workflow_by_service"]["agent-runner"] == 3.0
    assert figures["stack_rss_growth_kib_per_workflow"] == 3.0


def test_the_memory_target_counts_the_services_and_redis_data_not_the_broker() -> None:
    mib = 2**20
    baseline = {
        "rss": {"agent-runner-0": 100 * mib, "planner-0": 50 * mib, "kafka": 400 * mib},
        "redis_used_memory": 10 * mib,
    }
    peak = {
        "in_flight": 1024,
        "rss": {"agent-runner-0": 120 * mib, "planner-0": 52 * mib, "kafka": 500 * mib},
        "redis_used_memory": 30 * mib,
    }
    figures = memory_figures([peak], baseline)
    # (20 + 2) MiB of services' RSS + 20 MiB of Redis data, over 1024 workflows
    assert figures["services_and_redis_kib_per_workflow"] == 42.0


def test_llm_call_time_per_replica_and_per_service() -> None:
    before = {"agent-runner-0": (0.0, 0.0), "agent-runner-1": (1.0, 5.0)}
    after = {"agent-runner-0": (2.0, 10.0), "agent-runner-1": (4.0, 15.0)}
    seen = llm_seconds_delta(before, after)
    assert seen["agent-runner-0"] == {"calls": 10, "mean_ms": 200.0}
    assert seen["agent-runner-1"] == {"calls": 10, "mean_ms": 300.0}
    assert seen["agent-runner"] == {"calls": 20, "mean_ms": 250.0}


def test_consumer_in_flight_per_service_is_the_replicas_together_at_one_time() -> None:
    timeline = [
        {"consumer_in_flight": {"agent-runner-0": 10, "agent-runner-1": 1}},
        {"consumer_in_flight": {"agent-runner-0": 4, "agent-runner-1": 9, "planner-0": -1}},
    ]
    # 13 at the second sample; the highest per replica (10 + 9) never happened at once.
    assert consumer_in_flight_by_service(timeline) == {"agent-runner": 13}


def test_log_problems_add_up_per_service() -> None:
    problems = {
        "agent-runner-0": {"WARNING slow": 2},
        "agent-runner-1": {"WARNING slow": 1, "ERROR broke": 1},
        "kafka": {"WARNING x": 1},
    }
    assert problems_by_service(problems) == {
        "agent-runner": {"WARNING slow": 3, "ERROR broke": 1},
        "kafka": {"WARNING x": 1},
    }


def test_profiles_of_replicas_summarise_as_one(tmp_path: Path) -> None:
    frame = "handle (/x/site-packages/{lib}/m.py:1)"
    first = tmp_path / "agent-runner-0.txt"
    second = tmp_path / "agent-runner-1.txt"
    first.write_text(f"{frame.format(lib='aiokafka')} 3\n")
    second.write_text(f"{frame.format(lib='redis')} 1\n")
    together = summarise(first, second)
    assert together["samples"] == 4
    assert together["inclusive_share"] == {"aiokafka": 0.75, "redis": 0.25}


# -- partitions shared out among a group's replicas --------------------------------------


METRICS = (
    "# HELP consumer_lag_records Records of an assigned partition ...\n"
    "# TYPE consumer_lag_records gauge\n"
    'consumer_lag_records{consumer="tributary-agent-runner",topic="tributary.steps",'
    'partition="3"} 0.0\n'
    'consumer_lag_records{consumer="tributary-agent-runner",partition="7",'
    'topic="tributary.steps"} 2.0\n'
    'consumer_lag_records{consumer="tributary-callbacks",topic="tributary.workflow.events",'
    'partition="1"} 0.0\n'
    'llm_request_seconds_count{role="agent"} 3.0\n'
)


def test_assigned_partitions_are_read_for_one_group() -> None:
    assert assigned_partitions(METRICS, "tributary-agent-runner") == {
        ("tributary.steps", 3),
        ("tributary.steps", 7),
    }
    assert assigned_partitions(METRICS, "tributary-callbacks") == {("tributary.workflow.events", 1)}
    assert assigned_partitions("", "tributary-agent-runner") == set()


def test_assignment_settles_when_each_partition_has_one_replica_and_each_replica_some() -> None:
    topics = {"t": 4}
    split = {"a-0": {("t", 0), ("t", 1)}, "a-1": {("t", 2), ("t", 3)}}
    assert assignment_settled(split, topics)
    # Still rebalancing: one replica holds everything, the other nothing.
    assert not assignment_settled({"a-0": {("t", p) for p in range(4)}, "a-1": set()}, topics)
    # A partition not yet held by anyone.
    assert not assignment_settled({"a-0": {("t", 0)}, "a-1": {("t", 2), ("t", 3)}}, topics)
    # A revoked partition still reported by its former holder.
    overlap = {"a-0": {("t", 0), ("t", 1), ("t", 2)}, "a-1": {("t", 2), ("t", 3)}}
    assert not assignment_settled(overlap, topics)
    # More replicas than partitions: the extra ones hold none, and that is settled.
    many = {f"a-{i}": ({("t", i)} if i < 4 else set()) for i in range(6)}
    assert assignment_settled(many, topics)


# -- the report ------------------------------------------------------------------------------


def test_the_report_shows_service_totals_and_each_replica() -> None:
    cpu = {
        "cpu_ms_per_workflow": {
            "gateway-0": 5.0,
            "agent-runner-0": 2.0,
            "agent-runner-1": 3.0,
            "kafka": 1.0,
        }
    }
    counts = replica_counts([("agent-runner", 2)])
    header, _rule, row, *detail = report.cpu_table("latency", cpu, counts)
    assert header == "| latency | gateway | agent-runner (2 replicas) | kafka |"
    assert row == "| CPU ms / workflow | 5.0 | 5.0 | 1.0 |"
    assert detail == [
        "agent-runner per replica (CPU ms / workflow): agent-runner-0 2.0, agent-runner-1 3.0"
    ]
    assert report.describe_replicas(counts) == (
        "replicas: gateway=1, planner=1, agent-runner=2, synthesizer=1"
    )


def test_the_report_reads_results_from_before_replicas_as_one_of_each() -> None:
    assert report.replica_counts({"scenario": "latency"}) == replica_counts()
    assert report.replica_counts({"replicas": {"planner": 3}})["planner"] == 3
